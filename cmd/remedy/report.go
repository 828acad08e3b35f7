package main

import (
	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/engine/report"
)

// reportCommand is `remedy report`: the effectiveness figures of the incidents page for
// a time range, from the engine's read API (engine/report.Effectiveness).
func reportCommand() *cobra.Command {
	c := &cobra.Command{Use: "report", Short: "Effectiveness per action and kind for a time range (the incidents page's figures)",
		Args: cli.NoArgs}
	client := apiClientFlags(c)
	since := c.Flags().String("since", "", "start of the range: RFC 3339 time or a duration back from now (default 24h before --until)")
	until := c.Flags().String("until", "", "end of the range, exclusive: RFC 3339 time or a duration back from now (default now)")
	out := cli.OutputFlag(c, cli.Table, cli.JSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, err := client()
		if err != nil {
			return err
		}
		return report.Effectiveness(cmd.Context(), report.EffectivenessOptions{Client: cl, Since: *since, Until: *until,
			Output: out.Format}, cmd.OutOrStdout())
	}
	return c
}
