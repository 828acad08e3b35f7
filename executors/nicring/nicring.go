// Package nicring implements nic.ring, the equivalent of `ethtool -G IF rx N tx M`: it sets
// an interface's rx and tx ring sizes through the ethtool ioctl, never above the device's
// maximum. A size above the maximum is refused, or clamped to the maximum when the decision
// says "overMax": "clamp". A device without ring support (every virtual NIC) is refused.
//
// Privileges: CAP_NET_ADMIN in the host's network namespace (hostNetwork, or the
// namespace given to the agent as its NetNS option).
//
// Example decision:
//
//	{"action": "nic.ring", "params": {"interface": "eth0", "rx": 4096, "tx": 4096, "overMax": "clamp"}}
package nicring

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/internal/txn"
)

// Action is this executor's action name.
const Action = "nic.ring"

// MaxRing bounds ring sizes at load time; the device maximum is checked when running.
const MaxRing = 1 << 16

// What to do with a size above the device maximum.
const (
	Refuse = "refuse"
	Clamp  = "clamp"
)

// Params are nic.ring's parameters; at least one of Rx and Tx is given.
type Params struct {
	Interface string `json:"interface"`
	Rx        *int64 `json:"rx,omitempty"`
	Tx        *int64 `json:"tx,omitempty"`
	// OverMax is "refuse" (the default) or "clamp".
	OverMax string `json:"overMax,omitempty"`
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	if err := nic.CheckName(p.Interface); err != nil {
		return err
	}
	if p.Rx == nil && p.Tx == nil {
		return errors.New("rx or tx is required")
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"rx", p.Rx}, {"tx", p.Tx}} {
		if f.v != nil && (*f.v < 1 || *f.v > MaxRing) {
			return fmt.Errorf("%s ring %d out of range [1, %d]", f.name, *f.v, MaxRing)
		}
	}
	if p.OverMax != "" && p.OverMax != Refuse && p.OverMax != Clamp {
		return fmt.Errorf("overMax %q: want %q or %q", p.OverMax, Refuse, Clamp)
	}
	return nil
}

// New returns the nic.ring executor over a host root (to tell an unknown interface apart)
// and an ethtool.
func New(root string, dev nic.Ethtool) executors.Executor {
	return txn.NewAction[Params](Action, func(ctx context.Context, p Params) ([]txn.Change, []string, error) {
		cs, err := Changes(ctx, root, dev, p)
		return cs, nil, err
	})
}

// Changes probes the device and plans its ring sizes.
func Changes(ctx context.Context, root string, dev nic.Ethtool, p Params) ([]txn.Change, error) {
	r, err := nic.Probe(ctx, root, p.Interface, dev.Ring)
	if err != nil {
		return nil, err
	}
	var cs []txn.Change
	for _, f := range []struct {
		name string
		v    *int64
		max  uint32
	}{{"rx", p.Rx, r.RxMax}, {"tx", p.Tx, r.TxMax}} {
		if f.v == nil {
			continue
		}
		want := *f.v
		if f.max == 0 {
			return nil, txn.Refuse("%s ring: %s reports no maximum", f.name, p.Interface)
		}
		if want > int64(f.max) {
			if p.OverMax != Clamp {
				return nil, txn.Refuse("%s ring %d above the device maximum %d of %s", f.name, want, f.max, p.Interface)
			}
			want = int64(f.max)
		}
		cs = append(cs, txn.Change{Setting: nic.RingSetting{Dev: dev, If: p.Interface, Field: f.name}, Want: strconv.FormatInt(want, 10)})
	}
	return cs, nil
}
