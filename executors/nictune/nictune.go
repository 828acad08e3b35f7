// Package nictune implements nic.tune, a profile action: it sizes an interface's ring
// buffers, channels, RPS, RFS and the network budget sysctls from the node's online CPU
// count and the device's maxima, and applies them as one transaction: all or nothing.
//
// The profile (what the field's static systemd units did, computed per node):
//   - ring rx/tx: the device maximum, capped by ringCap when given;
//   - channels: combined (or rx and tx on devices without combined channels) =
//     min(device maximum, online CPUs);
//   - rps_cpus: every online CPU on each rx queue, only when there are more CPUs than rx
//     queues (otherwise RSS already spreads the load and RPS only adds IPIs);
//   - RFS: net.core.rps_sock_flow_entries = 4096 per CPU as a power of two in [32768, 2^20],
//     rps_flow_cnt = that divided by the rx queues;
//   - net.core.netdev_max_backlog = backlogPerCPU × CPUs, net.core.netdev_budget =
//     budgetPerCPU × CPUs, each within sysctl.set's bounds and never lowered.
//
// Parts the device cannot do (ring sizes on virtual NICs, channels on single-queue ones) are
// left out and named in the result; "skip" leaves out parts on purpose. Queues that a lower
// channel count removes lose their RPS/RFS settings: only queues that exist before and after
// are written.
//
// Privileges: those of nic.ring, nic.channels, nic.rps, nic.rfs and sysctl.set together:
// uid 0 with CAP_NET_ADMIN in the host's network namespace (hostNetwork), the host's
// /sys/devices and /proc/sys/net mounted read-write below the host root.
//
// Example decision:
//
//	{"action": "nic.tune", "params": {"interface": "eth0", "ringCap": 4096, "skip": ["rps"]}}
package nictune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/internal/txn"
	"github.com/remedyhq/remedy/executors/nicring"
	"github.com/remedyhq/remedy/executors/nicrps"
	"github.com/remedyhq/remedy/executors/sysctl"
	"github.com/remedyhq/remedy/nodefs"
)

// Action is this executor's action name.
const Action = "nic.tune"

// partNames are the parts of the profile, as named in "skip".
func partNames() []string { return []string{"ring", "channels", "rps", "rfs", "backlog"} }

// Defaults of the profile.
const (
	DefaultBacklogPerCPU = 1024
	DefaultBudgetPerCPU  = 64
	flowEntriesPerCPU    = 4096
	minFlowEntries       = 32768
	maxFlowEntries       = 1 << 20
)

// Params are nic.tune's parameters.
type Params struct {
	Interface     string   `json:"interface"`
	RingCap       *int64   `json:"ringCap,omitempty"`
	BacklogPerCPU *int64   `json:"backlogPerCPU,omitempty"`
	BudgetPerCPU  *int64   `json:"budgetPerCPU,omitempty"`
	Skip          []string `json:"skip,omitempty"`
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	if err := nic.CheckName(p.Interface); err != nil {
		return err
	}
	for _, b := range []struct {
		name     string
		v        *int64
		min, max int64
	}{{"ringCap", p.RingCap, 1, nicring.MaxRing}, {"backlogPerCPU", p.BacklogPerCPU, 1, 1 << 16}, {"budgetPerCPU", p.BudgetPerCPU, 1, 4096}} {
		if b.v != nil && (*b.v < b.min || *b.v > b.max) {
			return fmt.Errorf("%s %d out of range [%d, %d]", b.name, *b.v, b.min, b.max)
		}
	}
	for _, s := range p.Skip {
		if !slices.Contains(partNames(), s) {
			return fmt.Errorf("skip %q: not one of %s", s, strings.Join(partNames(), ", "))
		}
	}
	return nil
}

func (p Params) skips(part string) bool { return slices.Contains(p.Skip, part) }

func orDefault(v *int64, d int64) int64 {
	if v == nil {
		return d
	}
	return *v
}

// New returns the nic.tune executor over a host root and an ethtool.
func New(root string, dev nic.Ethtool) executors.Executor {
	e := &tuner{Root: root, Dev: dev}
	return txn.NewAction[Params](Action, e.plan)
}

type tuner struct {
	Root string
	Dev  nic.Ethtool
}

// node is what the profile is sized from.
type node struct {
	p      Params
	online nodefs.CPUMask
	ncpu   int64
	queues []int // rx queues now
	rx     int64 // rx queues after the channel change
}

// part plans one part of the profile; a non-empty note says why it was left out.
type part func(ctx context.Context, n *node) (cs []txn.Change, note string, err error)

// plan sizes the profile. It returns the changes in the order they must be applied
// (channels first, since they decide which queues exist) and the parts it left out.
func (e *tuner) plan(ctx context.Context, p Params) ([]txn.Change, []string, error) {
	if err := nic.Exists(e.Root, p.Interface); err != nil {
		return nil, nil, txn.Refuse("%w", err)
	}
	online, err := nic.OnlineCPUs(e.Root)
	if err != nil {
		return nil, nil, err
	}
	queues, err := nic.RxQueues(e.Root, p.Interface)
	if err != nil {
		return nil, nil, err
	}
	n := &node{p: p, online: online, ncpu: int64(online.Count()), queues: queues, rx: int64(len(queues))}
	var cs []txn.Change
	var left []string
	for _, pt := range []struct {
		name string
		plan part
	}{{"channels", e.channels}, {"ring", e.ring}, {"rps", e.rps}, {"rfs", e.rfs}, {"backlog", e.backlog}} {
		if p.skips(pt.name) {
			continue
		}
		c, note, err := pt.plan(ctx, n)
		if errors.Is(err, nic.ErrNotSupported) {
			c, note, err = nil, "not supported by the device", nil
		}
		if err != nil {
			return nil, nil, err
		}
		if note != "" {
			left = append(left, pt.name+" ("+note+")")
		}
		cs = append(cs, c...)
	}
	return cs, left, nil
}

// channels: combined (or rx and tx) = min(device maximum, CPUs).
func (e *tuner) channels(ctx context.Context, n *node) ([]txn.Change, string, error) {
	ch, err := e.Dev.Channels(ctx, n.p.Interface)
	if err != nil {
		return nil, "", err
	}
	kinds := []string{"combined"}
	if ch.MaxCombined == 0 {
		kinds = []string{"rx", "tx"}
	}
	var cs []txn.Change
	for _, k := range kinds {
		s := nic.ChannelSetting{Dev: e.Dev, If: n.p.Interface, Kind: k}
		want := min(int64(s.Max(ch)), n.ncpu)
		if want < 1 {
			continue
		}
		cs = append(cs, txn.Change{Setting: s, Want: strconv.FormatInt(want, 10)})
		if k != "tx" {
			n.rx = want
		}
	}
	if len(cs) == 0 {
		return nil, "the device reports no maximum", nil
	}
	return cs, "", nil
}

// ring: rx and tx at the device maximum, at most ringCap.
func (e *tuner) ring(ctx context.Context, n *node) ([]txn.Change, string, error) {
	r, err := e.Dev.Ring(ctx, n.p.Interface)
	if err != nil {
		return nil, "", err
	}
	limit := orDefault(n.p.RingCap, nicring.MaxRing)
	rp := nicring.Params{Interface: n.p.Interface, OverMax: nicring.Clamp}
	if rx := min(int64(r.RxMax), limit); rx > 0 {
		rp.Rx = &rx
	}
	if tx := min(int64(r.TxMax), limit); tx > 0 {
		rp.Tx = &tx
	}
	if rp.Rx == nil && rp.Tx == nil {
		return nil, "the device reports no maximum", nil
	}
	cs, err := nicring.Changes(ctx, e.Root, e.Dev, rp)
	return cs, "", err
}

// kept are the rx queues that exist both before and after the channel change.
func (n *node) kept() []int { return n.queues[:min(int64(len(n.queues)), n.rx)] }

// rps: every online CPU on each rx queue, when there are more CPUs than queues.
func (e *tuner) rps(_ context.Context, n *node) ([]txn.Change, string, error) {
	if n.ncpu <= n.rx {
		return nil, fmt.Sprintf("%d rx queues already cover %d CPUs", n.rx, n.ncpu), nil
	}
	cs, err := nicrps.RPSChanges(e.Root, n.p.Interface, n.online, n.kept())
	return cs, "", err
}

// rfs: a flow table of 4096 entries per CPU, shared out over the rx queues; never lowered.
func (e *tuner) rfs(_ context.Context, n *node) ([]txn.Change, string, error) {
	entries := min(max(ceilPow2(flowEntriesPerCPU*n.ncpu), minFlowEntries), maxFlowEntries)
	if cur, err := sysctl.Read(e.Root, "net.core.rps_sock_flow_entries"); err == nil && cur > entries {
		entries = cur
	}
	per := entries / max(n.rx, 1)
	cs, err := nicrps.RFSChanges(e.Root, n.p.Interface, entries, &per, n.kept())
	return cs, "", err
}

// backlog: netdev_max_backlog and netdev_budget per CPU, within sysctl.set's bounds;
// never lowered.
func (e *tuner) backlog(_ context.Context, n *node) ([]txn.Change, string, error) {
	sx := sysctl.New(e.Root)
	var cs []txn.Change
	for _, k := range []struct {
		key string
		v   int64
	}{
		{"net.core.netdev_max_backlog", orDefault(n.p.BacklogPerCPU, DefaultBacklogPerCPU) * n.ncpu},
		{"net.core.netdev_budget", orDefault(n.p.BudgetPerCPU, DefaultBudgetPerCPU) * n.ncpu},
	} {
		b := sx.Allowed[k.key]
		v := min(max(k.v, b.Min), b.Max)
		if cur, err := sysctl.Read(e.Root, k.key); err == nil && cur > v {
			v = cur
		}
		c, err := sx.Change(k.key, v)
		if err != nil {
			return nil, "", err
		}
		cs = append(cs, c)
	}
	return cs, "", nil
}

func ceilPow2(v int64) int64 {
	p := int64(1)
	for p < v {
		p *= 2
	}
	return p
}
