package main

import (
	"context"
	"io"

	"github.com/remedyhq/remedy/engine/report"
)

// reportCmd runs `remedy report`: the effectiveness figures of the incidents page for a
// time range, from the engine's read API (engine/report.Effectiveness).
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := auditFlags("remedy report", stderr)
	since := fs.String("since", "", "start of the range: RFC 3339 time or a duration back from now (default 24h before --until)")
	until := fs.String("until", "", "end of the range, exclusive: RFC 3339 time or a duration back from now (default now)")
	out := fs.String("o", "table", "output: table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return report.Effectiveness(ctx, report.EffectivenessOptions{Client: c(), Since: *since, Until: *until, Output: *out}, stdout)
}
