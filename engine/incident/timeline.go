package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// Stages of a timeline, in the order an incident goes through them.
const (
	StageSignal       = "signal"
	StageDecision     = "decision"
	StageGuard        = "guard"
	StageApproval     = "approval"
	StageDispatch     = "dispatch"
	StageResult       = "result"
	StageVerification = "verification"
	StageEscalation   = "escalation"
	StageOther        = "other"
)

// Change is one value an executor read before and after its change.
type Change struct {
	Key    string `json:"key"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// Step is one event of an incident, read for people.
type Step struct {
	Seq       int64      `json:"seq"`
	Time      time.Time  `json:"time"`
	Stage     string     `json:"stage"`
	Type      audit.Type `json:"type"`
	Actor     string     `json:"actor,omitempty"`
	Outcome   string     `json:"outcome,omitempty"`
	Action    string     `json:"action,omitempty"`
	ActionID  string     `json:"actionId,omitempty"`
	PolicyRev string     `json:"policyRevision,omitempty"`
	// Text says what happened: the decision's reason, the guard's message, the vote's
	// reason, the executor's message.
	Text    string   `json:"text,omitempty"`
	Changes []Change `json:"changes,omitempty"`
	// Escalated is the correlation id of the incident this one escalated to.
	Escalated string          `json:"escalated,omitempty"`
	Detail    json.RawMessage `json:"detail,omitempty"`
}

// Incident is one incident with its timeline.
type Incident struct {
	Summary
	Steps []Step `json:"steps"`
}

// Get reads one incident's events (the correlation index, with details) and returns
// its summary and timeline; ok is false when the log has no such incident.
func Get(ctx context.Context, q audit.Querier, id string) (Incident, bool, error) {
	evs, err := audit.Timeline(ctx, q, id)
	if err != nil {
		return Incident{}, false, err
	}
	if len(evs) == 0 {
		return Incident{}, false, nil
	}
	inc := Incident{Summary: Summarize(id, evs)}
	for _, e := range evs {
		inc.Steps = append(inc.Steps, step(e))
	}
	for i := range inc.Steps {
		if inc.Steps[i].Escalated != "" {
			// The escalation is a step of its own, right after the verification that made it.
			v := inc.Steps[i]
			esc := Step{Seq: v.Seq, Time: v.Time, Stage: StageEscalation, Type: v.Type, Actor: v.Actor, Action: v.Action,
				ActionID: v.ActionID, Escalated: v.Escalated, Text: "not fixed: the signal was submitted again as incident " + v.Escalated}
			inc.Steps[i].Escalated = ""
			inc.Steps = slices.Insert(inc.Steps, i+1, esc)
			break
		}
	}
	return inc, true, nil
}

func stageOf(t audit.Type) string {
	switch t {
	case audit.SignalReceived, audit.SignalRejected:
		return StageSignal
	case audit.Decision:
		return StageDecision
	case audit.GuardRefused, audit.ActionPlanned, audit.ActionRejected:
		return StageGuard
	case audit.ApprovalRequested, audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired:
		return StageApproval
	case audit.Dispatched:
		return StageDispatch
	case audit.ActionResult:
		return StageResult
	case audit.Verification:
		return StageVerification
	}
	return StageOther
}

func step(e audit.Event) Step {
	s := Step{Seq: e.Seq, Time: e.Time, Stage: stageOf(e.Type), Type: e.Type, Actor: e.Actor, Outcome: e.Outcome,
		Action: e.Action, ActionID: e.ActionID, PolicyRev: e.PolicyRev, Detail: e.Detail}
	var d struct {
		// decision
		Decisions []struct {
			Action string          `json:"action"`
			Risk   string          `json:"risk"`
			Reason string          `json:"reason"`
			Params json.RawMessage `json:"params"`
		} `json:"decisions"`
		Error string `json:"error"`
		// signal
		Status      string            `json:"status"`
		Source      string            `json:"source"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		// guard.refused, approval.requested
		Verdict struct {
			Outcome string `json:"outcome"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"verdict"`
		Requester string `json:"requester"`
		// approvals
		Reason string `json:"reason"`
		Vote   int    `json:"vote"`
		Of     int    `json:"of"`
		// action.planned
		Params json.RawMessage `json:"params"`
		DryRun bool            `json:"dryRun"`
		// action.result
		Message string            `json:"message"`
		Before  map[string]string `json:"before"`
		After   map[string]string `json:"after"`
		// verification
		Window    string `json:"window"`
		Escalated string `json:"escalated"`
	}
	_ = json.Unmarshal(e.Detail, &d) // a detail of another shape leaves the text empty
	switch e.Type {
	case audit.SignalReceived:
		parts := []string{e.Outcome + " " + e.Kind + " on " + e.Node}
		if d.Source != "" {
			parts = append(parts, "from "+d.Source)
		}
		if sum := d.Annotations["summary"]; sum != "" {
			parts = append(parts, sum)
		}
		if l := labels(d.Labels); l != "" {
			parts = append(parts, l)
		}
		s.Text = strings.Join(parts, "; ")
	case audit.SignalRejected, audit.ActionRejected:
		s.Text = d.Error
	case audit.Decision:
		var parts []string
		for _, x := range d.Decisions {
			parts = append(parts, fmt.Sprintf("%s (risk %s, params %s): %s", x.Action, x.Risk, compact(x.Params), x.Reason))
		}
		if len(parts) == 0 {
			parts = append(parts, "no action")
		}
		if d.Error != "" {
			parts = append(parts, "error: "+d.Error)
		}
		s.Text = strings.Join(parts, "; ")
	case audit.GuardRefused, audit.ApprovalRequested:
		s.Text = strings.TrimSpace(strings.Trim(d.Verdict.Reason+": "+d.Verdict.Message, ": "))
		if d.Requester != "" {
			s.Text += " (requested by " + d.Requester + ")"
		}
	case audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired:
		s.Text = d.Reason
		if d.Of > 0 {
			s.Text = fmt.Sprintf("vote %d of %d: %s", d.Vote, d.Of, d.Reason)
		}
	case audit.ActionPlanned:
		s.Text = "guards passed; params " + compact(d.Params)
		if d.DryRun {
			s.Text += " (dry run)"
		}
	case audit.Dispatched:
		s.Text = "sent to the agent of " + e.Node
	case audit.ActionResult:
		s.Text = d.Message
		keys := make([]string, 0, len(d.Before)+len(d.After))
		for k := range d.Before {
			keys = append(keys, k)
		}
		for k := range d.After {
			if _, ok := d.Before[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			s.Changes = append(s.Changes, Change{Key: k, Before: d.Before[k], After: d.After[k]})
		}
	case audit.Verification:
		switch e.Outcome {
		case Fixed:
			s.Text = "the signal resolved"
		case NotFixed:
			s.Text = "the signal did not resolve"
		case RolledBack:
			s.Text = "the executor rolled its change back"
		}
		if d.Window != "" {
			s.Text += " within the " + d.Window + " window"
		}
		s.Escalated = d.Escalated
	}
	return s
}

func labels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func compact(b json.RawMessage) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}
