// Package engine turns signals into audited actions, in stages around an explicit action
// ledger (audit.Ledger):
//
//	intake    (intake.go)    records signals durably (the audit log is the intake journal)
//	decide    (decide.go)    builds the policy input, evaluates the policy, checks each
//	                         decision against the action catalogue and the gate, and commits
//	                         the decision with one ledger row per action
//	dispatch  (dispatch.go)  moves planned actions on: node actions to the node's agent over
//	                         NATS, cluster actions to in-process executors
//	results   (results.go)   accepts a result only for an action dispatched to that node, at
//	                         its current attempt, and moves the action to its final state
//	reconcile (reconcile.go) the sweeps: undecided signals, planned actions not dispatched,
//	                         dispatched actions without a result, paused actions after resume
//
// A ledger row changes only by a compare-and-set committed with the audit event that
// records the change, so a duplicate delivery, a crash and recovery, two replicas or two
// people never produce a second effect: the loser gets an *audit.Conflict.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/signal"
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

// Held is the Detail of an approval.requested, action.paused or guard.refused event, and
// the ledger's Held of a waiting action: the action and everything a person (or the
// guards, again) need to judge it.
type Held struct {
	Request   executors.Request `json:"request"`
	Decision  policy.Decision   `json:"decision"`
	Signal    signal.Signal     `json:"signal"`
	Node      facts.Node        `json:"node"`
	Cluster   facts.Cluster     `json:"cluster"`
	Verdict   guard.Verdict     `json:"verdict"`
	Requester string            `json:"requester"`
}

// Candidate is the guards' view of a held action.
func (h *Held) Candidate(approved bool) guard.Candidate {
	return guard.Candidate{ActionID: h.Request.ID, Action: h.Request.Action, Node: h.Request.Node, Kind: string(h.Signal.Kind),
		SignalKey: h.Signal.Key(), Resolved: h.Signal.Status == signal.Resolved, Risk: h.Decision.Risk,
		RequiresApproval: h.Decision.RequiresApproval, Approved: approved, NodeFacts: h.Node, Cluster: h.Cluster}
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

// Engine is the decision pipeline: its stages share the options and metrics.
type Engine struct {
	o     Options
	log   *slog.Logger
	m     metrics
	queue chan signal.Signal
	// inflight holds the keys of signals being decided, queued those waiting in queue
	// (the sweep leaves both to the workers instead of deciding them twice).
	inflight, queued sync.Map
	// running holds the in-cluster actions this process is executing, recording the node
	// actions whose dispatch record is on its way.
	running, recording sync.Map
	hist               historyCache
	live               *liveness
	intake             atomic.Int32  // Submit calls waiting for their commit
	stormSlot          chan struct{} // the decision a storm allows at a time
	committed          atomic.Int64  // the newest seq this engine saw committed
	// undecidedMark is the sweep's watermark: the seq below which every signal is
	// decided; only the sweep goroutine uses it.
	undecidedMark int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers and the sweep
	async  sync.WaitGroup // dispatch records and in-cluster executions in flight
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
		stormSlot: make(chan struct{}, 1), live: newLiveness(o.Registerer)}
	e.m.queueDepth(func() float64 { return float64(len(e.queue)) })
	// Until Start, in-cluster executions and records run under a background context.
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// Start runs the workers and the recovery sweep until Stop.
func (e *Engine) Start(ctx context.Context) {
	e.cancel() // the context New made for use before Start
	e.ctx, e.cancel = context.WithCancel(ctx)
	for range e.o.Workers {
		e.wg.Add(1)
		go e.work()
	}
	e.wg.Add(1)
	go e.sweepLoop()
}

// Stop cancels the workers and waits for them and for the records in flight. Undecided
// signals stay recorded and are decided by the next start.
func (e *Engine) Stop() {
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
	e.async.Wait()
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

// commit writes a batch and notes the newest seq committed (the floor of the history
// cache).
func (e *Engine) commit(ctx context.Context, b audit.Batch) (audit.Committed, error) {
	c, err := e.o.Store.Commit(ctx, b)
	if err != nil {
		return c, err
	}
	var top int64
	for i := range b.Events {
		if c.Inserted[i] {
			top = max(top, b.Events[i].Seq)
		}
	}
	for {
		cur := e.committed.Load()
		if top <= cur || e.committed.CompareAndSwap(cur, top) {
			return c, nil
		}
	}
}

// appendEvents commits events alone, urgent.
func (e *Engine) appendEvents(ctx context.Context, events ...audit.Event) ([]bool, error) {
	c, err := e.commit(ctx, audit.Batch{Events: events})
	return c.Inserted, err
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
	}
	return b
}

func decodeRequest(a *audit.Action) (executors.Request, error) {
	var req executors.Request
	if err := json.Unmarshal(a.Request, &req); err != nil {
		return req, fmt.Errorf("action %s: undecodable request in the ledger: %w", a.ID, err)
	}
	req.Attempt = a.Attempt
	if !a.Deadline.IsZero() {
		req.Deadline = a.Deadline
	}
	return req, nil
}
