package nettest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/remedyhq/remedy/executors/internal/nic"
)

// FakeNIC stands in for a NIC's ethtool where this machine's kernel cannot (ring sizes:
// every virtual device here answers EOPNOTSUPP). It refuses what a driver refuses: sizes
// of 0 or above the maximum (EINVAL). RoundRing, when set, rounds ring sizes up to a
// multiple of it, as drivers with descriptor blocks do, so a verify can fail.
type FakeNIC struct {
	mu        sync.Mutex
	R         nic.Ring
	C         nic.Channels
	RingErr   error // returned by Ring and SetRing
	ChanErr   error // returned by Channels and SetChannels
	RoundRing uint32
	Sets      int
}

// Ring implements nic.Ethtool.
func (f *FakeNIC) Ring(context.Context, string) (nic.Ring, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.R, f.RingErr
}

// SetRing implements nic.Ethtool.
func (f *FakeNIC) SetRing(_ context.Context, ifname string, r nic.Ring) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.RingErr != nil {
		return f.RingErr
	}
	if r.Rx == 0 || r.Tx == 0 || r.Rx > f.R.RxMax || r.Tx > f.R.TxMax {
		return fmt.Errorf("set ring %s: %w", ifname, unix.EINVAL)
	}
	if f.RoundRing > 0 {
		r.Rx = (r.Rx + f.RoundRing - 1) / f.RoundRing * f.RoundRing
		r.Tx = (r.Tx + f.RoundRing - 1) / f.RoundRing * f.RoundRing
	}
	f.Sets++
	f.R.Rx, f.R.Tx = r.Rx, r.Tx
	return nil
}

// Channels implements nic.Ethtool.
func (f *FakeNIC) Channels(context.Context, string) (nic.Channels, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.C, f.ChanErr
}

// SetChannels implements nic.Ethtool.
func (f *FakeNIC) SetChannels(_ context.Context, ifname string, c nic.Channels) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ChanErr != nil {
		return f.ChanErr
	}
	if c.Combined > f.C.MaxCombined || c.Rx > f.C.MaxRx || c.Tx > f.C.MaxTx {
		return fmt.Errorf("set channels %s: %w", ifname, unix.EINVAL)
	}
	f.Sets++
	f.C.Combined, f.C.Rx, f.C.Tx = c.Combined, c.Rx, c.Tx
	return nil
}

// NodeTree writes a fixture host root with the given online CPUs ("0-7") and an interface
// with rx queues, each with rps_cpus "0" and rps_flow_cnt "0", plus the network budget
// sysctls at their kernel defaults.
func NodeTree(t testing.TB, online, ifname string, rxQueues int) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"sys/devices/system/cpu/online":           online + "\n",
		"proc/sys/net/core/netdev_max_backlog":    "1000\n",
		"proc/sys/net/core/netdev_budget":         "300\n",
		"proc/sys/net/core/netdev_budget_usecs":   "8000\n",
		"proc/sys/net/core/rps_sock_flow_entries": "0\n",
	}
	for q := range rxQueues {
		files[fmt.Sprintf("sys/class/net/%s/queues/rx-%d/rps_cpus", ifname, q)] = "00\n"
		files[fmt.Sprintf("sys/class/net/%s/queues/rx-%d/rps_flow_cnt", ifname, q)] = "0\n"
		files[fmt.Sprintf("sys/class/net/%s/queues/tx-%d/xps_cpus", ifname, q)] = "00\n"
	}
	Tree(t, root, files)
	return root
}

// Node8 writes the field report's node: 8 CPUs on two NUMA nodes (0-3, 4-7), eth0 on
// node 1 with a control vector (IRQ 24) and 6 queue IRQs (25-30) left on CPUs 4 and 5
// (affinities 10 and 20 alternating), and a veth without IRQs.
func Node8(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	dev := "sys/devices/pci0000:00/0000:00:02.0"
	files := map[string]string{
		"proc/1/README":                         "pid 1 must exist for procfs",
		"sys/devices/system/cpu/online":         "0-7\n",
		"sys/devices/system/node/node0/cpulist": "0-3\n",
		"sys/devices/system/node/node1/cpulist": "4-7\n",
		dev + "/numa_node":                      "1\n",
		dev + "/net/eth0/device":                "->../../../0000:00:02.0",
		"sys/class/net/eth0":                    "->../../devices/pci0000:00/0000:00:02.0/net/eth0",
		"sys/devices/virtual/net/veth0/ifindex": "7\n",
		"sys/class/net/veth0":                   "->../../devices/virtual/net/veth0",
		"proc/irq/24/smp_affinity":              "ff\n",
	}
	var b strings.Builder
	b.WriteString("            CPU0       CPU1       CPU2       CPU3       CPU4       CPU5       CPU6       CPU7\n")
	fmt.Fprintf(&b, "  24:          1          0          0          0          0          0          0          0  PCI-MSI-0000:00:02.0   0-edge      eth0-misc\n")
	files[dev+"/msi_irqs/24"] = "msix\n"
	for i := range 6 {
		irq := 25 + i
		files[dev+fmt.Sprintf("/msi_irqs/%d", irq)] = "msix\n"
		files[fmt.Sprintf("proc/irq/%d/smp_affinity", irq)] = []string{"10\n", "20\n"}[i%2]
		fmt.Fprintf(&b, "  %d:          0          0          0          0    9000000          0          0          0  PCI-MSI-0000:00:02.0   %d-edge      eth0-TxRx-%d\n", irq, i+1, i)
	}
	files["proc/interrupts"] = b.String()
	Tree(t, root, files)
	return root
}
