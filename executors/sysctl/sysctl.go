// Package sysctl implements the sysctl.set action: it writes kernel parameters from an
// allow-list with per-key bounds (the network budget set: netdev_max_backlog, netdev_budget,
// netdev_budget_usecs, rps_sock_flow_entries), verifies by reading them back, and restores
// the old values when a write or a verify fails. Several keys given together are one
// transaction: all are set or none.
//
// Privileges: uid 0 with CAP_NET_ADMIN (the kernel's check for net sysctls) and the host's
// /proc/sys/net mounted read-write below the host root. The net.core keys exist only in
// the host's root network namespace, so the agent runs with hostNetwork.
//
// Example decisions:
//
//	{"action": "sysctl.set", "params": {"key": "net.core.netdev_max_backlog", "value": 8192}}
//	{"action": "sysctl.set", "params": {"values": {"net.core.netdev_budget": 600, "net.core.netdev_budget_usecs": 8000}}}
package sysctl

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/txn"
)

// Action is this executor's action name.
const Action = "sysctl.set"

// Bounds are the inclusive limits of one allowed key. Pow2 keys are rounded up to a power
// of two by the kernel, so only powers of two (or 0) are accepted: what is written is then
// what reads back.
type Bounds struct {
	Min, Max int64
	Pow2     bool
}

// DefaultAllowed returns the network budget set: the keys remedy's policies tune, with
// bounds wide enough for large VMs and narrow enough that a policy bug cannot starve the node.
func DefaultAllowed() map[string]Bounds {
	return map[string]Bounds{
		"net.core.netdev_max_backlog":    {Min: 1000, Max: 1 << 20},
		"net.core.netdev_budget":         {Min: 300, Max: 1 << 16},
		"net.core.netdev_budget_usecs":   {Min: 2000, Max: 100000},
		"net.core.rps_sock_flow_entries": {Min: 0, Max: 1 << 20, Pow2: true},
	}
}

// Params of sysctl.set: either one Key and Value, or Values for several keys at once.
type Params struct {
	Key    string           `json:"key,omitempty"`
	Value  *int64           `json:"value,omitempty"`
	Values map[string]int64 `json:"values,omitempty"`
}

// Validate implements executors.Validator; the allow-list is checked by the executor.
func (p *Params) Validate() error {
	switch {
	case len(p.Values) > 0 && (p.Key != "" || p.Value != nil):
		return fmt.Errorf("give either key and value or values, not both")
	case len(p.Values) > 0:
		return nil
	case p.Key == "":
		return fmt.Errorf("key is required")
	case p.Value == nil:
		return fmt.Errorf("value is required")
	}
	return nil
}

// Settings returns the wanted values by key.
func (p Params) Settings() map[string]int64 {
	if len(p.Values) > 0 {
		return p.Values
	}
	return map[string]int64{p.Key: *p.Value}
}

// Executor writes sysctls below Root (the host root, "/" on a node, "/host" in a pod).
type Executor struct {
	Root    string
	Allowed map[string]Bounds
}

// New returns an executor over the host root with the default allow-list.
func New(root string) *Executor { return &Executor{Root: root, Allowed: DefaultAllowed()} }

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
	for _, k := range slices.Sorted(maps.Keys(p.Settings())) {
		if err := e.Check(k, p.Settings()[k]); err != nil {
			return p, err
		}
	}
	return p, nil
}

// Check validates one key and value against the allow-list; errors wrap executors.ErrBadParams.
func (e *Executor) Check(key string, v int64) error {
	b, ok := e.Allowed[key]
	if !ok {
		return fmt.Errorf("%w: key %q is not in the allow-list (%s)", executors.ErrBadParams, key,
			strings.Join(slices.Sorted(maps.Keys(e.Allowed)), ", "))
	}
	if err := b.Check(key, v); err != nil {
		return fmt.Errorf("%w: %v", executors.ErrBadParams, err)
	}
	return nil
}

// Check validates a value of key against the bounds.
func (b Bounds) Check(key string, v int64) error {
	if v < b.Min || v > b.Max {
		return fmt.Errorf("%s=%d out of range [%d, %d]", key, v, b.Min, b.Max)
	}
	if b.Pow2 && v&(v-1) != 0 {
		return fmt.Errorf("%s=%d is not a power of two (the kernel would round it up)", key, v)
	}
	return nil
}

// Change returns the transaction step that sets key to v, after checking the allow-list.
func (e *Executor) Change(key string, v int64) (txn.Change, error) {
	if err := e.Check(key, v); err != nil {
		return txn.Change{}, err
	}
	return txn.Change{Setting: Setting{Root: e.Root, Key: key}, Want: strconv.FormatInt(v, 10)}, nil
}

// Execute implements executors.Executor.
func (e *Executor) Execute(ctx context.Context, req executors.Request) executors.Result {
	return txn.Execute(ctx, req, func(context.Context) ([]txn.Change, error) {
		p, err := e.params(req.Params)
		if err != nil {
			return nil, err
		}
		s := p.Settings()
		var cs []txn.Change
		for _, k := range slices.Sorted(maps.Keys(s)) {
			c, err := e.Change(k, s[k])
			if err != nil {
				return nil, err
			}
			cs = append(cs, c)
		}
		return cs, nil
	})
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

// Setting is one integer sysctl as a transaction step.
type Setting struct{ Root, Key string }

// Name implements txn.Setting.
func (s Setting) Name() string { return s.Key }

// Read implements txn.Setting.
func (s Setting) Read(context.Context) (string, error) {
	v, err := Read(s.Root, s.Key)
	return strconv.FormatInt(v, 10), err
}

// Write implements txn.Setting.
func (s Setting) Write(ctx context.Context, v string) error {
	return txn.File{Key: s.Key, Path: Path(s.Root, s.Key)}.Write(ctx, v)
}
