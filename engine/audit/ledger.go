package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"
)

// The action ledger: one row per action with its state and a version. It is what the
// engine, the approval service and the sweeps read to know what an action is doing now;
// the audit log is the record of how it got there. A row changes only by a
// compare-and-set on its state (and, when the writer read it, its version), committed in
// the same transaction as the audit event that records the change (Store.Commit).

// State is where an action is in its life.
//
//	held ──► planned ──► dispatched ──► succeeded | dry_run | failed | refused | rolled_back | expired | unavailable
//	  │         ▲            └──────► expired (no result by the deadline)
//	  │         │
//	  ├──► rejected | expired (nobody approved in time)
//	paused ──┘ (the kill switch or a breaker: re-checked by the guards after resume, or expired)
type State string

// States. Held, Paused, Planned and Dispatched are pending; the rest are final.
const (
	StateHeld       State = "held"
	StatePaused     State = "paused"
	StatePlanned    State = "planned"
	StateDispatched State = "dispatched"
	StateSucceeded  State = "succeeded"
	StateDryRun     State = "dry_run"
	StateFailed     State = "failed"
	StateRefused    State = "refused"
	StateRolledBack State = "rolled_back"
	StateExpired    State = "expired"
	StateRejected   State = "rejected"
	// StateUnavailable: the action cannot run on this engine at all (a cluster action
	// without a cluster).
	StateUnavailable State = "unavailable"
)

// PendingStates are the states an action leaves on its own or by someone's decision.
var PendingStates = []State{StateHeld, StatePaused, StatePlanned, StateDispatched}

// Final reports whether s is a final state.
func (s State) Final() bool { return !slices.Contains(PendingStates, s) }

// Partitions is the number of node partitions the ledger records (see Partition).
const Partitions = 64

// Partition is the partition of a node: a stable hash that a later step lets N engine
// replicas share the nodes by (each owning the actions of its partitions).
func Partition(node string) int {
	h := fnv.New32a()
	h.Write([]byte(node))
	return int(h.Sum32() % Partitions)
}

// ParamsDigest is the short digest of an action's parameters the ledger keeps.
func ParamsDigest(params json.RawMessage) string {
	sum := sha256.Sum256(params)
	return hex.EncodeToString(sum[:8])
}

// Action is one row of the ledger.
type Action struct {
	ID            string    `json:"id"`
	Node          string    `json:"node"`
	Action        string    `json:"action"`
	Kind          string    `json:"kind,omitempty"`
	CorrelationID string    `json:"correlationId"`
	ParamsDigest  string    `json:"paramsDigest"`
	Partition     int       `json:"partition"`
	Attempt       int       `json:"attempt"`
	State         State     `json:"state"`
	Version       int64     `json:"version"`
	Deadline      time.Time `json:"deadline,omitzero"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
	// Request is the action as it will be (or was) dispatched: executors.Request's JSON.
	Request json.RawMessage `json:"request,omitempty"`
	// Held is what a person or the guards need to judge the action again while it waits
	// (held or paused): the engine's Held JSON.
	Held json.RawMessage `json:"held,omitempty"`
}

// Change is one write to the ledger within a Batch: either Create (a new row; when a row
// with its id exists already, the change does nothing and the batch goes on, like an
// event whose key exists) or a transition of the row ID from one of From to To.
type Change struct {
	Create *Action

	ID string
	// From lists the states the transition applies from; when the row is in none of them
	// (or is not there), the whole batch fails with a *Conflict.
	From []State
	// Version, when non-zero, must also match: the writer acts on what it read.
	Version int64
	To      State
	// Attempt, Deadline, Request and Held replace the row's when set.
	Attempt  int
	Deadline time.Time
	Request  json.RawMessage
	Held     json.RawMessage
}

// Transition is the Change of the row id from one of from to to.
func Transition(id string, to State, from ...State) Change {
	return Change{ID: id, To: to, From: from}
}

// Batch is what one Commit writes: all of it or, when a transition's compare fails,
// none of it.
type Batch struct {
	Events  []Event
	Changes []Change
	// Deferred marks work that may wait behind urgent appends (decisions and dispatch
	// records, which nobody waits on to be acknowledged): it is committed as durably, but
	// after intake queued beside it.
	Deferred bool
}

// Committed is what a Commit wrote.
type Committed struct {
	// Inserted says, per event of the batch, whether it was new (false: its key was
	// there already and it was dropped).
	Inserted []bool
	// Created says, per change of the batch, whether it created or moved a row (false:
	// a Create whose id existed).
	Created []bool
	// Actions are the rows the batch's changes left, per change (the existing row for
	// a Create that did nothing).
	Actions []Action
}

// Conflict is the error of a batch whose compare-and-set lost: nothing of the batch was
// written. Current is the row as the winner left it (nil: no such action).
type Conflict struct {
	ID      string
	Want    []State
	Version int64
	Current *Action
}

// ErrConflict matches every *Conflict with errors.Is.
var ErrConflict = errors.New("action ledger conflict")

// ErrNoAction: no ledger row has that id.
var ErrNoAction = errors.New("no such action")

func (c *Conflict) Error() string {
	want := make([]string, len(c.Want))
	for i, s := range c.Want {
		want[i] = string(s)
	}
	if c.Current == nil {
		return fmt.Sprintf("%v: action %s does not exist", ErrConflict, c.ID)
	}
	if c.Version != 0 && c.Version != c.Current.Version && slices.Contains(c.Want, c.Current.State) {
		return fmt.Sprintf("%v: action %s changed meanwhile (version %d, not %d)", ErrConflict, c.ID, c.Current.Version, c.Version)
	}
	return fmt.Sprintf("%v: action %s is %s, not %s", ErrConflict, c.ID, c.Current.State, strings.Join(want, " or "))
}

// Is makes errors.Is(err, ErrConflict) true for a *Conflict.
func (c *Conflict) Is(target error) bool { return target == ErrConflict }

// ActionFilter selects ledger rows; zero fields match everything.
type ActionFilter struct {
	States []State
	Node   string
	// UpdatedBefore keeps rows last changed before it (a stale dispatch, say).
	UpdatedBefore time.Time
	// Partitions, when set, keeps rows of these node partitions.
	Partitions []int
	// Limit caps the result (oldest change first); 0 means DefaultLimit.
	Limit int
}

// Ledger is the action ledger of a Store.
type Ledger interface {
	// Commit writes a batch in one transaction, beside other callers' (group commit).
	Commit(ctx context.Context, b Batch) (Committed, error)
	// Action returns one row, or ErrNoAction.
	Action(ctx context.Context, id string) (Action, error)
	// Actions returns the rows matching f, least recently changed first.
	Actions(ctx context.Context, f ActionFilter) ([]Action, error)
}

// Apply applies the changes of a batch to rows (the ledger as read inside the commit's
// transaction, by id; it is updated in place) at time now. It returns, per change,
// whether it wrote and the row it left, or the *Conflict that fails the batch. Stores
// share it so that every store decides a compare-and-set the same way.
func Apply(rows map[string]*Action, changes []Change, now time.Time) (created []bool, out []Action, err error) {
	// Work on copies: a failed batch leaves rows as they were.
	work := map[string]*Action{}
	get := func(id string) *Action {
		if a, ok := work[id]; ok {
			return a
		}
		if a := rows[id]; a != nil {
			c := *a
			work[id] = &c
			return &c
		}
		return nil
	}
	created = make([]bool, len(changes))
	out = make([]Action, len(changes))
	for i, c := range changes {
		if c.Create != nil {
			if cur := get(c.Create.ID); cur != nil {
				out[i] = *cur
				continue
			}
			a := *c.Create
			a.Version, a.Created, a.Updated = 1, now, now
			if a.Attempt == 0 {
				a.Attempt = 1
			}
			a.Partition = Partition(a.Node)
			work[a.ID] = &a
			created[i], out[i] = true, a
			continue
		}
		cur := get(c.ID)
		if cur == nil || !slices.Contains(c.From, cur.State) || (c.Version != 0 && c.Version != cur.Version) {
			var snap *Action
			if cur != nil {
				s := *cur
				snap = &s
			}
			return nil, nil, &Conflict{ID: c.ID, Want: c.From, Version: c.Version, Current: snap}
		}
		cur.State = c.To
		cur.Version++
		cur.Updated = now
		if c.Attempt != 0 {
			cur.Attempt = c.Attempt
		}
		if !c.Deadline.IsZero() {
			cur.Deadline = c.Deadline
		}
		if c.Request != nil {
			cur.Request = c.Request
		}
		if c.Held != nil {
			cur.Held = c.Held
		}
		if cur.State.Final() {
			// What a waiting or running action needs is in the log's events; a final
			// row keeps only its state.
			cur.Request, cur.Held = nil, nil
		}
		created[i], out[i] = true, *cur
	}
	for id, a := range work {
		rows[id] = a
	}
	return created, out, nil
}

// ChangedIDs are the ids a batch's changes touch.
func (b *Batch) ChangedIDs() []string {
	var ids []string
	for _, c := range b.Changes {
		if c.Create != nil {
			ids = append(ids, c.Create.ID)
		} else {
			ids = append(ids, c.ID)
		}
	}
	return ids
}
