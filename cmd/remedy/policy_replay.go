package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/remedyhq/remedy/engine/replay"
)

// policyReplay runs engine/replay: the candidate policy's decisions on the recorded
// signals, against the running engine's audit log.
func policyReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, client := auditFlags("remedy policy replay", stderr)
	dir := fs.String("policies", "policies", "candidate policy: directory or bundle")
	since := fs.String("since", "24h", "replay signals recorded since this time (RFC 3339) or this long ago (24h)")
	history := fs.Duration("history", 24*time.Hour, "how far back the node's action history reaches (the engine's HistoryWindow)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	p, warnings, err := replay.Load(ctx, *dir)
	if err != nil {
		return err
	}
	rep, err := replay.Run(ctx, replay.Options{Client: client(), Policy: p, Since: from, History: *history, Warnings: warnings})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	replay.Print(stdout, rep)
	return nil
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
