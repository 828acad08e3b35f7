// Package approval keeps actions that wait for a human: risky decisions the engine's
// gate held. A pending action is a ledger row in state held (audit.Ledger, with the
// engine.Held a person judges); approving, rejecting and expiring are each a
// compare-and-set on that row (held → planned | rejected | expired | refused) committed
// with the event that records it, so exactly one final decision wins, whichever replica,
// person or expiry loop makes it, and the loser is told who won (409). The audit log
// holds the votes and reasons that the page and the CLI show.
//
// An approver cannot approve an action they requested (a signal labelled
// remedy_requested_by=<them>, in any case, or posted with their own token); critical
// actions, and actions no person is known to have requested, can need two different
// approvers; an approved action re-checks the guards before it runs. The package also serves the
// HTTP API, the web page and the CLI client for approvals and the kill switch.
package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
)

// State of a pending action.
type State string

// States.
const (
	Pending  State = "pending"
	Approved State = "approved"
	Rejected State = "rejected"
	Expired  State = "expired"
)

// Sentinel errors.
var (
	ErrNotFound     = errors.New("no such approval request")
	ErrNotPending   = errors.New("approval request is no longer pending")
	ErrSelfApproval = errors.New("an approver cannot approve their own request")
	ErrAlreadyVoted = errors.New("already approved by this person; a second approver is needed")
	ErrForbidden    = errors.New("role does not allow this")
	ErrNoReason     = errors.New("a reason is required")
	// ErrGuardRefused: approved, but the guards refused the action at execution time.
	ErrGuardRefused = errors.New("approved, but the guards refused the action")
)

// Vote is one person's approval.
type Vote struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Request is one held action and what happened to it.
type Request struct {
	ID          string      `json:"id"`
	State       State       `json:"state"`
	RequestedAt time.Time   `json:"requestedAt"`
	ExpiresAt   time.Time   `json:"expiresAt"`
	Held        engine.Held `json:"held"`
	// NeedVotes is 2 under the two-person rule, else 1.
	NeedVotes int    `json:"needVotes"`
	Votes     []Vote `json:"votes"`
	// DecidedBy, DecidedAt and Reason describe the final decision.
	DecidedBy string    `json:"decidedBy,omitempty"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	// Refused holds the guards' verdict when they refused an approved action.
	Refused *guard.Verdict `json:"refused,omitempty"`
	// Version is the ledger row's version when this was read: a decision made on it
	// applies only if nobody changed the row since.
	Version int64 `json:"version"`
	kind    string
	corr    string
}

// Executor plans an approved action and runs it on its own (engine.Engine).
type Executor interface {
	PlanApproved(ctx context.Context, id string, version int64, dryRun bool, events ...audit.Event) (audit.Action, error)
}

// Options build a Service.
type Options struct {
	Store  audit.Store
	Engine Executor
	// Guards re-check an approved action.
	Guards guard.Checker
	Config guard.Approval
	// History bounds how far back requests are read (default 7 days).
	History    time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service answers approvals.
type Service struct {
	o       Options
	pending prometheus.Gauge
}

// New builds a service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.History <= 0 {
		o.History = 7 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Config.TTL <= 0 {
		o.Config.TTL = time.Hour
	}
	s := &Service{o: o, pending: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "remedy_approvals_pending", Help: "Actions waiting for a human.",
	})}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.pending)
	}
	return s
}

func decisionKey(id string) string { return "approval-decision:" + id }

// request builds one request from its ledger row and its incident's approval events.
func (s *Service) request(ctx context.Context, row *audit.Action) (*Request, error) {
	evs, err := s.o.Store.Query(ctx, audit.Filter{CorrelationID: row.CorrelationID, Ascending: true, Limit: 100000,
		Types: []audit.Type{audit.ApprovalRequested, audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired, audit.GuardRefused}})
	if err != nil {
		return nil, fmt.Errorf("read approvals: %w", err)
	}
	var r *Request
	for _, ev := range evs {
		if ev.ActionID != row.ID {
			continue
		}
		switch ev.Type {
		case audit.ApprovalRequested:
			r = &Request{ID: row.ID, State: Pending, RequestedAt: ev.Time, ExpiresAt: ev.Time.Add(s.o.Config.TTL),
				NeedVotes: 1, Votes: []Vote{}, kind: row.Kind, corr: row.CorrelationID, Version: row.Version}
			if err := json.Unmarshal(ev.Detail, &r.Held); err != nil {
				return nil, fmt.Errorf("decode approval request %s: %w", row.ID, err)
			}
			if s.o.Config.TwoPersonCritical && r.Held.Decision.Risk == policy.RiskCritical ||
				s.o.Config.TwoPersonUnknownRequester && !strings.HasPrefix(r.Held.Requester, "user:") {
				r.NeedVotes = 2
			}
		case audit.GuardRefused:
			if r != nil && r.State == Approved {
				var h engine.Held
				if json.Unmarshal(ev.Detail, &h) == nil {
					r.Refused = &h.Verdict
				}
			}
		default:
			if r == nil {
				continue
			}
			var d decisionDetail
			_ = json.Unmarshal(ev.Detail, &d)
			if ev.Type == audit.ApprovalGranted {
				r.Votes = append(r.Votes, Vote{By: ev.Actor, At: ev.Time, Reason: d.Reason})
			}
			if ev.Key == decisionKey(ev.ActionID) {
				r.DecidedBy, r.DecidedAt, r.Reason = ev.Actor, ev.Time, d.Reason
				r.State = map[audit.Type]State{audit.ApprovalGranted: Approved, audit.ApprovalRejected: Rejected, audit.ApprovalExpired: Expired}[ev.Type]
			}
		}
	}
	if r == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, row.ID)
	}
	if row.State != audit.StateHeld && r.State == Pending {
		// Decided meanwhile, and its event not yet visible to this reader: the ledger says.
		r.State = map[audit.State]State{audit.StateRejected: Rejected, audit.StateExpired: Expired}[row.State]
		if r.State == "" {
			r.State = Approved
		}
	}
	return r, nil
}

// decisionDetail is the Detail of approval.granted/rejected/expired events.
type decisionDetail struct {
	Reason string `json:"reason,omitempty"`
	Vote   int    `json:"vote,omitempty"`
	Of     int    `json:"of,omitempty"`
}

// List returns requests, oldest first: the pending ones (the ledger's held actions), or
// with all every request of the history window.
func (s *Service) List(ctx context.Context, all bool) ([]Request, error) {
	var rows []audit.Action
	if all {
		evs, err := s.o.Store.Query(ctx, audit.Filter{Type: audit.ApprovalRequested, Since: s.o.Now().Add(-s.o.History),
			Limit: 100000, WithoutDetail: true})
		if err != nil {
			return nil, fmt.Errorf("read approvals: %w", err)
		}
		for _, ev := range evs {
			row, err := s.o.Store.Action(ctx, ev.ActionID)
			if errors.Is(err, audit.ErrNoAction) {
				continue // from before the ledger
			}
			if err != nil {
				return nil, fmt.Errorf("read approvals: %w", err)
			}
			rows = append(rows, row)
		}
	} else {
		var err error
		rows, err = s.o.Store.Actions(ctx, audit.ActionFilter{States: []audit.State{audit.StateHeld}, Limit: 100000})
		if err != nil {
			return nil, fmt.Errorf("read approvals: %w", err)
		}
		s.pending.Set(float64(len(rows)))
	}
	out := []Request{}
	for i := range rows {
		r, err := s.request(ctx, &rows[i])
		if errors.Is(err, ErrNotFound) {
			continue // a paused action, not one for people
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RequestedAt.Equal(out[j].RequestedAt) {
			return out[i].RequestedAt.Before(out[j].RequestedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Get returns one request.
func (s *Service) Get(ctx context.Context, id string) (Request, error) {
	row, err := s.o.Store.Action(ctx, id)
	if errors.Is(err, audit.ErrNoAction) {
		return Request{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Request{}, fmt.Errorf("read approvals: %w", err)
	}
	r, err := s.request(ctx, &row)
	if err != nil {
		return Request{}, err
	}
	return *r, nil
}

// lost turns a lost compare-and-set into the answer a person gets: the request was
// decided meanwhile, and how.
func (s *Service) lost(ctx context.Context, id string, err error) error {
	if !errors.Is(err, audit.ErrConflict) {
		return err
	}
	if r, gerr := s.Get(ctx, id); gerr == nil {
		if r.DecidedBy != "" {
			return fmt.Errorf("%w: %s was %s by %s meanwhile", ErrNotPending, id, r.State, r.DecidedBy)
		}
		return fmt.Errorf("%w: %s is %s", ErrNotPending, id, r.State)
	}
	return fmt.Errorf("%w: %s: %v", ErrNotPending, id, err)
}

func (s *Service) event(r *Request, t audit.Type, key, actor, outcome string, d decisionDetail) audit.Event {
	return audit.Event{Type: t, CorrelationID: r.corr, Node: r.Held.Request.Node, Kind: r.kind, Action: r.Held.Request.Action,
		ActionID: r.ID, Actor: actor, Outcome: outcome, Key: key, Detail: mustJSON(d), Time: s.o.Now().UTC()}
}

// decide commits a decision's events with the row's move from held to to, at the
// version the request was read at.
func (s *Service) decide(ctx context.Context, r *Request, to audit.State, events ...audit.Event) error {
	ch := audit.Change{ID: r.ID, From: []audit.State{audit.StateHeld}, Version: r.Version, To: to}
	if _, err := s.o.Store.Commit(ctx, audit.Batch{Events: events, Changes: []audit.Change{ch}}); err != nil {
		return s.lost(ctx, r.ID, err)
	}
	return nil
}

// open loads a request that is still pending, expiring it first when its TTL passed.
func (s *Service) open(ctx context.Context, id string) (*Request, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State == Pending && !s.o.Now().Before(r.ExpiresAt) {
		if err := s.expire(ctx, &r); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s expired at %s", ErrNotPending, id, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if r.State != Pending {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotPending, id, r.State)
	}
	return &r, nil
}

// Approve records who approved and why; once enough people approved, the guards are
// re-checked and the action is planned (or refused, audited). It returns once that is
// recorded: the action runs on its own, and its result follows in the log.
func (s *Service) Approve(ctx context.Context, id string, who Identity, reason string) (Request, error) {
	if !who.Role.Allows(Approver) {
		return Request{}, fmt.Errorf("%w: %s is %s", ErrForbidden, who.Name, who.Role)
	}
	if strings.TrimSpace(reason) == "" {
		return Request{}, ErrNoReason
	}
	r, err := s.open(ctx, id)
	if err != nil {
		return Request{}, err
	}
	// Identities are compared without case: remedy_requested_by=Alice is alice.
	if strings.EqualFold(r.Held.Requester, who.Actor()) {
		return Request{}, fmt.Errorf("%w: %s requested %s", ErrSelfApproval, who.Name, id)
	}
	for _, v := range r.Votes {
		if strings.EqualFold(v.By, who.Actor()) {
			return Request{}, fmt.Errorf("%w: %s", ErrAlreadyVoted, id)
		}
	}
	d := decisionDetail{Reason: reason, Vote: len(r.Votes) + 1, Of: r.NeedVotes}
	if d.Vote < r.NeedVotes {
		ev := s.event(r, audit.ApprovalGranted, fmt.Sprintf("approval-vote:%s:%s", id, who.Name), who.Actor(),
			fmt.Sprintf("vote %d of %d", d.Vote, d.Of), d)
		if err := s.decide(ctx, r, audit.StateHeld, ev); err != nil {
			return Request{}, err
		}
		return s.Get(ctx, id)
	}
	granted := s.event(r, audit.ApprovalGranted, decisionKey(id), who.Actor(), "approved", d)
	v := guard.Verdict{Outcome: guard.Allow}
	if s.o.Guards != nil {
		v = s.o.Guards.Check(ctx, r.Held.Candidate(true))
	}
	switch v.Outcome {
	case guard.Refuse, guard.Hold:
		h := r.Held
		h.Verdict = v
		refused := s.event(r, audit.GuardRefused, "refused:"+id, audit.ActorEngine, string(v.Reason), decisionDetail{})
		refused.Detail = mustJSON(h)
		if err := s.decide(ctx, r, audit.StateRefused, granted, refused); err != nil {
			return Request{}, err
		}
		s.o.Logger.Info("approved action refused by guards", "action_id", id, "by", who.Name, "reason", v.Reason)
		out, _ := s.Get(ctx, id)
		return out, fmt.Errorf("%w: %s: %s", ErrGuardRefused, v.Reason, v.Message)
	}
	if _, err := s.o.Engine.PlanApproved(ctx, id, r.Version, v.Outcome == guard.DryRun, granted); err != nil {
		return Request{}, s.lost(ctx, id, err)
	}
	s.o.Logger.Info("action approved", "action_id", id, "by", who.Name, "action", r.Held.Request.Action, "node", r.Held.Request.Node)
	return s.Get(ctx, id)
}

// Reject records who rejected and why; the action never runs.
func (s *Service) Reject(ctx context.Context, id string, who Identity, reason string) (Request, error) {
	if !who.Role.Allows(Approver) {
		return Request{}, fmt.Errorf("%w: %s is %s", ErrForbidden, who.Name, who.Role)
	}
	if strings.TrimSpace(reason) == "" {
		return Request{}, ErrNoReason
	}
	r, err := s.open(ctx, id)
	if err != nil {
		return Request{}, err
	}
	ev := s.event(r, audit.ApprovalRejected, decisionKey(id), who.Actor(), "rejected", decisionDetail{Reason: reason})
	if err := s.decide(ctx, r, audit.StateRejected, ev); err != nil {
		return Request{}, err
	}
	s.o.Logger.Info("action rejected", "action_id", id, "by", who.Name)
	return s.Get(ctx, id)
}

func (s *Service) expire(ctx context.Context, r *Request) error {
	ev := s.event(r, audit.ApprovalExpired, decisionKey(r.ID), audit.ActorEngine, "expired",
		decisionDetail{Reason: "no decision within " + s.o.Config.TTL.String()})
	if err := s.decide(ctx, r, audit.StateExpired, ev); err != nil {
		return err
	}
	r.State = Expired
	return nil
}

// ExpireDue expires every pending request whose TTL passed and reports how many.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	list, err := s.List(ctx, false)
	if err != nil {
		return 0, err
	}
	n := 0
	now := s.o.Now()
	for i := range list {
		if now.Before(list[i].ExpiresAt) {
			continue
		}
		if err := s.expire(ctx, &list[i]); err != nil {
			if errors.Is(err, ErrNotPending) {
				continue // decided meanwhile: the person won
			}
			return n, err
		}
		n++
	}
	if n > 0 {
		s.pending.Sub(float64(n))
		s.o.Logger.Info("approval requests expired", "count", n)
	}
	return n, nil
}

// Run expires due requests every interval until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			s.o.Logger.Error("expire approvals", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
	}
	return b
}
