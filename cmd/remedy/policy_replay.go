package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/wire/signal"
)

// replayOptions say what to replay through which policy.
type replayOptions struct {
	Client *api.Client
	Policy *policy.Policy
	Since  time.Time
	// History is how far back the node's action history reaches, as in the engine.
	History time.Duration
}

// replayReport is what changed.
type replayReport struct {
	Since     time.Time    `json:"since"`
	Candidate string       `json:"candidateRevision"`
	Signals   int          `json:"signals"`
	Undecided int          `json:"undecided"`
	Changed   []replayDiff `json:"changed"`
}

// replayDiff is one signal whose decisions differ.
type replayDiff struct {
	Time          time.Time         `json:"time"`
	Node          string            `json:"node"`
	Kind          string            `json:"kind"`
	Status        string            `json:"status"`
	CorrelationID string            `json:"correlationId"`
	Revision      string            `json:"revision"` // the policy revision that decided then
	Removed       []policy.Decision `json:"removed,omitempty"`
	Added         []policy.Decision `json:"added,omitempty"`
	Error         string            `json:"error,omitempty"`
}

// decisionDetail is the detail of a recorded decision event.
type decisionDetail struct {
	Decisions []policy.Decision `json:"decisions"`
	Error     string            `json:"error,omitempty"`
}

func policyReplayCommand() *cobra.Command {
	c := &cobra.Command{Use: "replay --since 24h", Short: "Re-decide recorded signals with a candidate policy; print what changes", Args: cli.NoArgs,
		Long: `Re-decide every signal recorded since --since with a candidate policy and print the
decisions that change. The input is rebuilt from the engine's audit log: the recorded signal,
the node's action history before the decision, and the decision's time as now. Node and
cluster facts are not in the audit log; the candidate sees none.`}
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
		c, err := client()
		if err != nil {
			return err
		}
		p, err := policy.LoadWith(cmd.Context(), *dir, policy.Options{SkipTests: true})
		if err != nil {
			return err
		}
		rep, err := replay(cmd.Context(), replayOptions{Client: c, Policy: p, Since: from, History: *history})
		if err != nil {
			return err
		}
		return out.Print(cmd.OutOrStdout(), rep, func(w io.Writer) error { printReplay(w, rep); return nil })
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

// replay re-decides every signal recorded since o.Since with o.Policy. The input is
// rebuilt from the audit log: the recorded signal, the node's action history before
// the decision, and the decision's time as now. Node and cluster facts are not in the
// audit log; the candidate sees none.
func replay(ctx context.Context, o replayOptions) (*replayReport, error) {
	events := func(typ audit.Type, since time.Time) ([]audit.Event, error) {
		evs, err := o.Client.Events(ctx, url.Values{"type": {string(typ)}, "since": {since.Format(time.RFC3339)}, "limit": {"100000"}})
		if err != nil {
			return nil, fmt.Errorf("read %s events: %w", typ, err)
		}
		return evs, nil
	}
	sigs, err := events(audit.SignalReceived, o.Since)
	if err != nil {
		return nil, err
	}
	decs, err := events(audit.Decision, o.Since)
	if err != nil {
		return nil, err
	}
	byKey := map[string]audit.Event{}
	for _, d := range decs {
		byKey[d.Key] = d
	}
	var actions []audit.Event
	for _, typ := range []audit.Type{audit.ActionPlanned, audit.ActionResult, audit.ActionRejected} {
		evs, err := events(typ, o.Since.Add(-o.History))
		if err != nil {
			return nil, err
		}
		actions = append(actions, evs...)
	}
	sort.Slice(actions, func(i, j int) bool { return actions[i].Seq < actions[j].Seq })
	sort.Slice(sigs, func(i, j int) bool { return sigs[i].Seq < sigs[j].Seq })

	rep := &replayReport{Since: o.Since, Candidate: o.Policy.Revision, Changed: []replayDiff{}}
	for _, ev := range sigs {
		var s signal.Signal
		if err := json.Unmarshal(ev.Detail, &s); err != nil {
			return nil, fmt.Errorf("signal event %d: %w", ev.Seq, err)
		}
		rep.Signals++
		dec, ok := byKey[audit.DecisionKey(strings.TrimPrefix(ev.Key, "signal:"))]
		if !ok {
			rep.Undecided++
			continue
		}
		var then decisionDetail
		if err := json.Unmarshal(dec.Detail, &then); err != nil {
			return nil, fmt.Errorf("decision event %d: %w", dec.Seq, err)
		}
		diff := replayDiff{Time: dec.Time, Node: s.Node, Kind: string(s.Kind), Status: string(s.Status),
			CorrelationID: dec.CorrelationID, Revision: dec.PolicyRev}
		doc, err := replayInput(s, dec.Time, historyOf(actions, s.Node, dec.Time, o.History))
		if err != nil {
			return nil, err
		}
		now, err := o.Policy.Eval(ctx, doc)
		if err != nil {
			diff.Error = err.Error()
		}
		diff.Removed, diff.Added = decisionDiff(then.Decisions, now)
		if diff.Error != "" || len(diff.Removed) > 0 || len(diff.Added) > 0 {
			rep.Changed = append(rep.Changed, diff)
		}
	}
	return rep, nil
}

// historyOf is the node's action history as the engine gives it to the policy: action
// events on the node within the window before at.
func historyOf(actions []audit.Event, node string, at time.Time, window time.Duration) []map[string]any {
	out := []map[string]any{}
	for _, ev := range actions {
		if ev.Node != node || !ev.Time.Before(at) || ev.Time.Before(at.Add(-window)) {
			continue
		}
		h := map[string]any{"time": ev.Time, "type": string(ev.Type), "action": ev.Action, "actionId": ev.ActionID,
			"outcome": ev.Outcome, "correlationId": ev.CorrelationID}
		if ev.Kind != "" {
			h["kind"] = ev.Kind
		}
		out = append(out, h)
	}
	return out
}

// replayInput is the input document the engine would have built, without facts.
func replayInput(s signal.Signal, at time.Time, history []map[string]any) (any, error) {
	s.Raw = nil
	b, err := json.Marshal(engine.Input{Signal: s, Node: facts.Node{Name: s.Node}, Now: at.UTC()})
	if err != nil {
		return nil, fmt.Errorf("replay input: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("replay input: %w", err)
	}
	hb, _ := json.Marshal(history)
	var h any
	_ = json.Unmarshal(hb, &h)
	doc["history"] = h
	return doc, nil
}

// decisionKey identifies a decision for the diff: what it does, not how it explains it.
func decisionKey(d policy.Decision) string {
	var params any
	_ = json.Unmarshal(d.Params, &params)
	p, _ := json.Marshal(params) // canonical: map keys sorted
	return fmt.Sprintf("%s %s %s %v", d.Action, p, d.Risk, d.RequiresApproval)
}

// decisionDiff returns the decisions only in then and those only in now.
func decisionDiff(then, now []policy.Decision) (removed, added []policy.Decision) {
	in := func(list []policy.Decision, d policy.Decision) bool {
		return slices.ContainsFunc(list, func(x policy.Decision) bool { return decisionKey(x) == decisionKey(d) })
	}
	for _, d := range then {
		if !in(now, d) {
			removed = append(removed, d)
		}
	}
	for _, d := range now {
		if !in(then, d) {
			added = append(added, d)
		}
	}
	return removed, added
}

func printReplay(w io.Writer, rep *replayReport) {
	fmt.Fprintf(w, "replayed %d signals recorded since %s through candidate revision %s: %d changed",
		rep.Signals, rep.Since.Format(time.RFC3339), rep.Candidate, len(rep.Changed))
	if rep.Undecided > 0 {
		fmt.Fprintf(w, ", %d not decided then", rep.Undecided)
	}
	fmt.Fprintln(w)
	for _, d := range rep.Changed {
		fmt.Fprintf(w, "\n%s  %s  %s %s  correlation %s  (decided by revision %s)\n",
			d.Time.UTC().Format(time.RFC3339), d.Node, d.Kind, d.Status, d.CorrelationID, d.Revision)
		for _, x := range d.Removed {
			fmt.Fprintf(w, "  - %s %s %s%s\n", x.Action, x.Params, x.Risk, approvalMark(x))
		}
		for _, x := range d.Added {
			fmt.Fprintf(w, "  + %s %s %s%s\n      because: %s\n", x.Action, x.Params, x.Risk, approvalMark(x), x.Reason)
		}
		if d.Error != "" {
			fmt.Fprintf(w, "  ! candidate failed: %s\n", d.Error)
		}
	}
	if len(rep.Changed) > 0 {
		fmt.Fprintln(w, "\nnote: node and cluster facts are not in the audit log; the candidate saw the recorded signal and the node's action history")
	}
}

func approvalMark(d policy.Decision) string {
	if d.RequiresApproval {
		return " (approval)"
	}
	return ""
}
