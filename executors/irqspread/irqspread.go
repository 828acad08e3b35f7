// Package irqspread implements irq.spread: it writes smp_affinity of a NIC's queue IRQs
// directly, one queue per CPU, for when irqbalance itself is the bug (the field report's
// 9 queue IRQs left on CPUs 4 and 5 after a VM freeze). CPUs local to the device's NUMA
// node come first when the device has one; kernel-managed IRQs, which refuse affinity
// writes with EIO, are skipped and named in the result. irqbalance may move the IRQs
// again later: stop it or ban the IRQs if the spread must hold.
//
// Privileges: uid 0 (root owns /proc/irq/*/smp_affinity) with the host's /proc/irq
// mounted read-write below the host root, and read access to the host's /sys.
//
// Example decision:
//
//	{"action": "irq.spread", "params": {"interface": "eth0", "cpus": "0-7"}}
package irqspread

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/internal/txn"
	"github.com/remedyhq/remedy/nodefs"
)

// Action is this executor's action name.
const Action = "irq.spread"

// Params are irq.spread's parameters.
type Params struct {
	Interface string `json:"interface"`
	// CPUs limits the spread to these CPUs, as a CPU list ("0-7,16"); empty means every
	// online CPU.
	CPUs string `json:"cpus,omitempty"`
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	if err := nic.CheckName(p.Interface); err != nil {
		return err
	}
	if _, err := p.cpus(); err != nil {
		return err
	}
	return nil
}

func (p Params) cpus() ([]int, error) {
	if p.CPUs == "" {
		return nil, nil
	}
	cpus, err := nodefs.ParseCPUList(p.CPUs)
	if err != nil {
		return nil, fmt.Errorf("cpus: %w", err)
	}
	if len(cpus) == 0 {
		return nil, errors.New("cpus: empty list")
	}
	return cpus, nil
}

// New returns the irq.spread executor over a host root.
func New(root string) executors.Executor {
	return txn.NewAction[Params](Action, func(_ context.Context, p Params) ([]txn.Change, []string, error) {
		cs, err := Changes(root, p)
		return cs, nil, err
	})
}

// Changes plans one CPU per queue IRQ.
func Changes(root string, p Params) ([]txn.Change, error) {
	fs, err := nodefs.New(root)
	if err != nil {
		return nil, err
	}
	irqs, err := nic.QueueIRQs(fs, p.Interface)
	if err != nil {
		return nil, err
	}
	order, err := cpuOrder(fs, p)
	if err != nil {
		return nil, err
	}
	cs := make([]txn.Change, 0, len(irqs))
	for i, irq := range irqs {
		cs = append(cs, txn.Change{
			Setting: nic.Affinity(fs, irq.IRQ),
			Want:    nodefs.MaskOf(order[i%len(order)]).String(),
			Skip:    kernelManaged,
		})
	}
	return cs, nil
}

// kernelManaged matches the EIO the kernel answers for managed IRQs' affinity writes.
func kernelManaged(err error) bool { return errors.Is(err, syscall.EIO) }

// cpuOrder lists the CPUs to use: the allowed online CPUs, those of the device's NUMA
// node first.
func cpuOrder(fs nodefs.FS, p Params) ([]int, error) {
	online, err := fs.OnlineCPUs()
	if err != nil {
		return nil, err
	}
	onlineMask := nodefs.MaskOf(online...)
	allowed := online
	if want, _ := p.cpus(); want != nil {
		if off := nic.Offline(nodefs.MaskOf(want...), onlineMask); off.Count() > 0 {
			return nil, txn.Refuse("cpus %s are not online (online: %s)", nodefs.FormatCPUList(off.CPUs()), nodefs.FormatCPUList(online))
		}
		allowed = want
	}
	node, err := fs.DeviceNUMANode(p.Interface)
	if errors.Is(err, nodefs.ErrNoNUMA) {
		return allowed, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fs.SysPath("devices", "system", "node", "node"+strconv.Itoa(node), "cpulist"))
	if err != nil {
		return nil, fmt.Errorf("read cpus of numa node %d: %w", node, err)
	}
	local, err := nodefs.ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("read cpus of numa node %d: %w", node, err)
	}
	localMask := nodefs.MaskOf(local...)
	var first, rest []int
	for _, c := range allowed {
		if localMask.Has(c) {
			first = append(first, c)
		} else {
			rest = append(rest, c)
		}
	}
	return append(first, rest...), nil
}
