// Package sysctl implements the sysctl.set action: it writes one kernel parameter from an
// allow-list with per-key bounds, verifies by reading it back, and restores the old value
// when the verify fails.
//
// RBAC/privileges: the agent needs write access to the host's /proc/sys (a privileged
// container or CAP_SYS_ADMIN with /proc/sys mounted read-write).
//
// Example decision:
//
//	{"action": "sysctl.set", "params": {"key": "net.core.netdev_max_backlog", "value": 8192}}
package sysctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/remedyhq/remedy/executors"
)

// Action is this executor's action name.
const Action = "sysctl.set"

// Bounds are the inclusive limits of one allowed key.
type Bounds struct{ Min, Max int64 }

// DefaultAllowed is the network budget set: the keys remedy's policies tune, with bounds
// wide enough for large VMs and narrow enough that a policy bug cannot starve the node.
var DefaultAllowed = map[string]Bounds{
	"net.core.netdev_max_backlog":    {Min: 1000, Max: 1 << 20},
	"net.core.netdev_budget":         {Min: 300, Max: 1 << 16},
	"net.core.netdev_budget_usecs":   {Min: 2000, Max: 100000},
	"net.core.rps_sock_flow_entries": {Min: 0, Max: 1 << 20},
}

// Params of sysctl.set.
type Params struct {
	Key   string `json:"key"`
	Value *int64 `json:"value"`
}

// Validate implements executors.Validator; the allow-list is checked by the executor.
func (p *Params) Validate() error {
	if p.Key == "" {
		return fmt.Errorf("key is required")
	}
	if p.Value == nil {
		return fmt.Errorf("value is required")
	}
	return nil
}

// Executor writes sysctls below Root (the host root, "/" on a node, "/host" in a pod).
type Executor struct {
	Root    string
	Allowed map[string]Bounds
}

// New returns an executor over the host root with the default allow-list.
func New(root string) *Executor { return &Executor{Root: root, Allowed: DefaultAllowed} }

// Action implements executors.Executor.
func (e *Executor) Action() string { return Action }

// CheckParams implements executors.Executor.
func (e *Executor) CheckParams(raw json.RawMessage) error {
	_, err := e.params(raw)
	return err
}

func (e *Executor) params(raw json.RawMessage) (Params, error) {
	p, err := executors.DecodeParams[Params](raw)
	if err != nil {
		return p, err
	}
	b, ok := e.Allowed[p.Key]
	if !ok {
		return p, fmt.Errorf("%w: key %q is not in the allow-list (%s)", executors.ErrBadParams, p.Key, strings.Join(e.keys(), ", "))
	}
	if *p.Value < b.Min || *p.Value > b.Max {
		return p, fmt.Errorf("%w: %s=%d out of range [%d, %d]", executors.ErrBadParams, p.Key, *p.Value, b.Min, b.Max)
	}
	return p, nil
}

func (e *Executor) keys() []string {
	ks := make([]string, 0, len(e.Allowed))
	for k := range e.Allowed {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Path returns the /proc/sys file of a key below root.
func Path(root, key string) string {
	return filepath.Join(root, "proc", "sys", filepath.FromSlash(strings.ReplaceAll(key, ".", "/")))
}

// Read returns a sysctl's current integer value.
func Read(root, key string) (int64, error) {
	b, err := os.ReadFile(Path(root, key))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", key, err)
	}
	return v, nil
}

// Write sets a sysctl.
func Write(root, key string, v int64) error {
	if err := os.WriteFile(Path(root, key), []byte(strconv.FormatInt(v, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// Execute implements executors.Executor.
func (e *Executor) Execute(ctx context.Context, req executors.Request) executors.Result {
	start := time.Now().UTC()
	p, err := e.params(req.Params)
	if err != nil {
		return executors.Failure(req, start, executors.Refused, err)
	}
	if err := ctx.Err(); err != nil {
		return executors.Failure(req, start, executors.Failed, err)
	}
	old, err := Read(e.Root, p.Key)
	if err != nil {
		return executors.Failure(req, start, executors.Failed, err)
	}
	before := map[string]string{p.Key: strconv.FormatInt(old, 10)}
	want := map[string]string{p.Key: strconv.FormatInt(*p.Value, 10)}
	if req.DryRun {
		return executors.Finish(req, start, executors.Result{Status: executors.DryRun, Before: before, After: want,
			Message: fmt.Sprintf("would set %s from %d to %d", p.Key, old, *p.Value)})
	}
	if old == *p.Value {
		return executors.Finish(req, start, executors.Result{Status: executors.Succeeded, Before: before, After: before,
			Message: fmt.Sprintf("%s already %d", p.Key, old)})
	}
	if err := Write(e.Root, p.Key, *p.Value); err != nil {
		return executors.Finish(req, start, executors.Result{Status: executors.Failed, Before: before, Message: err.Error()})
	}
	got, err := Read(e.Root, p.Key)
	if err == nil && got == *p.Value {
		return executors.Finish(req, start, executors.Result{Status: executors.Succeeded, Before: before, After: want,
			Message: fmt.Sprintf("set %s from %d to %d", p.Key, old, *p.Value)})
	}
	// The kernel clamped or refused the value: put the old one back.
	verr := fmt.Errorf("verify %s: read back %d, want %d", p.Key, got, *p.Value)
	if err != nil {
		verr = err
	}
	if rerr := Write(e.Root, p.Key, old); rerr != nil {
		return executors.Finish(req, start, executors.Result{Status: executors.Failed, Before: before,
			Message: fmt.Sprintf("%v; rollback failed: %v", verr, rerr)})
	}
	after, _ := Read(e.Root, p.Key)
	return executors.Finish(req, start, executors.Result{Status: executors.RolledBack, Before: before,
		After: map[string]string{p.Key: strconv.FormatInt(after, 10)}, Message: verr.Error() + "; restored"})
}
