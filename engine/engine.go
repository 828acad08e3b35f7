// Package engine turns signals into audited actions. For every signal it records the
// signal durably (the audit log doubles as the intake journal), asks the policy for
// decisions, checks each against the action catalogue, applies the engine's guards,
// records the outcome and dispatches: node actions to the node's agent over NATS,
// cluster actions to in-process executors. Results come back through RecordResult.
//
// Every step is idempotent: a signal's key, a decision's key and an action's id are
// unique in the audit log, so a duplicate delivery, a crash and recovery, or a second
// replica never produce a second action.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/wire/signal"
	"github.com/remedyhq/remedy/executors"
)

// Dispatcher delivers a node action to the node's agent.
type Dispatcher interface {
	Dispatch(ctx context.Context, req executors.Request) error
}

// Gate stands between planning and dispatch: the guards and approvals
// (engine/guard, engine/approval). It is asked once per planned action, before the
// action is recorded, and Paused stops every dispatch (the kill switch).
type Gate interface {
	Check(ctx context.Context, c guard.Candidate) guard.Verdict
	Paused() bool
}

// Held is the Detail of an approval.requested or guard.refused event: the action and
// everything a person needs to judge it.
type Held struct {
	Request   executors.Request `json:"request"`
	Decision  policy.Decision   `json:"decision"`
	Signal    signal.Signal     `json:"signal"`
	Node      facts.Node        `json:"node"`
	Cluster   facts.Cluster     `json:"cluster"`
	Verdict   guard.Verdict     `json:"verdict"`
	Requester string            `json:"requester"`
}

// RequesterLabel on a signal names the person who raised it; they may not approve the
// actions it leads to.
const RequesterLabel = "remedy_requested_by"

// Options configure an Engine.
type Options struct {
	Store      audit.Store
	Policy     *policy.Holder
	Actions    *executors.Registry
	Facts      facts.Provider
	Dispatcher Dispatcher
	// Gate, when set, checks every planned action (guards, approvals, kill switch).
	Gate Gate
	// DryRun makes every action a dry run, whatever a policy says.
	DryRun bool
	// ActionTTL is how long a dispatched action stays worth running (default 10m).
	ActionTTL time.Duration
	// HistoryWindow is how far back the node's action history in the policy input
	// reaches (default 24h).
	HistoryWindow time.Duration
	// Workers decide signals concurrently (default 16: each waits for a durable commit, so more workers share more fsyncs).
	Workers int
	// SweepInterval is how often recorded-but-undecided signals and undispatched
	// actions are retried (default 2s).
	SweepInterval time.Duration
	// RedispatchAfter is how long a dispatched action may go without a result before it
	// is published again (default 2m): a NATS server killed before it wrote an
	// acknowledged message to disk loses it. The agent runs an action id once, so a
	// second copy only re-reports.
	RedispatchAfter time.Duration
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
	Now             func() time.Time
}

// Engine is the decision pipeline.
type Engine struct {
	o        Options
	log      *slog.Logger
	queue    chan signal.Signal
	inflight sync.Map // signal key -> struct{}: being decided
	// queued holds the keys of signals waiting in queue, so the sweep leaves them to the
	// workers instead of deciding them twice (the second time only to find the first).
	queued sync.Map
	// dispatching holds the action ids being dispatched or run right now, so the sweep
	// does not start a second run of an in-cluster action that is still executing.
	dispatching sync.Map
	m           metrics
	// undecidedMark and undispatchedMark are the sweep's watermarks (seqs below which
	// nothing is pending); only the sweep goroutine uses them.
	undecidedMark, undispatchedMark int64
	hist                            historyCache
	intake                          atomic.Int32     // Submit calls waiting for their commit
	stormSlot                       chan struct{}    // the decision a storm allows at a time
	dispatched                      chan audit.Event // the workers' dispatch records, for recordDispatches
	workers                         sync.WaitGroup
	committed                       atomic.Int64 // the newest seq this engine saw committed

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// queueSize bounds the signals recorded and waiting for a worker; past it they wait in
// the audit log for the sweep.
const queueSize = 16384

// New checks options and builds an engine; Start runs it.
func New(o Options) (*Engine, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("engine: no audit store")
	case o.Policy == nil || o.Policy.Current() == nil:
		return nil, errors.New("engine: no policy")
	case o.Actions == nil:
		return nil, errors.New("engine: no action catalogue")
	case o.Dispatcher == nil:
		return nil, errors.New("engine: no dispatcher")
	}
	if o.Facts == nil {
		o.Facts = facts.Static{}
	}
	if o.ActionTTL <= 0 {
		o.ActionTTL = 10 * time.Minute
	}
	if o.HistoryWindow <= 0 {
		o.HistoryWindow = 24 * time.Hour
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 2 * time.Second
	}
	if o.RedispatchAfter <= 0 {
		o.RedispatchAfter = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	e := &Engine{o: o, log: o.Logger, queue: make(chan signal.Signal, queueSize), m: newMetrics(o.Registerer),
		stormSlot: make(chan struct{}, 1), dispatched: make(chan audit.Event, 4096)}
	return e, nil
}

// Start runs the workers and the recovery sweep until Stop.
func (e *Engine) Start(ctx context.Context) {
	e.ctx, e.cancel = context.WithCancel(ctx)
	for range e.o.Workers {
		e.wg.Add(1)
		e.workers.Add(1)
		go func() {
			defer e.workers.Done()
			e.work()
		}()
	}
	e.wg.Add(2)
	go e.sweepLoop()
	go e.recordDispatches()
}

// Stop cancels the workers and waits for them. Undecided signals stay recorded and are
// decided by the next start.
func (e *Engine) Stop() {
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
}

// Submit records signals durably and queues the new ones for a decision. It returns
// once the signals are committed; a nil error is the caller's licence to acknowledge.
// Invalid signals are recorded as rejected, not returned as an error: re-sending them
// would not make them valid.
func (e *Engine) Submit(ctx context.Context, sigs []signal.Signal) error {
	if len(sigs) == 0 {
		return nil
	}
	events := make([]audit.Event, len(sigs))
	for i := range sigs {
		events[i] = signalEvent(&sigs[i])
	}
	e.intake.Add(1)
	inserted, err := e.appendEvents(ctx, events...)
	e.intake.Add(-1)
	if err != nil {
		return fmt.Errorf("record signals: %w", err)
	}
	for i, s := range sigs {
		e.m.signals.WithLabelValues(s.Source, string(events[i].Type), fmt.Sprint(inserted[i])).Inc()
		if !inserted[i] || events[i].Type != audit.SignalReceived {
			continue
		}
		key := s.Key()
		e.queued.Store(key, struct{}{})
		select {
		case e.queue <- s:
		default:
			// Queue full: the signal is recorded, the sweep will decide it.
			e.queued.Delete(key)
		}
	}
	return nil
}

// Handle records one signal and decides it before returning: the NATS intake acks a
// message only after its decision is in the audit log.
func (e *Engine) Handle(ctx context.Context, s signal.Signal) error {
	ev := signalEvent(&s)
	if _, err := e.appendEvents(ctx, ev); err != nil {
		return fmt.Errorf("record signal: %w", err)
	}
	if ev.Type != audit.SignalReceived {
		return nil
	}
	return e.decide(ctx, s)
}

func signalEvent(s *signal.Signal) audit.Event {
	key := s.Key()
	ev := audit.Event{
		Type:          audit.SignalReceived,
		CorrelationID: CorrelationID(s),
		Node:          s.Node,
		Kind:          string(s.Kind),
		Actor:         s.Source,
		Outcome:       string(s.Status),
		Key:           audit.SignalKey(key),
	}
	if err := s.Validate(); err != nil {
		ev.Type = audit.SignalRejected
		ev.Outcome = "rejected"
		ev.Key = "rejected:" + key
		ev.Detail = mustJSON(map[string]any{"error": err.Error(), "signal": s})
		return ev
	}
	ev.Detail = mustJSON(s)
	return ev
}

// CorrelationID ties every event of one incident together: one alert's firing episode,
// from signal through resolution.
func CorrelationID(s *signal.Signal) string {
	fp := s.Fingerprint
	if fp == "" {
		fp = s.Node + "/" + string(s.Kind)
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d", s.Source, fp, s.StartsAt.UnixNano()))
	return hex.EncodeToString(h[:8])
}

// ActionID is the idempotency key of an action: one signal asking for the same action
// with the same parameters is one action.
func ActionID(signalKey, action string, params json.RawMessage) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s", signalKey, action, params))
	return hex.EncodeToString(h[:12])
}

func (e *Engine) work() {
	defer e.wg.Done()
	// Decisions are committed after the intake waiting beside them: a storm is
	// acknowledged first, and decided as fast as the rest of each commit allows.
	ctx := batchDispatch(audit.Deferrable(e.ctx))
	for {
		select {
		case <-e.ctx.Done():
			return
		case s := <-e.queue:
			e.queued.Delete(s.Key())
			release := e.yieldToIntake()
			if err := e.decide(ctx, s); err != nil && e.ctx.Err() == nil {
				e.log.Error("decide", "node", s.Node, "kind", s.Kind, "err", err)
			}
			release()
		}
	}
}

// stormIntake is how many webhook batches waiting for their commit at once make a
// storm: then the workers decide one signal at a time, leaving the CPU to intake, so a
// storm is acknowledged first and decided right after. (At 1,000 alerts/s offered a
// commit or two are in flight; sixteen busy senders keep about sixteen.)
const stormIntake = 4

// yieldToIntake waits, during a storm, for the one decision slot a storm allows, and
// returns its release.
func (e *Engine) yieldToIntake() (release func()) {
	if e.intake.Load() < stormIntake {
		return func() {}
	}
	select {
	case e.stormSlot <- struct{}{}:
		return func() { <-e.stormSlot }
	case <-e.ctx.Done():
		return func() {}
	}
}

func (e *Engine) sweepLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.o.SweepInterval)
	defer t.Stop()
	lastRedispatch := time.Now()
	ctx := context.WithValue(audit.Deferrable(e.ctx), sweepKey{}, true)
	for {
		e.sweep(ctx)
		if time.Since(lastRedispatch) >= e.o.RedispatchAfter/2 {
			e.redispatchStale(ctx)
			lastRedispatch = time.Now()
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep decides signals that were recorded but not decided (a crash, a full queue) and
// dispatches actions that were planned but not dispatched (a NATS outage). It scans
// from a watermark: the seq below which every signal is decided and every action
// dispatched, so that a sweep costs what is new, not the whole log.
func (e *Engine) sweep(ctx context.Context) {
	head, err := e.head(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("sweep: read head", "err", err)
		}
		return
	}
	var undecided []audit.Event
	if len(e.queue) == 0 {
		// While the workers have a queue, what is recorded and undecided is mostly in
		// it; reading it again (with details) would only slow them down. Whatever the
		// queue missed (it was full) is found once it drains.
		undecided, err = e.o.Store.Undecided(ctx, e.undecidedMark, sweepBatch)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("sweep undecided", "err", err)
			}
			return
		}
		e.undecidedMark = nextMark(e.undecidedMark, undecided, head)
	}
	for _, ev := range undecided {
		if _, ok := e.queued.Load(strings.TrimPrefix(ev.Key, audit.SignalKey(""))); ok {
			continue // a worker decides it
		}
		var s signal.Signal
		if err := json.Unmarshal(ev.Detail, &s); err != nil {
			e.log.Error("sweep: undecodable signal event", "seq", ev.Seq, "err", err)
			continue
		}
		if err := e.decide(ctx, s); err != nil && ctx.Err() == nil {
			e.log.Error("sweep decide", "seq", ev.Seq, "err", err)
		}
	}
	planned, err := e.o.Store.Undispatched(ctx, e.undispatchedMark, sweepBatch)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("sweep undispatched", "err", err)
		}
		return
	}
	e.undispatchedMark = nextMark(e.undispatchedMark, planned, head)
	for _, ev := range planned {
		var req executors.Request
		if err := json.Unmarshal(ev.Detail, &req); err != nil {
			e.log.Error("sweep: undecodable action event", "seq", ev.Seq, "err", err)
			continue
		}
		if err := e.dispatch(ctx, req); err != nil {
			return // NATS is down: the rest would wait out their timeouts one by one
		}
	}
}

// sweepBatch bounds the events one sweep handles of each kind.
const sweepBatch = 1000

// nextMark is the next sweep's watermark: just below the oldest event still pending
// (it may be handled by then, or it is retried), else the head read before the scan
// (events after it may have been appended since).
func nextMark(mark int64, pending []audit.Event, head int64) int64 {
	if len(pending) > 0 {
		return max(mark, pending[0].Seq-1)
	}
	return max(mark, head)
}

// head is the seq of the newest event in the audit log (0 when empty).
func (e *Engine) head(ctx context.Context) (int64, error) {
	evs, err := e.o.Store.Query(ctx, audit.Filter{Limit: 1, WithoutDetail: true})
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return evs[0].Seq, nil
}

// redispatchStale publishes again the actions that were dispatched more than
// RedispatchAfter ago, are still within their deadline, and have no result.
func (e *Engine) redispatchStale(ctx context.Context) {
	now := e.o.Now().UTC()
	// Far enough back to see an action past its deadline and grace (expireUnanswered)
	// on a run every RedispatchAfter/2.
	since := now.Add(-e.o.ActionTTL - 3*e.o.RedispatchAfter)
	query := func(t audit.Type) []audit.Event {
		evs, err := e.o.Store.Query(ctx, audit.Filter{Type: t, Since: since, Limit: 100000, WithoutDetail: t != audit.ActionPlanned})
		if err != nil && ctx.Err() == nil {
			e.log.Error("redispatch query", "type", t, "err", err)
		}
		return evs
	}
	answered := map[string]bool{}
	for _, ev := range query(audit.ActionResult) {
		answered[ev.ActionID] = true
	}
	stale := map[string]bool{}
	for _, ev := range query(audit.Dispatched) {
		if !answered[ev.ActionID] && now.Sub(ev.Time) >= e.o.RedispatchAfter {
			stale[ev.ActionID] = true
		}
	}
	if len(stale) == 0 {
		return
	}
	for _, ev := range query(audit.ActionPlanned) { // approved actions are planned events too
		if !stale[ev.ActionID] {
			continue
		}
		var req executors.Request
		if json.Unmarshal(ev.Detail, &req) != nil || req.ID == "" {
			continue
		}
		delete(stale, ev.ActionID)
		if now.After(req.Deadline) {
			if now.After(req.Deadline.Add(e.o.RedispatchAfter)) {
				e.expireUnanswered(ctx, req, now)
			}
			continue // the agent refuses it past its deadline; wait for its report a while
		}
		e.log.Warn("no result for a dispatched action; publishing it again", "action_id", req.ID, "node", req.Node)
		if err := e.o.Dispatcher.Dispatch(ctx, req); err != nil {
			return
		}
	}
}

// expireUnanswered records that an action dispatched to a node's agent got no result by
// its deadline and a grace period after it: the agent is gone (or cut off). The agent
// refuses the action if it comes back (it is past its deadline), and its own "expired"
// report then finds this one in place.
func (e *Engine) expireUnanswered(ctx context.Context, req executors.Request, now time.Time) {
	e.log.Warn("no result from the agent by the action's deadline; recording it expired", "action_id", req.ID, "node", req.Node,
		"deadline", req.Deadline)
	res := executors.Result{ID: req.ID, Action: req.Action, Node: req.Node, CorrelationID: req.CorrelationID,
		Status: executors.Expired, FinishedAt: now,
		Message: fmt.Sprintf("no result from the node's agent by the deadline %s (+%s grace); it will not run", req.Deadline.Format(time.RFC3339), e.o.RedispatchAfter)}
	if err := e.RecordResult(ctx, res); err != nil {
		e.log.Error("record expiry", "action_id", req.ID, "err", err)
	}
}

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

// decide evaluates the policy for one signal and records and dispatches the outcome.
// A second call for the same signal finds its decision already recorded and does
// nothing.
func (e *Engine) decide(ctx context.Context, s signal.Signal) error {
	key := s.Key()
	if _, busy := e.inflight.LoadOrStore(key, struct{}{}); busy {
		return nil
	}
	defer e.inflight.Delete(key)

	pol := e.o.Policy.Current()
	corr := CorrelationID(&s)
	dec := audit.Event{Type: audit.Decision, CorrelationID: corr, Node: s.Node, Kind: string(s.Kind), Actor: "engine",
		PolicyRev: pol.Revision, Key: audit.DecisionKey(key)}
	var detail decisionDetail
	in, err := e.BuildInput(ctx, s)
	if err != nil {
		return err // transient (facts, store): the sweep retries
	}
	inJSON := mustJSON(in)
	sum := sha256.Sum256(inJSON)
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

	events := []audit.Event{dec}
	var reqs []executors.Request
	now := e.o.Now().UTC()
	for _, d := range decisions {
		id := ActionID(key, d.Action, d.Params)
		base := audit.Event{CorrelationID: corr, Node: s.Node, Kind: string(s.Kind), Action: d.Action, ActionID: id,
			Actor: "engine", PolicyRev: pol.Revision, InputHash: dec.InputHash}
		if _, err := e.o.Actions.Check(d.Action, d.Params); err != nil {
			ev := base
			ev.Type, ev.Outcome, ev.Key = audit.ActionRejected, "rejected", "rejected:"+id
			ev.Detail = mustJSON(map[string]any{"decision": d, "error": err.Error()})
			events = append(events, ev)
			e.m.actions.WithLabelValues(d.Action, "rejected").Inc()
			continue
		}
		req := executors.Request{ID: id, Action: d.Action, Node: s.Node, Params: d.Params, DryRun: e.o.DryRun,
			CorrelationID: corr, Reason: d.Reason, Deadline: now.Add(e.o.ActionTTL)}
		if e.o.Gate != nil {
			v := e.o.Gate.Check(ctx, guard.Candidate{ActionID: id, Action: d.Action, Node: s.Node, Kind: string(s.Kind),
				SignalKey: key, Resolved: s.Status == signal.Resolved, Risk: d.Risk, RequiresApproval: d.RequiresApproval, NodeFacts: in.Node, Cluster: in.Cluster})
			if v.Outcome == guard.DryRun {
				req.DryRun = true
			}
			if v.Outcome == guard.Hold || v.Outcome == guard.Refuse {
				events = append(events, heldEvent(base, Held{Request: req, Decision: d, Signal: in.Signal, Node: in.Node,
					Cluster: in.Cluster, Verdict: v, Requester: requester(&s)}))
				continue
			}
		}
		ev := base
		ev.Type, ev.Key, ev.Outcome = audit.ActionPlanned, "action:"+id, "planned"
		if req.DryRun {
			ev.Outcome = "dry_run"
		}
		ev.Detail = mustJSON(req)
		events = append(events, ev)
		reqs = append(reqs, req)
	}
	switch {
	case dec.Outcome != "":
	case len(reqs) > 0:
		events[0].Outcome = "act"
	case len(events) > 1 && events[len(events)-1].Type == audit.ApprovalRequested:
		events[0].Outcome = "pending_approval"
	case len(events) > 1 && events[len(events)-1].Type == audit.GuardRefused:
		events[0].Outcome = "refused"
	case len(decisions) > 0:
		events[0].Outcome = "rejected"
	default:
		events[0].Outcome = "none"
	}
	events[0].Detail = mustJSON(detail)
	inserted, err := e.appendEvents(ctx, events...)
	if err != nil {
		return fmt.Errorf("record decision: %w", err)
	}
	if !inserted[0] {
		return nil // decided before (a duplicate delivery or a second replica)
	}
	e.m.decisions.WithLabelValues(events[0].Outcome).Inc()
	e.log.Info("decision", "node", s.Node, "kind", s.Kind, "status", s.Status, "outcome", events[0].Outcome,
		"actions", len(reqs), "correlation_id", corr, "policy_revision", pol.Revision)
	for _, req := range reqs {
		e.dispatch(ctx, req)
	}
	return nil
}

// dispatch sends a planned action on its way and records that it did. Failures are
// logged and left to the sweep; the error returned is the dispatcher's (the bus is
// unreachable), the one failure worth stopping a sweep for.
func (e *Engine) dispatch(ctx context.Context, req executors.Request) error {
	if e.o.Gate != nil && e.o.Gate.Paused() {
		return nil // the kill switch: the sweep dispatches it after resume, or expires it
	}
	if _, busy := e.dispatching.LoadOrStore(req.ID, struct{}{}); busy {
		return nil
	}
	keep := false
	defer func() {
		if !keep {
			e.dispatching.Delete(req.ID)
		}
	}()
	now := e.o.Now().UTC()
	if !req.Deadline.IsZero() && now.After(req.Deadline) {
		res := executors.Result{ID: req.ID, Action: req.Action, Node: req.Node, CorrelationID: req.CorrelationID,
			Status: executors.Expired, Message: "deadline passed before dispatch", FinishedAt: now}
		if err := e.RecordResult(ctx, res); err != nil {
			e.log.Error("record expiry", "action_id", req.ID, "err", err)
		}
		return nil
	}
	exec, target, err := e.o.Actions.Get(req.Action)
	if err != nil {
		e.log.Error("dispatch", "action_id", req.ID, "err", err)
		return nil
	}
	if isSweep(ctx) && target == executors.OnNode {
		// Listed as undispatched before a worker's dispatch record was committed? Once
		// the worker let go of the action (above), its record is in the log.
		if done, err := e.recorded(ctx, req, audit.Dispatched); err != nil || done {
			return nil
		}
	}
	if target == executors.InCluster {
		// The sweep may have listed this action before its first run recorded a result.
		if done, err := e.answered(ctx, req); err != nil || done {
			return nil
		}
		if err := e.RecordResult(ctx, exec.Execute(ctx, req)); err != nil {
			e.log.Error("record result", "action_id", req.ID, "err", err)
		}
		return nil
	}
	if err := e.o.Dispatcher.Dispatch(ctx, req); err != nil {
		e.log.Warn("dispatch failed; will retry", "action_id", req.ID, "node", req.Node, "err", err)
		return err
	}
	ev := audit.Event{Type: audit.Dispatched, CorrelationID: req.CorrelationID, Node: req.Node, Action: req.Action,
		ActionID: req.ID, Actor: "engine", Outcome: "dispatched", Key: "dispatched:" + req.ID}
	if isBatchDispatch(ctx) {
		select {
		case e.dispatched <- ev:
			keep = true // in dispatching until recorded: the sweep leaves it alone
			return nil
		default: // the batch is full: record it here
		}
	}
	if _, err := e.appendEvents(ctx, ev); err != nil {
		e.log.Error("record dispatch", "action_id", req.ID, "err", err)
	}
	return nil
}

type batchDispatchKey struct{}

// batchDispatch marks a worker's context: its dispatch records join a batch instead of
// waiting for a commit of their own. A record lost in a crash only means that the
// sweep publishes the action again, which the stream's duplicate window and the
// agent's journal absorb.
func batchDispatch(ctx context.Context) context.Context {
	return context.WithValue(ctx, batchDispatchKey{}, true)
}

func isBatchDispatch(ctx context.Context) bool {
	v, _ := ctx.Value(batchDispatchKey{}).(bool)
	return v
}

// recordDispatches appends the workers' dispatch records, everything waiting at once,
// until Stop; then what is left.
func (e *Engine) recordDispatches() {
	defer e.wg.Done()
	ctx := audit.Deferrable(context.WithoutCancel(e.ctx))
	batch := make([]audit.Event, 0, 256)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := e.appendEvents(ctx, batch...); err != nil {
			e.log.Error("record dispatches", "actions", len(batch), "err", err)
		}
		for _, ev := range batch {
			e.dispatching.Delete(ev.ActionID)
		}
		batch = batch[:0]
	}
	for {
		select {
		case ev := <-e.dispatched:
			batch = append(batch, ev)
		drain:
			for len(batch) < cap(batch) {
				select {
				case ev := <-e.dispatched:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			flush()
		case <-e.ctx.Done():
			e.workers.Wait() // no more records come
			for {
				select {
				case ev := <-e.dispatched:
					batch = append(batch, ev)
				default:
					flush()
					return
				}
			}
		}
	}
}

// answered reports whether an action already has a result.
func (e *Engine) answered(ctx context.Context, req executors.Request) (bool, error) {
	return e.recorded(ctx, req)
}

// recorded reports whether the audit log holds a result for an action, or an event of
// one of the other types given.
func (e *Engine) recorded(ctx context.Context, req executors.Request, types ...audit.Type) (bool, error) {
	evs, err := e.o.Store.Query(ctx, audit.Filter{CorrelationID: req.CorrelationID, Types: append(types, audit.ActionResult),
		Limit: 1000, WithoutDetail: true})
	if err != nil {
		return false, err
	}
	for _, ev := range evs {
		if ev.ActionID == req.ID {
			return true, nil
		}
	}
	return false, nil
}

type sweepKey struct{}

// isSweep tells the sweep's dispatches (of actions it found undispatched) from the
// first dispatch of a decision.
func isSweep(ctx context.Context) bool {
	v, _ := ctx.Value(sweepKey{}).(bool)
	return v
}

// heldEvent records an action the gate held for a human (approval.requested) or refused
// (guard.refused) instead of planning it. It takes the key a planned action would have
// (action:<id>), so an action has one first disposition even when two replicas decide.
func heldEvent(base audit.Event, h Held) audit.Event {
	ev := base
	ev.Detail, ev.Key = mustJSON(h), "action:"+base.ActionID
	if h.Verdict.Outcome == guard.Hold {
		ev.Type, ev.Outcome, ev.Actor = audit.ApprovalRequested, "pending", h.Requester
		return ev
	}
	ev.Type, ev.Outcome = audit.GuardRefused, string(h.Verdict.Reason)
	return ev
}

// requester is who raised the signal: the person its RequesterLabel names (normalised:
// trimmed, lower case; the webhook sets it to the authenticated identity when a person
// posts with their own token), else the engine.
func requester(s *signal.Signal) string {
	if p := strings.ToLower(strings.TrimSpace(s.Labels[RequesterLabel])); p != "" {
		return audit.UserActor(p)
	}
	return audit.ActorEngine
}

// Execute plans and dispatches an action a person approved, recording events (the
// approval) in the same append, under the key approved:<id>. The caller has re-checked
// the guards. The action's deadline starts now; a second call for the same action does
// nothing.
func (e *Engine) Execute(ctx context.Context, req executors.Request, kind string, events ...audit.Event) error {
	req.Deadline = e.o.Now().UTC().Add(e.o.ActionTTL)
	ev := audit.Event{Type: audit.ActionPlanned, CorrelationID: req.CorrelationID, Node: req.Node, Kind: kind,
		Action: req.Action, ActionID: req.ID, Actor: "engine", Outcome: "planned", Key: "approved:" + req.ID, Detail: mustJSON(req)}
	if req.DryRun {
		ev.Outcome = "dry_run"
	}
	ins, err := e.appendEvents(ctx, append(events, ev)...)
	if err != nil {
		return fmt.Errorf("record approved action: %w", err)
	}
	if ins[len(events)] {
		e.dispatch(ctx, req)
	}
	return nil
}

// RecordResult audits an executor's result (from an agent or an in-cluster executor).
func (e *Engine) RecordResult(ctx context.Context, r executors.Result) error {
	if r.ID == "" {
		return errors.New("result without action id")
	}
	// The status is part of the key: a refusal of a forged copy of an action must not
	// take the place of the real action's result.
	ev := audit.Event{Type: audit.ActionResult, CorrelationID: r.CorrelationID, Node: r.Node, Action: r.Action,
		ActionID: r.ID, Actor: "agent:" + r.Node, Outcome: string(r.Status), Key: "result:" + r.ID + ":" + string(r.Status), Detail: mustJSON(r)}
	ins, err := e.appendEvents(ctx, ev)
	if err != nil {
		return fmt.Errorf("record result: %w", err)
	}
	if ins[0] {
		e.m.actions.WithLabelValues(r.Action, string(r.Status)).Inc()
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
	}
	return b
}
