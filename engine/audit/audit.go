// Package audit defines remedy's audit log: an append-only sequence of events, one per
// step of an incident (signal received, decision, dispatch, result, ...), tied together
// by a correlation id. The log is also the engine's durable intake journal: a webhook is
// acknowledged once its signals are events here.
//
// Stores implement Store; sqlite is the embedded default.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Type is the kind of an audit event.
type Type string

// Event types.
const (
	SignalReceived Type = "signal.received"
	SignalRejected Type = "signal.rejected"
	Decision       Type = "decision"
	ActionPlanned  Type = "action.planned"
	ActionRejected Type = "action.rejected"
	Dispatched     Type = "action.dispatched"
	ActionResult   Type = "action.result"
	PolicyLoaded   Type = "policy.loaded"
	PolicyRejected Type = "policy.rejected"
)

// Event is one row of the audit log.
type Event struct {
	Seq           int64     `json:"seq"`
	Time          time.Time `json:"time"`
	Type          Type      `json:"type"`
	CorrelationID string    `json:"correlationId,omitempty"`
	Node          string    `json:"node,omitempty"`
	Kind          string    `json:"kind,omitempty"`
	Action        string    `json:"action,omitempty"`
	ActionID      string    `json:"actionId,omitempty"`
	Actor         string    `json:"actor,omitempty"`
	Outcome       string    `json:"outcome,omitempty"`
	PolicyRev     string    `json:"policyRevision,omitempty"`
	InputHash     string    `json:"inputHash,omitempty"`
	// Key makes the event idempotent: a second event with the same key is dropped.
	// "signal:<key>", "decision:<signal key>", "action:<id>", "result:<id>" ...
	Key    string          `json:"key,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Filter selects events; zero fields match everything. Results are newest first.
type Filter struct {
	Node          string
	Action        string
	Kind          string
	Type          Type
	Outcome       string
	CorrelationID string
	Since, Until  time.Time
	Limit         int
}

// Store is the audit log. Append is durable when it returns: concurrent callers share
// one commit (group commit), and each call's events are written all or none.
type Store interface {
	// Append writes events and reports, per event, whether it was new (false: an event
	// with its Key was already there and this one was dropped).
	Append(ctx context.Context, events ...Event) ([]bool, error)
	// Query returns events matching f, newest first.
	Query(ctx context.Context, f Filter) ([]Event, error)
	// Undecided returns signal.received events that have no decision yet (oldest
	// first), for recovery after a crash.
	Undecided(ctx context.Context, limit int) ([]Event, error)
	// Undispatched returns action.planned events that were neither dispatched nor
	// answered with a result.
	Undispatched(ctx context.Context, limit int) ([]Event, error)
	Close() error
}

// ErrClosed is returned by a closed store.
var ErrClosed = errors.New("audit store closed")

// DecisionKey is the Key of the decision event of a signal key.
func DecisionKey(signalKey string) string { return "decision:" + signalKey }

// SignalKey is the Key of the signal.received event of a signal key.
func SignalKey(signalKey string) string { return "signal:" + signalKey }
