// Package replay re-decides recorded signals with a candidate policy and reports the
// decisions that would change: what `remedy policy replay` prints before a policy edit
// goes live. The input of each decision is rebuilt from the audit log (the recorded
// signal, the node's action history before it, the decision's time as now); node and
// cluster facts are not in the audit log, so the candidate sees none, as the embedded
// default (no cluster) does.
package replay

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

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/wire/signal"
)

// Load loads a candidate policy for a replay. A candidate whose own tests fail is still
// loaded (a replay shows what it would decide), and the failure is returned as a warning
// that the report carries; a candidate that does not compile is an error.
func Load(ctx context.Context, src string) (*policy.Policy, []string, error) {
	p, err := policy.LoadWith(ctx, src, policy.Options{})
	if err == nil {
		return p, nil, nil
	}
	p, err2 := policy.LoadWith(ctx, src, policy.Options{SkipTests: true})
	if err2 != nil {
		return nil, nil, err2
	}
	return p, []string{"the candidate's own tests fail; it would be refused if loaded: " + strings.TrimSpace(err.Error())}, nil
}

// Options say what to replay through which policy.
type Options struct {
	Client *api.Client
	Policy *policy.Policy
	Since  time.Time
	// History is how far back the node's action history reaches, as in the engine.
	History time.Duration
	// Warnings are copied into the report (from Load).
	Warnings []string
}

// Report is what changed.
type Report struct {
	Since time.Time `json:"since"`
	// Warnings are said before the changes (a candidate whose own tests fail).
	Warnings  []string `json:"warnings,omitempty"`
	Candidate string   `json:"candidateRevision"`
	Signals   int      `json:"signals"`
	Undecided int      `json:"undecided"`
	Changed   []Diff   `json:"changed"`
}

// Diff is one signal whose decisions differ.
type Diff struct {
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

// Run re-decides every signal recorded since o.Since with o.Policy. The input is
// rebuilt from the audit log: the recorded signal, the node's action history before
// the decision, and the decision's time as now. Node and cluster facts are not in the
// audit log; the candidate sees none.
func Run(ctx context.Context, o Options) (*Report, error) {
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

	rep := &Report{Since: o.Since, Candidate: o.Policy.Revision, Warnings: o.Warnings, Changed: []Diff{}}
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
		diff := Diff{Time: dec.Time, Node: s.Node, Kind: string(s.Kind), Status: string(s.Status),
			CorrelationID: dec.CorrelationID, Revision: dec.PolicyRev}
		doc, err := input(s, dec.Time, historyOf(actions, s.Node, dec.Time, o.History))
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
func input(s signal.Signal, at time.Time, history []map[string]any) (any, error) {
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

func Print(w io.Writer, rep *Report) {
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n\n", warn)
	}
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
