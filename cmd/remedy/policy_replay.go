package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/engine/replay"
)

func policyReplayCommand() *cobra.Command {
	c := &cobra.Command{Use: "replay --since 24h", Short: "Re-decide recorded signals with a candidate policy; print what changes", Args: cli.NoArgs,
		Long: `Re-decide every signal recorded since --since with a candidate policy and print the
decisions that change. The input is rebuilt from the engine's audit log: the recorded signal,
the node's action history before the decision, and the decision's time as now. Node and
cluster facts are not in the audit log; the candidate sees none. A candidate whose own
tests fail is replayed with a warning first.`}
	client := apiClientFlags(c)
	fs := c.Flags()
	dir := fs.String("policies", "policies", "candidate policy: directory or bundle")
	since := fs.String("since", "24h", "replay signals recorded since this time (RFC 3339) or this long ago (24h)")
	history := fs.Duration("history", 24*time.Hour, "how far back the node's action history reaches (the engine's HistoryWindow)")
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML)
	asJSON := fs.Bool("json", false, "deprecated: use -o json")
	cli.Deprecate(fs, "json", "use -o json")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *asJSON {
			out.Format = cli.JSON
		}
		from, err := parseSince(*since, time.Now())
		if err != nil {
			return cli.UsageError{Err: err}
		}
		cl, err := client()
		if err != nil {
			return err
		}
		p, warnings, err := replay.Load(cmd.Context(), *dir)
		if err != nil {
			return err
		}
		rep, err := replay.Run(cmd.Context(), replay.Options{Client: cl, Policy: p, Since: from, History: *history, Warnings: warnings})
		if err != nil {
			return err
		}
		return out.Print(cmd.OutOrStdout(), rep, func(w io.Writer) error { replay.Print(w, rep); return nil })
	}
	return c
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("--since %q is neither a duration (24h) nor an RFC 3339 time", s)
	}
	return t.UTC(), nil
}
