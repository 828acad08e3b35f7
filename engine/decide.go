package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/signal"
)

// The decide stage: input, policy, catalogue, gate; one commit for the decision and a
// ledger row per action that may still run.

// historyEntry is one past action on the node, as the policy sees it.
type historyEntry struct {
	seq           int64
	Time          time.Time `json:"time"`
	Type          string    `json:"type"`
	Action        string    `json:"action"`
	ActionID      string    `json:"actionId"`
	Outcome       string    `json:"outcome"`
	Kind          string    `json:"kind,omitempty"`
	CorrelationID string    `json:"correlationId"`
}

// Input is the policy input document for one signal. Its JSON form is the policy
// contract (docs/policies.md).
type Input struct {
	Signal  signal.Signal  `json:"signal"`
	Node    facts.Node     `json:"node"`
	Cluster facts.Cluster  `json:"cluster"`
	History []historyEntry `json:"history"`
	Now     time.Time      `json:"now"`
	DryRun  bool           `json:"dry_run"`
}

// BuildInput gathers the policy input for a signal.
func (e *Engine) BuildInput(ctx context.Context, s signal.Signal) (Input, error) {
	node, err := e.o.Facts.Node(ctx, s.Node)
	if err != nil {
		return Input{}, fmt.Errorf("node facts: %w", err)
	}
	cluster, err := e.o.Facts.Cluster(ctx)
	if err != nil {
		return Input{}, fmt.Errorf("cluster facts: %w", err)
	}
	now := e.o.Now().UTC()
	hist, err := e.history(ctx, s.Node, now)
	if err != nil {
		return Input{}, fmt.Errorf("action history: %w", err)
	}
	s.Raw = nil // the policy reasons on the model, not the source's payload
	return Input{Signal: s, Node: node, Cluster: cluster, History: hist, Now: now, DryRun: e.o.DryRun}, nil
}

type decisionDetail struct {
	Decisions []policy.Decision `json:"decisions"`
	Error     string            `json:"error,omitempty"`
}

// decideOptions say how a caller wants a decision committed.
type decideOptions struct {
	// deferred lets the decision's commit wait behind intake (the workers, the sweep).
	deferred bool
	// batchRecords lets the dispatch records join others' commits instead of being
	// waited for (the workers): a record lost in a crash only means that the sweep
	// publishes the action again, which the stream's duplicate window and the agent's
	// journal absorb.
	batchRecords bool
}

// decide evaluates the policy for one signal, commits the outcome with the ledger rows
// of its actions, and dispatches those that are planned. A second call for the same
// signal finds its decision already recorded and does nothing.
func (e *Engine) decide(ctx context.Context, s signal.Signal, opt decideOptions) error {
	key := s.Key()
	if _, busy := e.inflight.LoadOrStore(key, struct{}{}); busy {
		return nil
	}
	defer e.inflight.Delete(key)

	pol := e.o.Policy.Current()
	corr := CorrelationID(&s)
	dec := audit.Event{Type: audit.Decision, CorrelationID: corr, Node: s.Node, Kind: string(s.Kind), Actor: audit.ActorEngine,
		PolicyRev: pol.Revision, Key: audit.DecisionKey(key)}
	var detail decisionDetail
	in, err := e.BuildInput(ctx, s)
	if err != nil {
		return err // transient (facts, store): the sweep retries
	}
	sum := sha256.Sum256(mustJSON(in))
	dec.InputHash = hex.EncodeToString(sum[:8])

	start := time.Now()
	decisions, err := pol.EvalValue(ctx, in.Value())
	e.m.evalSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		detail.Error = err.Error()
		dec.Outcome = "policy_error"
	}
	detail.Decisions = decisions

	b := audit.Batch{Events: []audit.Event{dec}, Deferred: opt.deferred}
	var planned []executors.Request
	waiting := ""
	now := e.o.Now().UTC()
	for _, d := range decisions {
		id := ActionID(key, d.Action, d.Params)
		base := audit.Event{CorrelationID: corr, Node: s.Node, Kind: string(s.Kind), Action: d.Action, ActionID: id,
			Actor: audit.ActorEngine, PolicyRev: pol.Revision, InputHash: dec.InputHash}
		if _, err := e.o.Actions.Check(d.Action, d.Params); err != nil {
			ev := base
			ev.Type, ev.Outcome, ev.Key = audit.ActionRejected, "rejected", "rejected:"+id
			ev.Detail = mustJSON(map[string]any{"decision": d, "error": err.Error()})
			b.Events = append(b.Events, ev)
			e.m.actions.WithLabelValues(d.Action, "rejected").Inc()
			continue
		}
		req := executors.Request{ID: id, Action: d.Action, Node: s.Node, Params: d.Params, DryRun: e.o.DryRun,
			CorrelationID: corr, Reason: d.Reason, Deadline: now.Add(e.o.ActionTTL), Attempt: 1}
		row := &audit.Action{ID: id, Node: s.Node, Action: d.Action, Kind: string(s.Kind), CorrelationID: corr,
			ParamsDigest: audit.ParamsDigest(d.Params), Deadline: req.Deadline}
		if e.o.Gate != nil {
			h := Held{Request: req, Decision: d, Signal: in.Signal, Node: in.Node, Cluster: in.Cluster, Requester: requester(&s)}
			h.Verdict = e.o.Gate.Check(ctx, h.Candidate(false))
			if h.Verdict.Outcome == guard.DryRun {
				req.DryRun, h.Request.DryRun = true, true
			}
			if ev, state := heldEvent(base, h); ev.Type != "" {
				b.Events = append(b.Events, ev)
				waiting = string(ev.Type)
				if state != "" { // it waits: held for a person, or paused
					row.State, row.Request, row.Held = state, mustJSON(req), mustJSON(h)
					b.Changes = append(b.Changes, audit.Change{Create: row})
				}
				continue
			}
		}
		ev := base
		ev.Type, ev.Key, ev.Outcome = audit.ActionPlanned, audit.ActionKey(id), "planned"
		if req.DryRun {
			ev.Outcome = audit.OutcomeDryRun
		}
		ev.Detail = mustJSON(req)
		row.State, row.Request = audit.StatePlanned, ev.Detail
		b.Events = append(b.Events, ev)
		b.Changes = append(b.Changes, audit.Change{Create: row})
		planned = append(planned, req)
	}
	switch {
	case dec.Outcome != "":
	case len(planned) > 0:
		b.Events[0].Outcome = "act"
	case waiting == string(audit.ApprovalRequested):
		b.Events[0].Outcome = "pending_approval"
	case waiting == string(audit.ActionPaused):
		b.Events[0].Outcome = "paused"
	case waiting == string(audit.GuardRefused):
		b.Events[0].Outcome = "refused"
	case len(decisions) > 0:
		b.Events[0].Outcome = "rejected"
	default:
		b.Events[0].Outcome = "none"
	}
	b.Events[0].Detail = mustJSON(detail)
	// Marked as being dispatched by this process from before they are committed, so
	// that no sweep dispatches them in between.
	for _, req := range planned {
		e.recording.Store(req.ID, struct{}{})
	}
	c, err := e.commit(ctx, b)
	if err != nil || !c.Inserted[0] {
		for _, req := range planned {
			e.recording.Delete(req.ID)
		}
	}
	if err != nil {
		return fmt.Errorf("record decision: %w", err)
	}
	if !c.Inserted[0] {
		return nil // decided before (a duplicate delivery or a second replica)
	}
	e.m.decisions.WithLabelValues(b.Events[0].Outcome).Inc()
	e.log.Info("decision", "node", s.Node, "kind", s.Kind, "status", s.Status, "outcome", b.Events[0].Outcome,
		"actions", len(planned), "correlation_id", corr, "policy_revision", pol.Revision)
	for _, req := range planned {
		e.dispatch(ctx, req, dispatchOptions{batchRecord: opt.batchRecords, owned: true})
	}
	return nil
}

// heldEvent is the event of an action the gate did not let through, and the ledger
// state it waits in ("" when the refusal is final). It takes the key a planned action
// would have (action:<id>), so an action has one first disposition even when two
// replicas decide. The kill switch and an open breaker pause an action rather than
// refuse it: it waits, and the guards look at it again after resume.
func heldEvent(base audit.Event, h Held) (audit.Event, audit.State) {
	ev := base
	ev.Detail, ev.Key = mustJSON(h), audit.ActionKey(base.ActionID)
	switch {
	case h.Verdict.Outcome == guard.Hold:
		ev.Type, ev.Outcome, ev.Actor = audit.ApprovalRequested, "pending", h.Requester
		return ev, audit.StateHeld
	case h.Verdict.Outcome == guard.Refuse && waits(h.Verdict.Reason):
		ev.Type, ev.Outcome = audit.ActionPaused, string(h.Verdict.Reason)
		return ev, audit.StatePaused
	case h.Verdict.Outcome == guard.Refuse:
		ev.Type, ev.Outcome = audit.GuardRefused, string(h.Verdict.Reason)
		return ev, ""
	}
	return audit.Event{}, ""
}

// waits reports whether a refusal for this reason is a pause: the kill switch, a tripped
// storm breaker.
func waits(r guard.Reason) bool { return r == guard.ReasonPaused || r == guard.ReasonStorm }

// requester is who raised the signal: the person its RequesterLabel names (normalised:
// trimmed, lower case; the webhook sets it to the authenticated identity when a person
// posts with their own token), else the engine.
func requester(s *signal.Signal) string {
	if p := strings.ToLower(strings.TrimSpace(s.Labels[RequesterLabel])); p != "" {
		return audit.UserActor(p)
	}
	return audit.ActorEngine
}
