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
// CAP_NET_ADMIN in the host's network namespace, write access to the host's /sys and
// /proc/sys (a privileged container with hostNetwork).
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
)

// Action is this executor's action name.
const Action = "nic.tune"

// Parts of the profile, as named in "skip".
var parts = []string{"ring", "channels", "rps", "rfs", "backlog"}

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
		if !slices.Contains(parts, s) {
			return fmt.Errorf("skip %q: not one of %s", s, strings.Join(parts, ", "))
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
	ncpu := int64(online.Count())
	queues, err := nic.RxQueues(e.Root, p.Interface)
	if err != nil {
		return nil, nil, err
	}
	var cs []txn.Change
	var left []string
	unsupported := func(part string, err error) error {
		if errors.Is(err, nic.ErrNotSupported) {
			left = append(left, part+" (not supported by the device)")
			return nil
		}
		return err
	}

	rxAfter := int64(len(queues))
	if !p.skips("channels") {
		ch, err := e.Dev.Channels(ctx, p.Interface)
		if err := unsupported("channels", err); err != nil {
			return nil, nil, err
		}
		if err == nil {
			kinds := []string{"combined"}
			if ch.MaxCombined == 0 {
				kinds = []string{"rx", "tx"}
			}
			for _, k := range kinds {
				s := nic.ChannelSetting{Dev: e.Dev, If: p.Interface, Kind: k}
				want := min(int64(s.Max(ch)), ncpu)
				if want < 1 {
					continue
				}
				cs = append(cs, txn.Change{Setting: s, Want: strconv.FormatInt(want, 10)})
				if k != "tx" {
					rxAfter = want
				}
			}
			if len(cs) == 0 {
				left = append(left, "channels (the device reports no maximum)")
			}
		}
	}
	if !p.skips("ring") {
		r, err := e.Dev.Ring(ctx, p.Interface)
		if err := unsupported("ring", err); err != nil {
			return nil, nil, err
		}
		if err == nil {
			rp := nicring.Params{Interface: p.Interface, OverMax: nicring.Clamp}
			rx, tx := min(int64(r.RxMax), orDefault(p.RingCap, nicring.MaxRing)), min(int64(r.TxMax), orDefault(p.RingCap, nicring.MaxRing))
			if rx > 0 {
				rp.Rx = &rx
			}
			if tx > 0 {
				rp.Tx = &tx
			}
			if rp.Rx != nil || rp.Tx != nil {
				rc, err := nicring.Changes(ctx, e.Root, e.Dev, rp)
				if err != nil {
					return nil, nil, err
				}
				cs = append(cs, rc...)
			}
		}
	}
	// Only the queues that exist both before and after the channel change.
	kept := queues[:min(int64(len(queues)), rxAfter)]
	if !p.skips("rps") {
		if ncpu > rxAfter {
			rc, err := nicrps.RPSChanges(e.Root, p.Interface, online, kept)
			if err != nil {
				return nil, nil, err
			}
			cs = append(cs, rc...)
		} else {
			left = append(left, fmt.Sprintf("rps (%d rx queues already cover %d CPUs)", rxAfter, ncpu))
		}
	}
	if !p.skips("rfs") {
		entries := min(max(ceilPow2(flowEntriesPerCPU*ncpu), minFlowEntries), maxFlowEntries)
		if cur, err := sysctl.Read(e.Root, "net.core.rps_sock_flow_entries"); err == nil && cur > entries {
			entries = cur
		}
		per := entries / max(rxAfter, 1)
		rc, err := nicrps.RFSChanges(e.Root, p.Interface, entries, &per, kept)
		if err != nil {
			return nil, nil, err
		}
		cs = append(cs, rc...)
	}
	if !p.skips("backlog") {
		sx := sysctl.New(e.Root)
		for _, k := range []struct {
			key string
			v   int64
		}{
			{"net.core.netdev_max_backlog", orDefault(p.BacklogPerCPU, DefaultBacklogPerCPU) * ncpu},
			{"net.core.netdev_budget", orDefault(p.BudgetPerCPU, DefaultBudgetPerCPU) * ncpu},
		} {
			b := sx.Allowed[k.key]
			v := min(max(k.v, b.Min), b.Max)
			if cur, err := sysctl.Read(e.Root, k.key); err == nil && cur > v {
				v = cur // never lowered
			}
			c, err := sx.Change(k.key, v)
			if err != nil {
				return nil, nil, err
			}
			cs = append(cs, c)
		}
	}
	return cs, left, nil
}

func ceilPow2(v int64) int64 {
	p := int64(1)
	for p < v {
		p *= 2
	}
	return p
}
