// Package executors defines the action contract: the small interface every remediation
// action implements, the typed request and result that travel between the engine and
// the node agent, and the catalogue the engine checks policy decisions against.
//
// Each action lives in its own subpackage (executors/sysctl, ...). Node actions run in
// remedy-agent; cluster actions (Kubernetes) run in the engine. Both satisfy Executor.
package executors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Executor carries out one action.
//
// CheckParams is the load-time check (a policy or a decision is refused when it fails)
// and changes nothing. Execute re-checks its parameters, probes, snapshots what it will
// change, applies, verifies by reading back, and rolls back on a failed verify. It
// honours req.DryRun by reporting what it would change. It never panics on bad input.
type Executor interface {
	Action() string
	CheckParams(params json.RawMessage) error
	Execute(ctx context.Context, req Request) Result
}

// Request is one action to run, as dispatched by the engine.
type Request struct {
	// ID is the action's idempotency key: the same ID is never applied twice.
	ID            string          `json:"id"`
	Action        string          `json:"action"`
	Node          string          `json:"node"`
	Params        json.RawMessage `json:"params,omitempty"`
	DryRun        bool            `json:"dryRun,omitempty"`
	CorrelationID string          `json:"correlationId"`
	Reason        string          `json:"reason,omitempty"`
	// Deadline is when the action stops being worth running: an agent that receives it
	// later reports it expired instead of running it late.
	Deadline time.Time `json:"deadline,omitzero"`
	// Attempt is the action's run in the engine's ledger (1 for the first); its result
	// carries it back, and the engine accepts a result only for the current attempt.
	Attempt int `json:"attempt,omitempty"`
}

// Status is the outcome of an execution.
type Status string

// Result statuses.
const (
	Succeeded  Status = "succeeded"
	DryRun     Status = "dry_run"
	Failed     Status = "failed"
	RolledBack Status = "rolled_back"
	Refused    Status = "refused"
	Expired    Status = "expired"
	// Unavailable: the action cannot run here at all — a cluster action on an engine
	// that has no Kubernetes cluster. Nothing was changed; the message says what to
	// configure.
	Unavailable Status = "unavailable"
)

// Result is what an executor reports; Before and After hold the values it read before
// and after the change so that the audit log shows exactly what changed.
type Result struct {
	ID            string            `json:"id"`
	Action        string            `json:"action"`
	Node          string            `json:"node"`
	CorrelationID string            `json:"correlationId"`
	Status        Status            `json:"status"`
	Message       string            `json:"message,omitempty"`
	Before        map[string]string `json:"before,omitempty"`
	After         map[string]string `json:"after,omitempty"`
	StartedAt     time.Time         `json:"startedAt,omitzero"`
	FinishedAt    time.Time         `json:"finishedAt,omitzero"`
	// Attempt is the request's (Finish copies it).
	Attempt int `json:"attempt,omitempty"`
	// Unverified is set on the refusal of an action whose envelope failed verification:
	// it reports a message that did not come from the engine, so the engine records it
	// and leaves the real action's state alone.
	Unverified bool `json:"unverified,omitempty"`
}

// Target says where an action runs.
type Target string

// Targets.
const (
	OnNode    Target = "node"    // dispatched over NATS to the node's agent
	InCluster Target = "cluster" // run by the engine against the Kubernetes API
)

// Sentinel errors.
var (
	ErrUnknownAction = errors.New("unknown action")
	ErrBadParams     = errors.New("invalid parameters")
	ErrDuplicate     = errors.New("action registered twice")
)

// Registry is an explicit map from action name to executor, built from configuration
// (never filled in init()).
type Registry struct {
	byAction map[string]entry
}

type entry struct {
	exec   Executor
	target Target
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byAction: map[string]entry{}} }

// Add registers executors for a target.
func (r *Registry) Add(t Target, execs ...Executor) error {
	for _, e := range execs {
		if _, ok := r.byAction[e.Action()]; ok {
			return fmt.Errorf("%w: %s", ErrDuplicate, e.Action())
		}
		r.byAction[e.Action()] = entry{exec: e, target: t}
	}
	return nil
}

// Get returns the executor of an action and where it runs.
func (r *Registry) Get(action string) (Executor, Target, error) {
	e, ok := r.byAction[action]
	if !ok {
		return nil, "", fmt.Errorf("%w %q", ErrUnknownAction, action)
	}
	return e.exec, e.target, nil
}

// Check validates an action and its parameters without running anything.
func (r *Registry) Check(action string, params json.RawMessage) (Target, error) {
	e, t, err := r.Get(action)
	if err != nil {
		return "", err
	}
	if err := e.CheckParams(params); err != nil {
		return "", fmt.Errorf("%s: %w", action, err)
	}
	return t, nil
}

// Actions lists the registered action names, sorted.
func (r *Registry) Actions() []string {
	out := make([]string, 0, len(r.byAction))
	for a := range r.byAction {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Validator is implemented by typed parameter structs.
type Validator interface{ Validate() error }

// DecodeParams decodes params strictly (unknown fields are an error) into a typed
// struct and validates it. Every error wraps ErrBadParams.
func DecodeParams[T any, PT interface {
	*T
	Validator
}](raw json.RawMessage) (T, error) {
	var p T
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadParams, err)
	}
	if dec.More() {
		return p, fmt.Errorf("%w: trailing data after the parameters object", ErrBadParams)
	}
	if err := PT(&p).Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadParams, err)
	}
	return p, nil
}

// Finish stamps a result with the request's identity and the finish time.
func Finish(req Request, started time.Time, res Result) Result {
	res.ID, res.Action, res.Node, res.CorrelationID, res.Attempt = req.ID, req.Action, req.Node, req.CorrelationID, req.Attempt
	res.StartedAt, res.FinishedAt = started, time.Now().UTC()
	return res
}

// Failure is a shorthand for a failed result.
func Failure(req Request, started time.Time, status Status, err error) Result {
	return Finish(req, started, Result{Status: status, Message: err.Error()})
}
