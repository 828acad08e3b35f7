package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/bus"
)

// The results stage: nothing a result says about itself is believed. A result counts
// only for an action in the ledger, at its current attempt, reported on the results
// subject of the node it was dispatched to (the subject is what the node's NATS
// credentials allow it to publish on). Everything else is recorded as result.refused,
// with the reason and the subject it came on.

// AcceptResult handles one message from remedy.results.<node>: it records the result
// and ends its action, or records why it was refused. A nil error is the licence to ack
// the message (refusals included: redelivering them would not change them).
func (e *Engine) AcceptResult(ctx context.Context, subject string, data []byte) error {
	var r executors.Result
	if err := json.Unmarshal(data, &r); err != nil || r.ID == "" {
		reason := "result without an action id"
		if err != nil {
			reason = "undecodable result: " + err.Error()
		}
		return e.refuseResult(ctx, subject, data, r, nil, reason)
	}
	row, err := e.o.Store.Action(ctx, r.ID)
	switch {
	case errors.Is(err, audit.ErrNoAction):
		return e.refuseResult(ctx, subject, data, r, nil, "no such action in the ledger")
	case err != nil:
		return fmt.Errorf("read action %s: %w", r.ID, err)
	}
	attempt := r.Attempt
	if attempt == 0 {
		attempt = 1 // an agent from before attempts were numbered
	}
	switch {
	case subject != bus.ResultSubject(row.Node):
		return e.refuseResult(ctx, subject, data, r, &row, fmt.Sprintf("sent on %s, not on the results subject of node %s the action is for", subject, row.Node))
	case r.Node != row.Node:
		return e.refuseResult(ctx, subject, data, r, &row, fmt.Sprintf("names node %q; the action is for node %q", r.Node, row.Node))
	case r.Action != row.Action:
		return e.refuseResult(ctx, subject, data, r, &row, fmt.Sprintf("names action %q; the action is %q", r.Action, row.Action))
	case attempt != row.Attempt:
		return e.refuseResult(ctx, subject, data, r, &row, fmt.Sprintf("for attempt %d; the action is at attempt %d", attempt, row.Attempt))
	case r.Unverified:
		return e.refuseResult(ctx, subject, data, r, &row, "the agent refused a copy of the action that failed verification (not sent by the engine): "+r.Message)
	}
	r.CorrelationID = row.CorrelationID
	err = e.finish(ctx, r, "agent:"+row.Node, audit.StatePlanned, audit.StateDispatched)
	var conflict *audit.Conflict
	if errors.As(err, &conflict) && conflict.Current != nil {
		to, _ := finalState(r.Status)
		if conflict.Current.State == to {
			return nil // a re-report of the result recorded already
		}
		return e.refuseResult(ctx, subject, data, r, conflict.Current,
			fmt.Sprintf("the action is %s already", conflict.Current.State))
	}
	return err
}

// refuseResult records a result that was not accepted.
func (e *Engine) refuseResult(ctx context.Context, subject string, data []byte, r executors.Result, row *audit.Action, reason string) error {
	sum := sha256.Sum256(append([]byte(subject+"\x00"), data...))
	ev := audit.Event{Type: audit.ResultRefused, ActionID: r.ID, Action: r.Action, Actor: "subject:" + subject, Outcome: "refused",
		Key: "result-refused:" + hex.EncodeToString(sum[:12])}
	if row != nil {
		ev.Node, ev.CorrelationID, ev.Action = row.Node, row.CorrelationID, row.Action
	}
	raw := json.RawMessage(data)
	if !json.Valid(data) {
		raw = mustJSON(string(data))
	}
	ev.Detail = mustJSON(map[string]any{"reason": reason, "subject": subject, "result": raw})
	if _, err := e.appendEvents(ctx, ev); err != nil {
		return fmt.Errorf("record refused result: %w", err)
	}
	e.m.resultsRefused.Inc()
	e.log.Warn("result refused", "subject", subject, "action_id", r.ID, "reason", reason)
	return nil
}
