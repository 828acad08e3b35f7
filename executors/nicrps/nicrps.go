// Package nicrps implements nic.rps and nic.rfs: Receive Packet Steering and Receive Flow
// Steering for one interface.
//
// nic.rps writes the CPU mask of /sys/class/net/IF/queues/rx-N/rps_cpus for every rx queue
// (or the listed ones). The mask is hex as the kernel prints it ("f", "ff,ffffffff"); "0"
// turns RPS off. A mask naming CPUs that are not online is refused.
//
// nic.rfs sets net.core.rps_sock_flow_entries (the global flow table) and rps_flow_cnt of
// every rx queue, by default the global size divided by the number of queues, as the
// kernel's scaling.rst recommends. Both are powers of two, since the kernel rounds them up.
//
// Privileges: uid 0 with CAP_NET_ADMIN, hostNetwork, and read-write mounts below the host
// root of the host's /sys/devices (rps_cpus, rps_flow_cnt; /sys/class/net links there)
// and /proc/sys/net (rps_sock_flow_entries, root network namespace only).
//
// Example decisions:
//
//	{"action": "nic.rps", "params": {"interface": "eth0", "cpus": "ff"}}
//	{"action": "nic.rfs", "params": {"interface": "eth0", "flowEntries": 32768}}
package nicrps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/internal/txn"
	"github.com/remedyhq/remedy/executors/sysctl"
	"github.com/remedyhq/remedy/nodefs"
)

// Action names.
const (
	ActionRPS = "nic.rps"
	ActionRFS = "nic.rfs"
)

// MaxQueueFlowCount bounds rps_flow_cnt per queue.
const MaxQueueFlowCount = 1 << 20

const sockFlowKey = "net.core.rps_sock_flow_entries"

// RPSParams are nic.rps's parameters.
type RPSParams struct {
	Interface string `json:"interface"`
	// CPUs is the hex mask written to rps_cpus.
	CPUs string `json:"cpus"`
	// Queues limits the change to these rx queues; empty means all.
	Queues []int `json:"queues,omitempty"`
}

// Validate implements executors.Validator.
func (p *RPSParams) Validate() error {
	if err := nic.CheckName(p.Interface); err != nil {
		return err
	}
	if p.CPUs == "" {
		return errors.New("cpus is required")
	}
	if _, err := nodefs.ParseCPUMask(p.CPUs); err != nil {
		return fmt.Errorf("cpus: %w", err)
	}
	return checkQueues(p.Queues)
}

func checkQueues(qs []int) error {
	seen := map[int]bool{}
	for _, q := range qs {
		if q < 0 || q > 4095 {
			return fmt.Errorf("queue %d out of range [0, 4095]", q)
		}
		if seen[q] {
			return fmt.Errorf("queue %d listed twice", q)
		}
		seen[q] = true
	}
	return nil
}

// Mask returns the parsed CPU mask (valid after Validate).
func (p RPSParams) Mask() nodefs.CPUMask {
	m, _ := nodefs.ParseCPUMask(p.CPUs)
	return m
}

// NewRPS returns the nic.rps executor over a host root.
func NewRPS(root string) executors.Executor {
	return txn.NewAction[RPSParams](ActionRPS, func(_ context.Context, p RPSParams) ([]txn.Change, []string, error) {
		cs, err := RPSChanges(root, p.Interface, p.Mask(), p.Queues)
		return cs, nil, err
	})
}

// RPSChanges plans rps_cpus = mask on the given rx queues of an interface (all when empty),
// refusing a mask with CPUs that are not online or a queue the interface does not have.
func RPSChanges(root, ifname string, mask nodefs.CPUMask, queues []int) ([]txn.Change, error) {
	qs, err := queuesOf(root, ifname, queues)
	if err != nil {
		return nil, err
	}
	online, err := nic.OnlineCPUs(root)
	if err != nil {
		return nil, err
	}
	if off := nic.Offline(mask, online); off.Count() > 0 {
		return nil, txn.Refuse("cpus %s names CPUs %s that are not online (online: %s)", mask,
			nodefs.FormatCPUList(off.CPUs()), nodefs.FormatCPUList(online.CPUs()))
	}
	var cs []txn.Change
	for _, q := range qs {
		cs = append(cs, txn.Change{
			Setting: txn.File{Key: queueKey(ifname, q, "rps_cpus"), Path: nic.QueueFile(root, ifname, q, "rps_cpus"), Canon: nic.CanonMask},
			Want:    mask.String(),
		})
	}
	return cs, nil
}

func queueKey(ifname string, q int, file string) string {
	return ifname + "/rx-" + strconv.Itoa(q) + "/" + file
}

// queuesOf returns the wanted queues after checking that the interface has them.
func queuesOf(root, ifname string, want []int) ([]int, error) {
	have, err := nic.RxQueues(root, ifname)
	if errors.Is(err, nic.ErrNoDevice) {
		return nil, txn.Refuse("%w", err)
	}
	if err != nil {
		return nil, err
	}
	if len(have) == 0 {
		return nil, txn.Refuse("interface %s has no rx queues in sysfs", ifname)
	}
	if len(want) == 0 {
		return have, nil
	}
	for _, q := range want {
		if !slices.Contains(have, q) {
			return nil, txn.Refuse("interface %s has no rx queue %d (it has %d)", ifname, q, len(have))
		}
	}
	return want, nil
}

// RFSParams are nic.rfs's parameters.
type RFSParams struct {
	Interface string `json:"interface"`
	// FlowEntries is net.core.rps_sock_flow_entries; 0 turns RFS off.
	FlowEntries *int64 `json:"flowEntries"`
	// QueueFlowCount is rps_flow_cnt of each rx queue; by default FlowEntries divided by
	// the number of rx queues.
	QueueFlowCount *int64 `json:"queueFlowCount,omitempty"`
}

// Validate implements executors.Validator.
func (p *RFSParams) Validate() error {
	if err := nic.CheckName(p.Interface); err != nil {
		return err
	}
	if p.FlowEntries == nil {
		return errors.New("flowEntries is required")
	}
	if err := sysctl.DefaultAllowed()[sockFlowKey].Check(sockFlowKey, *p.FlowEntries); err != nil {
		return err
	}
	if c := p.QueueFlowCount; c != nil {
		if *c < 0 || *c > MaxQueueFlowCount || *c&(*c-1) != 0 {
			return fmt.Errorf("queueFlowCount=%d must be 0 or a power of two up to %d", *c, MaxQueueFlowCount)
		}
	}
	return nil
}

// NewRFS returns the nic.rfs executor over a host root.
func NewRFS(root string) executors.Executor {
	return txn.NewAction[RFSParams](ActionRFS, func(_ context.Context, p RFSParams) ([]txn.Change, []string, error) {
		cs, err := RFSChanges(root, p.Interface, *p.FlowEntries, p.QueueFlowCount, nil)
		return cs, nil, err
	})
}

// RFSChanges plans the global flow table size and the flow count of the given rx queues
// (all when empty); perQueue defaults to entries divided by the number of queues.
func RFSChanges(root, ifname string, entries int64, perQueue *int64, queues []int) ([]txn.Change, error) {
	qs, err := queuesOf(root, ifname, queues)
	if err != nil {
		return nil, err
	}
	sc, err := sysctl.New(root).Change(sockFlowKey, entries)
	if err != nil {
		return nil, err
	}
	cnt := entries / int64(len(qs))
	if perQueue != nil {
		cnt = *perQueue
	}
	cnt = floorPow2(cnt)
	cs := []txn.Change{sc}
	for _, q := range qs {
		cs = append(cs, txn.Change{
			Setting: txn.File{Key: queueKey(ifname, q, "rps_flow_cnt"), Path: nic.QueueFile(root, ifname, q, "rps_flow_cnt")},
			Want:    strconv.FormatInt(cnt, 10),
		})
	}
	return cs, nil
}

// floorPow2 rounds down to a power of two (0 stays 0), so the kernel keeps the value as is.
func floorPow2(v int64) int64 {
	if v <= 0 {
		return 0
	}
	p := int64(1)
	for p*2 <= v {
		p *= 2
	}
	return p
}
