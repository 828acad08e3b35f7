// Package approval keeps actions that wait for a human: risky decisions the engine's
// gate held (engine.Held in an approval.requested event). The audit log is the source of
// truth: a pending action is an approval.requested event without a final decision, so
// pending actions survive a restart with nothing else to store. Approving, rejecting
// and expiring each append one event whose key (approval-decision:<id>) is unique, so
// only the first final decision wins, whichever replica or person makes it.
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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
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
	kind    string
	corr    string
}

// Executor runs an approved action (engine.Engine).
type Executor interface {
	Execute(ctx context.Context, req executors.Request, kind string, events ...audit.Event) error
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
	mu      sync.Mutex // serialises decisions in this process; keys serialise across processes
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

// load reads every request in the history window with its votes and decision.
func (s *Service) load(ctx context.Context) (map[string]*Request, error) {
	since := s.o.Now().Add(-s.o.History)
	byType := map[audit.Type][]audit.Event{}
	for _, t := range []audit.Type{audit.ApprovalRequested, audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired, audit.GuardRefused} {
		evs, err := s.o.Store.Query(ctx, audit.Filter{Type: t, Since: since, Ascending: true, Limit: 100000})
		if err != nil {
			return nil, fmt.Errorf("read approvals: %w", err)
		}
		byType[t] = evs
	}
	out := map[string]*Request{}
	for _, ev := range byType[audit.ApprovalRequested] {
		r := &Request{ID: ev.ActionID, State: Pending, RequestedAt: ev.Time, ExpiresAt: ev.Time.Add(s.o.Config.TTL),
			NeedVotes: 1, Votes: []Vote{}, kind: ev.Kind, corr: ev.CorrelationID}
		if err := json.Unmarshal(ev.Detail, &r.Held); err != nil {
			return nil, fmt.Errorf("decode approval request %s: %w", ev.ActionID, err)
		}
		if s.o.Config.TwoPersonCritical && r.Held.Decision.Risk == policy.RiskCritical ||
			s.o.Config.TwoPersonUnknownRequester && !strings.HasPrefix(r.Held.Requester, "user:") {
			r.NeedVotes = 2
		}
		out[r.ID] = r
	}
	for _, t := range []audit.Type{audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired} {
		for _, ev := range byType[t] {
			r := out[ev.ActionID]
			if r == nil {
				continue
			}
			var d decisionDetail
			_ = json.Unmarshal(ev.Detail, &d)
			if t == audit.ApprovalGranted {
				r.Votes = append(r.Votes, Vote{By: ev.Actor, At: ev.Time, Reason: d.Reason})
			}
			if ev.Key == decisionKey(ev.ActionID) {
				r.DecidedBy, r.DecidedAt, r.Reason = ev.Actor, ev.Time, d.Reason
				r.State = map[audit.Type]State{audit.ApprovalGranted: Approved, audit.ApprovalRejected: Rejected, audit.ApprovalExpired: Expired}[t]
			}
		}
	}
	for _, ev := range byType[audit.GuardRefused] {
		if r := out[ev.ActionID]; r != nil && r.State == Approved {
			var h engine.Held
			if json.Unmarshal(ev.Detail, &h) == nil {
				r.Refused = &h.Verdict
			}
		}
	}
	return out, nil
}

// decisionDetail is the Detail of approval.granted/rejected/expired events.
type decisionDetail struct {
	Reason string `json:"reason,omitempty"`
	Vote   int    `json:"vote,omitempty"`
	Of     int    `json:"of,omitempty"`
}

// List returns requests, oldest first: only pending ones unless all is set.
func (s *Service) List(ctx context.Context, all bool) ([]Request, error) {
	m, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	out := []Request{}
	n := 0
	for _, r := range m {
		if r.State == Pending {
			n++
		}
		if all || r.State == Pending {
			out = append(out, *r)
		}
	}
	s.pending.Set(float64(n))
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
	m, err := s.load(ctx)
	if err != nil {
		return Request{}, err
	}
	r, ok := m[id]
	if !ok {
		return Request{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return *r, nil
}

func (s *Service) event(r *Request, t audit.Type, key, actor, outcome string, d decisionDetail) audit.Event {
	return audit.Event{Type: t, CorrelationID: r.corr, Node: r.Held.Request.Node, Kind: r.kind, Action: r.Held.Request.Action,
		ActionID: r.ID, Actor: actor, Outcome: outcome, Key: key, Detail: mustJSON(d), Time: s.o.Now().UTC()}
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
// re-checked and the action runs (or is refused, audited).
func (s *Service) Approve(ctx context.Context, id string, who Identity, reason string) (Request, error) {
	if !who.Role.Allows(Approver) {
		return Request{}, fmt.Errorf("%w: %s is %s", ErrForbidden, who.Name, who.Role)
	}
	if strings.TrimSpace(reason) == "" {
		return Request{}, ErrNoReason
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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
		if _, err := s.o.Store.Append(ctx, ev); err != nil {
			return Request{}, fmt.Errorf("record approval: %w", err)
		}
		return s.Get(ctx, id)
	}
	granted := s.event(r, audit.ApprovalGranted, decisionKey(id), who.Actor(), "approved", d)
	req := r.Held.Request
	c := guard.Candidate{ActionID: id, Action: req.Action, Node: req.Node, Kind: r.kind, SignalKey: r.Held.Signal.Key(),
		Risk: r.Held.Decision.Risk, RequiresApproval: r.Held.Decision.RequiresApproval, Approved: true,
		NodeFacts: r.Held.Node, Cluster: r.Held.Cluster}
	v := guard.Verdict{Outcome: guard.Allow}
	if s.o.Guards != nil {
		v = s.o.Guards.Check(ctx, c)
	}
	switch v.Outcome {
	case guard.Refuse, guard.Hold:
		h := r.Held
		h.Verdict = v
		refused := s.event(r, audit.GuardRefused, "refused:"+id, audit.ActorEngine, string(v.Reason), decisionDetail{})
		refused.Detail = mustJSON(h)
		if _, err := s.o.Store.Append(ctx, granted, refused); err != nil {
			return Request{}, fmt.Errorf("record approval: %w", err)
		}
		s.o.Logger.Info("approved action refused by guards", "action_id", id, "by", who.Name, "reason", v.Reason)
		out, _ := s.Get(ctx, id)
		return out, fmt.Errorf("%w: %s: %s", ErrGuardRefused, v.Reason, v.Message)
	case guard.DryRun:
		req.DryRun = true
	}
	if err := s.o.Engine.Execute(ctx, req, r.kind, granted); err != nil {
		return Request{}, err
	}
	s.o.Logger.Info("action approved", "action_id", id, "by", who.Name, "action", req.Action, "node", req.Node)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.open(ctx, id)
	if err != nil {
		return Request{}, err
	}
	ev := s.event(r, audit.ApprovalRejected, decisionKey(id), who.Actor(), "rejected", decisionDetail{Reason: reason})
	ins, err := s.o.Store.Append(ctx, ev)
	if err != nil {
		return Request{}, fmt.Errorf("record rejection: %w", err)
	}
	if !ins[0] {
		return Request{}, fmt.Errorf("%w: %s was decided meanwhile", ErrNotPending, id)
	}
	s.o.Logger.Info("action rejected", "action_id", id, "by", who.Name)
	return s.Get(ctx, id)
}

func (s *Service) expire(ctx context.Context, r *Request) error {
	ev := s.event(r, audit.ApprovalExpired, decisionKey(r.ID), audit.ActorEngine, "expired",
		decisionDetail{Reason: "no decision within " + s.o.Config.TTL.String()})
	if _, err := s.o.Store.Append(ctx, ev); err != nil {
		return fmt.Errorf("record expiry: %w", err)
	}
	r.State = Expired
	return nil
}

// ExpireDue expires every pending request whose TTL passed and reports how many.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
