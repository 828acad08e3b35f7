// Package nicchannels implements nic.channels, the equivalent of `ethtool -L IF combined N`:
// it sets an interface's channel (queue) counts, bounded by the device's maxima and by the
// number of online CPUs (more queues than CPUs only adds interrupts to share the same cores).
// Devices with separate rx and tx channels (veth, some virtual NICs) take "rx" and "tx".
//
// Privileges: CAP_NET_ADMIN in the host's network namespace (hostNetwork, or the namespace
// given to the agent as its NetNS option) and read access to the host's /sys.
//
// Example decision:
//
//	{"action": "nic.channels", "params": {"interface": "eth0", "combined": 8}}
package nicchannels

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
const Action = "nic.channels"

// MaxChannels bounds channel counts at load time; the device and CPU count bound them
// when running.
const MaxChannels = 4096

// Params are nic.channels's parameters; at least one count is given.
type Params struct {
	Interface string `json:"interface"`
	Combined  *int64 `json:"combined,omitempty"`
	Rx        *int64 `json:"rx,omitempty"`
	Tx        *int64 `json:"tx,omitempty"`
}

type count struct {
	kind string
	v    *int64
}

func (p Params) counts() []count {
	return []count{{"combined", p.Combined}, {"rx", p.Rx}, {"tx", p.Tx}}
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	if err := nic.CheckName(p.Interface); err != nil {
		return err
	}
	n := 0
	for _, c := range p.counts() {
		if c.v == nil {
			continue
		}
		n++
		if *c.v < 1 || *c.v > MaxChannels {
			return fmt.Errorf("%s channels %d out of range [1, %d]", c.kind, *c.v, MaxChannels)
		}
	}
	if n == 0 {
		return errors.New("combined, rx or tx is required")
	}
	return nil
}

// New returns the nic.channels executor over a host root (sysfs for the interface and the
// online CPUs) and an ethtool.
func New(root string, dev nic.Ethtool) executors.Executor {
	return txn.NewAction[Params](Action, func(ctx context.Context, p Params) ([]txn.Change, []string, error) {
		cs, err := Changes(ctx, root, dev, p)
		return cs, nil, err
	})
}

// Changes probes the device and the CPUs and plans the channel counts.
func Changes(ctx context.Context, root string, dev nic.Ethtool, p Params) ([]txn.Change, error) {
	ch, err := nic.Probe(ctx, root, p.Interface, dev.Channels)
	if err != nil {
		return nil, err
	}
	online, err := nic.OnlineCPUs(root)
	if err != nil {
		return nil, err
	}
	var cs []txn.Change
	for _, c := range p.counts() {
		if c.v == nil {
			continue
		}
		s := nic.ChannelSetting{Dev: dev, If: p.Interface, Kind: c.kind}
		if max := s.Max(ch); *c.v > int64(max) {
			return nil, txn.Refuse("%s channels %d above the device maximum %d of %s", c.kind, *c.v, max, p.Interface)
		}
		if n := online.Count(); *c.v > int64(n) {
			return nil, txn.Refuse("%s channels %d above the %d online CPUs", c.kind, *c.v, n)
		}
		cs = append(cs, txn.Change{Setting: s, Want: strconv.FormatInt(*c.v, 10)})
	}
	return cs, nil
}
