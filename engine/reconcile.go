package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/signal"
)

// The reconcile stage: what a crash, an outage or a pause left behind, read from the
// ledger's pending states (and, for signals not yet decided, from the log after a
// watermark).

func (e *Engine) sweepLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.o.SweepInterval)
	defer t.Stop()
	lastRedispatch := time.Now()
	for {
		e.sweep(e.ctx)
		if time.Since(lastRedispatch) >= e.o.RedispatchAfter/2 {
			e.redispatchStale(e.ctx)
			lastRedispatch = time.Now()
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepBatch bounds the signals or actions one sweep handles of each kind.
const sweepBatch = 1000

// sweep decides signals that were recorded but not decided (a crash, a full queue),
// dispatches actions planned but not dispatched (a NATS outage, the kill switch), and
// looks again at paused actions.
func (e *Engine) sweep(ctx context.Context) {
	if err := e.sweepUndecided(ctx); err != nil {
		if ctx.Err() == nil {
			e.log.Error("sweep undecided", "err", err)
		}
		return
	}
	if e.o.Gate != nil && e.o.Gate.Paused() {
		return
	}
	if err := e.sweepPlanned(ctx); err != nil && ctx.Err() == nil {
		e.log.Error("sweep planned", "err", err)
	}
	if err := e.sweepPaused(ctx); err != nil && ctx.Err() == nil {
		e.log.Error("sweep paused", "err", err)
	}
}

// sweepUndecided decides what the log holds undecided past the watermark: the seq below
// which every signal is decided, so that a sweep costs what is new, not the whole log.
func (e *Engine) sweepUndecided(ctx context.Context) error {
	if len(e.queue) > 0 {
		// While the workers have a queue, what is recorded and undecided is mostly in
		// it; reading it again (with details) would only slow them down. Whatever the
		// queue missed (it was full) is found once it drains.
		return nil
	}
	head, err := e.head(ctx)
	if err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	undecided, err := e.o.Store.Undecided(ctx, e.undecidedMark, sweepBatch)
	if err != nil {
		return err
	}
	e.m.undecided.Set(float64(len(undecided)))
	e.undecidedMark = nextMark(e.undecidedMark, undecided, head)
	for _, ev := range undecided {
		if _, ok := e.queued.Load(strings.TrimPrefix(ev.Key, audit.SignalKey(""))); ok {
			continue // a worker decides it
		}
		var s signal.Signal
		if err := json.Unmarshal(ev.Detail, &s); err != nil {
			e.log.Error("sweep: undecodable signal event", "seq", ev.Seq, "err", err)
			continue
		}
		if err := e.decide(ctx, s, decideOptions{deferred: true}); err != nil && ctx.Err() == nil {
			e.log.Error("sweep decide", "seq", ev.Seq, "err", err)
		}
	}
	return nil
}

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

// sweepPlanned dispatches the planned actions nobody dispatched: those whose row has
// not changed for a sweep interval (a worker's dispatch, and its batched record, take
// far less).
func (e *Engine) sweepPlanned(ctx context.Context) error {
	rows, err := e.o.Store.Actions(ctx, audit.ActionFilter{States: []audit.State{audit.StatePlanned},
		UpdatedBefore: e.o.Now().Add(-e.o.SweepInterval), Limit: sweepBatch})
	if err != nil {
		return err
	}
	for i := range rows {
		if _, ok := e.recording.Load(rows[i].ID); ok {
			continue // being dispatched, or its record is in a commit on its way
		}
		// Read again: a worker may have dispatched it since the list was read.
		if row, err := e.o.Store.Action(ctx, rows[i].ID); err != nil || row.State != audit.StatePlanned {
			continue
		}
		req, err := decodeRequest(&rows[i])
		if err != nil {
			e.log.Error("sweep", "err", err)
			continue
		}
		if err := e.dispatch(ctx, req, dispatchOptions{}); err != nil {
			return nil // NATS is down: the rest would wait out their timeouts one by one
		}
	}
	return nil
}

// sweepPaused looks again at actions the kill switch or a breaker paused: past their
// deadline they expire; else the guards check them again, and they run, wait on, or are
// refused for good.
func (e *Engine) sweepPaused(ctx context.Context) error {
	if e.o.Gate == nil {
		return nil
	}
	rows, err := e.o.Store.Actions(ctx, audit.ActionFilter{States: []audit.State{audit.StatePaused}, Limit: sweepBatch})
	if err != nil {
		return err
	}
	now := e.o.Now().UTC()
	for i := range rows {
		row := &rows[i]
		var h Held
		if err := json.Unmarshal(row.Held, &h); err != nil {
			e.log.Error("sweep paused: undecodable held action", "action_id", row.ID, "err", err)
			continue
		}
		base := audit.Event{CorrelationID: row.CorrelationID, Node: row.Node, Kind: row.Kind, Action: row.Action, ActionID: row.ID,
			Actor: audit.ActorEngine}
		if !row.Deadline.IsZero() && now.After(row.Deadline) {
			res := executors.Result{ID: row.ID, Action: row.Action, Node: row.Node, CorrelationID: row.CorrelationID, Attempt: row.Attempt,
				Status: executors.Expired, FinishedAt: now, Message: "paused until past its deadline " + row.Deadline.Format(time.RFC3339)}
			if err := e.finish(ctx, res, audit.ActorEngine, audit.StatePaused); err != nil && !errors.Is(err, audit.ErrConflict) {
				return err
			}
			continue
		}
		h.Verdict = e.o.Gate.Check(ctx, h.Candidate(false))
		ch := audit.Change{ID: row.ID, From: []audit.State{audit.StatePaused}, Version: row.Version}
		var ev audit.Event
		switch {
		case h.Verdict.Outcome == guard.Allow || h.Verdict.Outcome == guard.DryRun:
			if h.Verdict.Outcome == guard.DryRun {
				h.Request.DryRun = true
			}
			ev = base
			ev.Type, ev.Key, ev.Outcome = audit.ActionPlanned, "resumed:"+row.ID, "planned"
			if h.Request.DryRun {
				ev.Outcome = audit.OutcomeDryRun
			}
			h.Request.Deadline, h.Request.Attempt = row.Deadline, row.Attempt
			ev.Detail = mustJSON(h.Request)
			ch.To, ch.Request = audit.StatePlanned, ev.Detail
		default:
			next, state := heldEvent(base, h)
			if state == audit.StatePaused {
				continue // still paused
			}
			ev = next
			ev.Key = "resumed:" + row.ID
			ch.To, ch.Held = state, mustJSON(h)
			if state == "" {
				ch.To = audit.StateRefused
			}
		}
		if _, err := e.commit(ctx, audit.Batch{Events: []audit.Event{ev}, Changes: []audit.Change{ch}}); err != nil {
			if errors.Is(err, audit.ErrConflict) {
				continue // another replica looked first
			}
			return err
		}
		e.log.Info("paused action looked at again", "action_id", row.ID, "node", row.Node, "now", ch.To)
		if ch.To == audit.StatePlanned {
			if err := e.dispatch(ctx, h.Request, dispatchOptions{}); err != nil {
				return nil
			}
		}
	}
	return nil
}

// redispatchStale publishes again the node actions that were dispatched more than
// RedispatchAfter ago, are still within their deadline, and have no result; those past
// their deadline and a grace period are recorded expired.
func (e *Engine) redispatchStale(ctx context.Context) {
	now := e.o.Now().UTC()
	rows, err := e.o.Store.Actions(ctx, audit.ActionFilter{States: []audit.State{audit.StateDispatched},
		UpdatedBefore: now.Add(-e.o.RedispatchAfter), Limit: 100000})
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("redispatch: read ledger", "err", err)
		}
		return
	}
	for i := range rows {
		req, err := decodeRequest(&rows[i])
		if err != nil {
			e.log.Error("redispatch", "err", err)
			continue
		}
		_, target, err := e.o.Actions.Get(req.Action)
		if err != nil {
			continue
		}
		if now.After(req.Deadline) {
			if now.After(req.Deadline.Add(e.resultGrace())) {
				e.expireUnanswered(ctx, req, target, now)
			}
			continue // the agent refuses it past its deadline; wait for its report a while
		}
		if target == executors.InCluster {
			continue // the engine runs these itself; one still running is answered when done
		}
		e.log.Warn("no result for a dispatched action; publishing it again", "action_id", req.ID, "node", req.Node)
		if err := e.o.Dispatcher.Dispatch(ctx, req); err != nil {
			e.m.dispatchErrors.WithLabelValues("republish").Inc()
			return
		}
		e.m.redispatched.Inc()
	}
}

// expireUnanswered records that an action got no result by its deadline and a grace
// period after it: the agent is gone (or cut off), or the engine running a cluster
// action stopped. The agent refuses the action if it comes back (it is past its
// deadline), and its own "expired" report then finds this one in place.
func (e *Engine) expireUnanswered(ctx context.Context, req executors.Request, target executors.Target, now time.Time) {
	if _, running := e.running.Load(req.ID); running {
		return
	}
	who := "the node's agent"
	if target == executors.InCluster {
		who = "the engine that ran it (it stopped)"
	}
	e.log.Warn("no result by the action's deadline; recording it expired", "action_id", req.ID, "node", req.Node,
		"deadline", req.Deadline)
	res := executors.Result{ID: req.ID, Action: req.Action, Node: req.Node, CorrelationID: req.CorrelationID, Attempt: req.Attempt,
		Status: executors.Expired, FinishedAt: now,
		Message: fmt.Sprintf("no result from %s by the deadline %s (+%s grace); it will not run", who, req.Deadline.Format(time.RFC3339), e.resultGrace())}
	if err := e.finish(ctx, res, audit.ActorEngine, audit.StateDispatched); err != nil && !errors.Is(err, audit.ErrConflict) {
		e.log.Error("record expiry", "action_id", req.ID, "err", err)
	}
}

// PlanApproved moves an action a person approved from held to planned (at the version
// the approver saw, when given) with events (the approval), and dispatches it on its
// own: the caller returns once the approval is recorded. The action's deadline starts
// now. The loser of a race (a rejection, an expiry, another replica) gets the
// *audit.Conflict naming the winner's state.
func (e *Engine) PlanApproved(ctx context.Context, id string, version int64, dryRun bool, events ...audit.Event) (audit.Action, error) {
	row, err := e.o.Store.Action(ctx, id)
	if err != nil {
		return audit.Action{}, err
	}
	if row.State != audit.StateHeld || (version != 0 && row.Version != version) {
		// Decided meanwhile (a final row keeps no request to decode).
		return audit.Action{}, &audit.Conflict{ID: id, Want: []audit.State{audit.StateHeld}, Version: version, Current: &row}
	}
	req, err := decodeRequest(&row)
	if err != nil {
		return audit.Action{}, err
	}
	req.Deadline = e.o.Now().UTC().Add(e.o.ActionTTL)
	req.DryRun = req.DryRun || dryRun || e.o.DryRun
	ev := audit.Event{Type: audit.ActionPlanned, CorrelationID: req.CorrelationID, Node: req.Node, Kind: row.Kind,
		Action: req.Action, ActionID: req.ID, Actor: audit.ActorEngine, Outcome: "planned", Key: "approved:" + req.ID, Detail: mustJSON(req)}
	if req.DryRun {
		ev.Outcome = audit.OutcomeDryRun
	}
	ch := audit.Change{ID: id, From: []audit.State{audit.StateHeld}, Version: version, To: audit.StatePlanned,
		Deadline: req.Deadline, Request: ev.Detail}
	c, err := e.commit(ctx, audit.Batch{Events: append(events, ev), Changes: []audit.Change{ch}})
	if err != nil {
		return audit.Action{}, err
	}
	e.async.Add(1)
	go func() {
		defer e.async.Done()
		e.dispatch(context.WithoutCancel(e.ctx), req, dispatchOptions{})
	}()
	return c.Actions[0], nil
}
