// Package verify checks that an action fixed what it was for: after an action succeeds,
// the signal that asked for it has a per-action window to resolve. It audits the
// outcome (verification event, key verify:<action id>): fixed when the signal resolved,
// not_fixed when the window passed, rolled_back when the executor rolled back. A
// not_fixed incident escalates: the signal is submitted again as a new firing, so the
// policy decides once more with the failed attempt in the node's history.
//
// The verifier reads only the audit log, so it resumes after a restart where it was.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/signal"
)

// Outcomes of a verification: the audit log's names (docs/audit.md).
const (
	Fixed      = audit.OutcomeFixed
	NotFixed   = audit.OutcomeNotFixed
	RolledBack = audit.OutcomeRolledBack
)

// EscalationLabel counts how often an incident was escalated.
const EscalationLabel = "remedy_escalation"

// Options build a Verifier.
type Options struct {
	Store  audit.Store
	Sink   signal.Sink
	Config guard.Verification
	Now    func() time.Time
	Logger *slog.Logger
}

// Verifier audits whether actions fixed their signal.
type Verifier struct{ o Options }

// New builds a verifier.
func New(o Options) *Verifier {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Verifier{o: o}
}

// Detail is the Detail of a verification event.
type Detail struct {
	Window    string `json:"window,omitempty"`
	Escalated string `json:"escalated,omitempty"` // the escalation signal's correlation id
}

func (v *Verifier) horizon() time.Duration {
	h := v.o.Config.Window
	for _, d := range v.o.Config.PerAction {
		h = max(h, d)
	}
	return h + time.Hour
}

// Tick verifies every action whose result is in and whose verification is not.
func (v *Verifier) Tick(ctx context.Context) (int, error) {
	now := v.o.Now()
	since := now.Add(-v.horizon())
	results, err := v.o.Store.Query(ctx, audit.Filter{Type: audit.ActionResult, Since: since, Ascending: true, Limit: 100000})
	if err != nil {
		return 0, fmt.Errorf("verify: %w", err)
	}
	done, err := v.o.Store.Query(ctx, audit.Filter{Type: audit.Verification, Since: since, Limit: 100000})
	if err != nil {
		return 0, fmt.Errorf("verify: %w", err)
	}
	verified := map[string]bool{}
	for _, e := range done {
		verified[e.ActionID] = true
	}
	n := 0
	for _, r := range results {
		if verified[r.ActionID] {
			continue
		}
		var out string
		var d Detail
		switch executors.Status(r.Outcome) {
		case executors.RolledBack:
			out = RolledBack
		case executors.Succeeded:
			window := v.o.Config.WindowFor(r.Action)
			if window == 0 {
				continue
			}
			d.Window = window.String()
			resolved, err := v.o.Store.Query(ctx, audit.Filter{CorrelationID: r.CorrelationID, Type: audit.SignalReceived,
				Outcome: string(signal.Resolved), Limit: 1})
			if err != nil {
				return n, fmt.Errorf("verify: %w", err)
			}
			switch {
			case len(resolved) > 0:
				out = Fixed
			case now.Sub(r.Time) >= window:
				out = NotFixed
				if d.Escalated, err = v.escalate(ctx, r); err != nil {
					return n, err
				}
			default:
				continue
			}
		default:
			continue
		}
		ev := audit.Event{Type: audit.Verification, CorrelationID: r.CorrelationID, Node: r.Node, Kind: r.Kind,
			Action: r.Action, ActionID: r.ActionID, Actor: audit.ActorEngine, Outcome: out, Key: "verify:" + r.ActionID}
		ev.Detail, _ = json.Marshal(d)
		if _, err := v.o.Store.Append(ctx, ev); err != nil {
			return n, fmt.Errorf("record verification: %w", err)
		}
		v.o.Logger.Info("verification", "action_id", r.ActionID, "node", r.Node, "action", r.Action, "outcome", out)
		n++
	}
	return n, nil
}

// escalate submits the incident's signal again as a new firing, unless it was escalated
// as often as configured. It returns the new signal's correlation id.
func (v *Verifier) escalate(ctx context.Context, r audit.Event) (string, error) {
	if v.o.Sink == nil {
		return "", nil
	}
	orig, err := v.o.Store.Query(ctx, audit.Filter{CorrelationID: r.CorrelationID, Type: audit.SignalReceived,
		Outcome: string(signal.Firing), Ascending: true, Limit: 1})
	if err != nil {
		return "", fmt.Errorf("escalate: %w", err)
	}
	if len(orig) == 0 {
		return "", nil
	}
	var s signal.Signal
	if err := json.Unmarshal(orig[0].Detail, &s); err != nil {
		return "", fmt.Errorf("escalate: decode signal: %w", err)
	}
	n, _ := strconv.Atoi(s.Labels[EscalationLabel])
	if n >= v.o.Config.Escalations {
		return "", nil
	}
	labels := make(map[string]string, len(s.Labels)+1)
	for k, val := range s.Labels {
		labels[k] = val
	}
	labels[EscalationLabel] = strconv.Itoa(n + 1)
	s.Labels = labels
	fp := s.Fingerprint
	if fp == "" {
		fp = s.Node + "/" + string(s.Kind)
	}
	s.Fingerprint = fmt.Sprintf("%s#escalation-%d", fp, n+1)
	s.Raw = nil
	if err := v.o.Sink.Submit(ctx, []signal.Signal{s}); err != nil {
		return "", fmt.Errorf("escalate: %w", err)
	}
	return engine.CorrelationID(&s), nil
}

// Run verifies every interval until ctx ends.
func (v *Verifier) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := v.Tick(ctx); err != nil && ctx.Err() == nil {
			v.o.Logger.Error("verify", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
