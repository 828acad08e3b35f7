// Package audit defines remedy's audit log: an append-only sequence of events, one per
// step of an incident (signal received, decision, dispatch, result, ...), tied together
// by a correlation id. The log is also the engine's durable intake journal: a webhook is
// acknowledged once its signals are events here.
//
// Every row carries the hash of its content and of the row before it (a hash chain), so
// an edited, removed or reordered row is found by Verify. Rows are only ever removed by
// retention, which leaves a signed checkpoint of what it removed.
//
// Stores implement Store (the engine's contract) and Log (the whole product: verify,
// retention, export); sqlite is the embedded default, postgres serves several replicas.
// The schema and every event type are described in docs/audit.md.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Type is the kind of an audit event.
type Type string

// Event types, in the order an incident goes through them. docs/audit.md says what each
// one's fields and Detail hold.
const (
	SignalReceived Type = "signal.received"
	SignalRejected Type = "signal.rejected"
	Decision       Type = "decision"
	// GuardRefused: a guard (rate limit, blast radius, maintenance window, dry-run ...)
	// stopped a planned action.
	GuardRefused      Type = "guard.refused"
	ActionPlanned     Type = "action.planned"
	ActionRejected    Type = "action.rejected"
	ApprovalRequested Type = "approval.requested"
	ApprovalGranted   Type = "approval.granted"
	ApprovalRejected  Type = "approval.rejected"
	ApprovalExpired   Type = "approval.expired"
	// ActionPaused: the kill switch or a breaker stopped the action; it waits in the
	// ledger (state paused) and is re-checked by the guards after resume.
	ActionPaused Type = "action.paused"
	Dispatched   Type = "action.dispatched"
	// ActionResult carries the executor's outcome with the before/after state in Detail.
	ActionResult Type = "action.result"
	// ResultRefused: a result the engine did not accept (unknown action, another node's,
	// a stale attempt, sent on another node's subject, undecodable), with the reason and
	// the subject it came on.
	ResultRefused Type = "result.refused"
	// Verification: whether the action fixed its signal: fixed, not_fixed or rolled_back.
	Verification   Type = "verification"
	PolicyLoaded   Type = "policy.loaded"
	PolicyRejected Type = "policy.rejected"
	Paused         Type = "engine.paused"
	Resumed        Type = "engine.resumed"
	// RetentionCheckpoint is written by retention; its Detail is a signed Checkpoint.
	RetentionCheckpoint Type = "retention.checkpoint"
)

// Types lists every event type, in incident order.
func Types() []Type {
	return []Type{SignalReceived, SignalRejected, Decision, GuardRefused, ActionPlanned, ActionRejected,
		ApprovalRequested, ApprovalGranted, ApprovalRejected, ApprovalExpired, ActionPaused, Dispatched, ActionResult, ResultRefused,
		Verification, PolicyLoaded, PolicyRejected, Paused, Resumed, RetentionCheckpoint}
}

// Outcomes commonly found in Event.Outcome. The field is free text; these are the values
// remedy itself writes.
const (
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped"
	OutcomeRefused = "refused"
	OutcomeDryRun  = "dry_run"
	// Verification outcomes (engine/guard/verify): the signal resolved within the action's
	// window, it did not (the incident escalates), or the executor rolled the action back.
	OutcomeFixed      = "fixed"
	OutcomeNotFixed   = "not_fixed"
	OutcomeRolledBack = "rolled_back"
)

// Actors that are not people. A person is written as "user:<identity>" (UserActor).
const (
	ActorEngine = "engine"
	ActorAgent  = "agent"
)

// UserActor is the Actor of an event caused by a person, e.g. an approval.
func UserActor(identity string) string { return "user:" + identity }

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
	// PrevHash and Hash are set by the store: the hash chain (see HashEvent).
	PrevHash string `json:"prevHash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Filter selects events; zero fields match everything. Results are newest first unless
// Ascending is set.
type Filter struct {
	Node   string
	Action string
	Kind   string
	Type   Type
	// Types, when set, keeps events of any of these types (besides Type, if given).
	Types         []Type
	Outcome       string
	Actor         string
	CorrelationID string
	// WithoutDetail leaves Detail empty: cheaper when only the columns are needed.
	WithoutDetail bool
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// AfterSeq keeps events with a larger seq: the cursor of Follow and of paging.
	AfterSeq  int64
	Ascending bool
	// Limit caps the result; 0 means DefaultLimit.
	Limit int
}

// DefaultLimit is the number of events a Filter without a Limit returns.
const DefaultLimit = 1000

// Store is the audit log. Append is durable when it returns: concurrent callers share
// one commit (group commit), and each call's events are written all or none.
type Store interface {
	// Append writes events and reports, per event, whether it was new (false: an event
	// with its Key was already there and this one was dropped).
	Append(ctx context.Context, events ...Event) ([]bool, error)
	// Query returns events matching f, newest first.
	Query(ctx context.Context, f Filter) ([]Event, error)
	// Undecided returns signal.received events after seq afterSeq that have no
	// decision yet (oldest first), for recovery after a crash.
	Undecided(ctx context.Context, afterSeq int64, limit int) ([]Event, error)
	// Ledger is the action ledger, committed with the events that record its changes.
	Ledger
	Close() error
}

// RecentReader is a Store that can tell, from memory, what was appended for a node
// after a seq (the engine's policy history): events of the given types, newest first,
// without details, and the seq up to which that answer is complete. ok is false when it
// cannot tell (another writer may append to the log, or the node's events after afterSeq
// are no longer all in memory); then the caller queries.
type RecentReader interface {
	Recent(node string, afterSeq int64, types []Type) (evs []Event, upTo int64, ok bool)
}

// Log is a Store with what people and auditors use: verification of the hash chain,
// retention, export.
type Log interface {
	Store
	// Verify walks the whole chain and reports the first broken link, if any.
	Verify(ctx context.Context) (VerifyReport, error)
	// Retain removes the oldest rows, up to the first one at or after before, and
	// appends a signed checkpoint of what it removed. It returns nil when nothing was old
	// enough.
	Retain(ctx context.Context, before time.Time) (*Checkpoint, error)
	// Export writes the events matching f, oldest first, one JSON object per line.
	Export(ctx context.Context, f Filter, w io.Writer) error
}

// Options configure a store.
type Options struct {
	// Keys signs retention checkpoints and checks them in Verify.
	Keys Signer
	// Clock stamps events that come without a time; time.Now when nil.
	Clock func() time.Time
}

// Sentinel errors.
var (
	ErrClosed = errors.New("audit store closed")
	ErrNoType = errors.New("audit event has no type")
	// ErrBadDetail: Event.Detail is not valid JSON.
	ErrBadDetail = errors.New("audit event detail is not valid JSON")
	// ErrNoSigner: retention needs a key to sign its checkpoint.
	ErrNoSigner = errors.New("audit retention needs a checkpoint key")
)

// ActionKey is the Key of an action's first disposition (planned, held, paused, refused).
func ActionKey(id string) string { return "action:" + id }

// DispatchedKey is the Key of an action's dispatch record for an attempt.
func DispatchedKey(id string, attempt int) string {
	if attempt <= 1 {
		return "dispatched:" + id
	}
	return fmt.Sprintf("dispatched:%s:%d", id, attempt)
}

// ResultKey is the Key of an action's result with a status: a refusal of a forged copy
// of an action must not take the place of the real action's result.
func ResultKey(id, status string) string { return "result:" + id + ":" + status }

// DecisionKey is the Key of the decision event of a signal key.
func DecisionKey(signalKey string) string { return "decision:" + signalKey }

// SignalKey is the Key of the signal.received event of a signal key.
func SignalKey(signalKey string) string { return "signal:" + signalKey }
