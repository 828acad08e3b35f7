package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/executors"
)

// The dispatch stage: a planned action goes to its node's agent (published, then its
// ledger row moves planned → dispatched) or, for a cluster action, is claimed
// (planned → dispatched) and run by the engine on its own, its result recorded after.

// dispatchOptions say how a caller wants a dispatch recorded.
type dispatchOptions struct {
	// batchRecord lets the dispatch record ride in others' commits without the caller
	// waiting for it.
	batchRecord bool
	// owned: the caller marked the action in recording already (decide does, before it
	// commits the action, so that no sweep takes it in between).
	owned bool
}

// dispatch sends a planned action on its way and records that it did. Failures are
// logged and left to the sweep; the error returned is the dispatcher's (the bus is
// unreachable), the one failure worth stopping a sweep for.
//
// While this process dispatches an action, and until its dispatch record is committed,
// the action's id is in recording: the sweep leaves it alone.
func (e *Engine) dispatch(ctx context.Context, req executors.Request, opt dispatchOptions) error {
	if _, busy := e.recording.LoadOrStore(req.ID, struct{}{}); busy && !opt.owned {
		return nil // another caller in this process has it
	}
	release := true
	defer func() {
		if release {
			e.recording.Delete(req.ID)
		}
	}()
	if e.o.Gate != nil && e.o.Gate.Paused() {
		return nil // the kill switch: the sweep dispatches it after resume, or expires it
	}
	now := e.o.Now().UTC()
	if !req.Deadline.IsZero() && now.After(req.Deadline) {
		e.finish(ctx, executors.Result{ID: req.ID, Action: req.Action, Node: req.Node, CorrelationID: req.CorrelationID,
			Attempt: req.Attempt, Status: executors.Expired, Message: "deadline passed before dispatch", FinishedAt: now},
			audit.ActorEngine, audit.StatePlanned)
		return nil
	}
	exec, target, err := e.o.Actions.Get(req.Action)
	if err != nil {
		e.log.Error("dispatch", "action_id", req.ID, "err", err)
		return nil
	}
	if target == executors.InCluster {
		e.runInCluster(ctx, exec, req)
		return nil
	}
	if err := e.o.Dispatcher.Dispatch(ctx, req); err != nil {
		e.m.dispatchErrors.WithLabelValues("publish").Inc()
		e.log.Warn("dispatch failed; will retry", "action_id", req.ID, "node", req.Node, "err", err)
		return err
	}
	e.m.dispatched.Inc()
	b := dispatchRecord(req)
	if gone := e.agentGone(req.Node); gone != "" {
		// Flagged at once, not only when the action expires minutes later.
		e.live.noAgent.Inc()
		e.log.Warn("dispatched to a node without a live agent", "action_id", req.ID, "node", req.Node, "why", gone)
		b.Events[0].Detail = mustJSON(map[string]string{"agent": gone})
	}
	if opt.batchRecord {
		release = false
		e.async.Add(1)
		go func() {
			defer e.async.Done()
			defer e.recording.Delete(req.ID)
			e.recordDispatch(context.WithoutCancel(ctx), b)
		}()
		return nil
	}
	e.recordDispatch(ctx, b)
	return nil
}

// dispatchRecord is the batch that records a node action's dispatch.
func dispatchRecord(req executors.Request) audit.Batch {
	ev := audit.Event{Type: audit.Dispatched, CorrelationID: req.CorrelationID, Node: req.Node, Action: req.Action,
		ActionID: req.ID, Actor: audit.ActorEngine, Outcome: "dispatched", Key: audit.DispatchedKey(req.ID, req.Attempt)}
	return audit.Batch{Events: []audit.Event{ev}, Changes: []audit.Change{audit.Transition(req.ID, audit.StateDispatched, audit.StatePlanned)},
		Deferred: true}
}

// recordDispatch commits a dispatch record. When the action moved on meanwhile (its
// result came back before the record), the record is kept in the log without moving the
// row.
func (e *Engine) recordDispatch(ctx context.Context, b audit.Batch) {
	_, err := e.commit(ctx, b)
	var conflict *audit.Conflict
	if errors.As(err, &conflict) && conflict.Current != nil && conflict.Current.State != audit.StatePlanned {
		b.Changes = nil
		_, err = e.commit(ctx, b)
	}
	if err != nil {
		e.log.Error("record dispatch", "action_id", b.Events[0].ActionID, "err", err)
	}
}

// runInCluster claims a cluster action (planned → dispatched, so no other replica or
// sweep runs it too) and runs it on its own goroutine: a caller (an approval, say) does
// not wait for a migration's minutes.
func (e *Engine) runInCluster(ctx context.Context, exec executors.Executor, req executors.Request) {
	if _, busy := e.running.LoadOrStore(req.ID, struct{}{}); busy {
		return
	}
	claim := dispatchRecord(req)
	claim.Deferred = false
	claim.Events[0].Outcome = "running"
	if _, err := e.commit(ctx, claim); err != nil {
		e.running.Delete(req.ID)
		if !errors.Is(err, audit.ErrConflict) {
			e.log.Error("claim cluster action", "action_id", req.ID, "err", err)
		}
		return // another replica or a sweep has it, or it is done
	}
	e.m.dispatched.Inc()
	e.async.Add(1)
	go func() {
		defer e.async.Done()
		defer e.running.Delete(req.ID)
		res := exec.Execute(e.ctx, req)
		res.Attempt = req.Attempt
		e.finish(context.WithoutCancel(e.ctx), res, audit.ActorEngine, audit.StateDispatched)
	}()
}

// finalState is the ledger state a result status ends an action in.
func finalState(s executors.Status) (audit.State, error) {
	switch s {
	case executors.Succeeded:
		return audit.StateSucceeded, nil
	case executors.DryRun:
		return audit.StateDryRun, nil
	case executors.Failed:
		return audit.StateFailed, nil
	case executors.RolledBack:
		return audit.StateRolledBack, nil
	case executors.Refused:
		return audit.StateRefused, nil
	case executors.Expired:
		return audit.StateExpired, nil
	case executors.Unavailable:
		return audit.StateUnavailable, nil
	}
	return "", fmt.Errorf("unknown result status %q", s)
}

// finish records a result and moves the action from one of from to its final state, in
// one commit. A result for an action that is final already is a repeat: its event is
// kept if new (its key has the status), the row stays.
func (e *Engine) finish(ctx context.Context, r executors.Result, actor string, from ...audit.State) error {
	to, err := finalState(r.Status)
	if err != nil {
		return err
	}
	if r.FinishedAt.IsZero() {
		r.FinishedAt = e.o.Now().UTC()
	}
	ev := audit.Event{Type: audit.ActionResult, CorrelationID: r.CorrelationID, Node: r.Node, Action: r.Action,
		ActionID: r.ID, Actor: actor, Outcome: string(r.Status), Key: audit.ResultKey(r.ID, string(r.Status)), Detail: mustJSON(r)}
	b := audit.Batch{Events: []audit.Event{ev}, Changes: []audit.Change{audit.Transition(r.ID, to, from...)}}
	c, err := e.commit(ctx, b)
	if err != nil {
		if !errors.Is(err, audit.ErrConflict) {
			return fmt.Errorf("record result: %w", err)
		}
		return err
	}
	if c.Inserted[0] {
		e.m.actions.WithLabelValues(r.Action, string(r.Status)).Inc()
	}
	return nil
}

// resultGrace is how long past its deadline a dispatched action may still be answered
// before the engine records it expired.
func (e *Engine) resultGrace() time.Duration { return e.o.RedispatchAfter }
