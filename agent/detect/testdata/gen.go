//go:build ignore

// gen writes the fixture node trees under testdata/nodes: each node is a base tree
// (base/proc, base/sys) plus one overlay per scan (scanN/...) holding the files that
// change between scans. Run from agent/detect: go run ./testdata/gen.go [DIR]
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const userHZ = 100

type nic struct {
	name, pci string
	virtio    int // virtio device number, -1 for a plain PCI NIC
	irqs      []int
	ctrl      int // control vector, 0 for none
	numa      int
}

type node struct {
	dir    string
	ncpu   int
	nics   []nic
	others []irqLine // non-NIC IRQs (nvme, serial)
	cg     string    // cgroup v2 mount below sys/fs/cgroup ("", "unified")
}

type irqLine struct {
	n          int
	chip, name string
}

// counters is the cumulative state of one scan.
type counters struct {
	irq      map[int][]uint64 // per-CPU counts
	aff      map[int]int      // irq -> cpu
	netRX    []uint64
	softirqT []uint64 // /proc/stat softirq ticks
	busyT    []uint64
	softnet  [][3]uint32 // processed, dropped, squeeze
	nicStat  map[string]map[string]uint64
	psi      map[string][2]uint64 // resource -> some, full totals (us)
	cpuFull  bool                 // cpu pressure has a full line
	cgroups  map[string]cgState
	cgOrder  []string
	seconds  int
}

type cgState struct {
	cpuSome, memSome, ioSome    uint64
	nrPeriods, nrThrottled, thr uint64
	usage                       uint64
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func write(path, s string) {
	must(os.MkdirAll(filepath.Dir(path), 0o755))
	must(os.WriteFile(path, []byte(s), 0o644))
}

func symlink(target, link string) {
	must(os.MkdirAll(filepath.Dir(link), 0o755))
	_ = os.Remove(link)
	must(os.Symlink(target, link))
}

func maskHex(cpu, ncpu int) string {
	words := (ncpu + 31) / 32
	parts := make([]string, words)
	for g := words - 1; g >= 0; g-- {
		var w uint32
		if cpu/32 == g {
			w = 1 << (cpu % 32)
		}
		digits := 8
		if g == words-1 {
			digits = (ncpu - g*32 + 3) / 4
		}
		parts[words-1-g] = fmt.Sprintf("%0*x", digits, w)
	}
	return strings.Join(parts, ",")
}

func (n node) base(c *counters) {
	root := filepath.Join(outDir, n.dir, "base")
	must(os.RemoveAll(root))
	write(filepath.Join(root, "proc/1/README"), "procfs reads /proc/interrupts through pid 1\n")
	write(filepath.Join(root, "sys/devices/system/cpu/online"), fmt.Sprintf("0-%d\n", n.ncpu-1))
	for _, x := range n.nics {
		pdev := filepath.Join(root, "sys/devices/pci0000:00", x.pci)
		write(filepath.Join(pdev, "numa_node"), fmt.Sprintf("%d\n", x.numa))
		netdir := filepath.Join(pdev, "net", x.name)
		devLink := "../../../" + x.pci
		rel := "../../devices/pci0000:00/" + x.pci + "/net/" + x.name
		if x.virtio >= 0 {
			v := fmt.Sprintf("virtio%d", x.virtio)
			netdir = filepath.Join(pdev, v, "net", x.name)
			devLink = "../../../" + v
			rel = "../../devices/pci0000:00/" + x.pci + "/" + v + "/net/" + x.name
		}
		write(filepath.Join(netdir, "mtu"), "1500\n")
		symlink(devLink, filepath.Join(netdir, "device"))
		symlink(rel, filepath.Join(root, "sys/class/net", x.name))
		all := append([]int{}, x.irqs...)
		if x.ctrl != 0 {
			all = append(all, x.ctrl)
		}
		for _, i := range all {
			write(filepath.Join(pdev, "msi_irqs", fmt.Sprint(i)), "msix\n")
		}
	}
	// lo has no device: detectors must skip it.
	write(filepath.Join(root, "sys/devices/virtual/net/lo/mtu"), "65536\n")
	symlink("../../devices/virtual/net/lo", filepath.Join(root, "sys/class/net/lo"))
	// The cgroup v2 mount: sys/fs/cgroup, or sys/fs/cgroup/unified on a hybrid host.
	write(filepath.Join(root, "sys/fs/cgroup", n.cg, "cgroup.controllers"), "cpuset cpu io memory pids\n")
}

func (n node) scan(i int, c *counters) {
	root := filepath.Join(outDir, n.dir, fmt.Sprintf("scan%d", i))
	must(os.RemoveAll(root))
	var b strings.Builder
	b.WriteString("    ")
	for cpu := range n.ncpu {
		fmt.Fprintf(&b, "       CPU%d", cpu)
	}
	b.WriteString("\n")
	line := func(num int, chip, name string) {
		fmt.Fprintf(&b, "%4d:", num)
		for _, v := range c.irq[num] {
			fmt.Fprintf(&b, " %10d", v)
		}
		fmt.Fprintf(&b, "  %s   %d-edge      %s\n", chip, num%32, name)
	}
	for _, o := range n.others {
		line(o.n, o.chip, o.name)
	}
	for _, x := range n.nics {
		chip := "PCI-MSIX-" + x.pci
		for q, irq := range x.irqs {
			var name string
			if x.virtio >= 0 {
				dir := "input"
				if q%2 == 1 {
					dir = "output"
				}
				name = fmt.Sprintf("virtio%d-%s.%d", x.virtio, dir, q/2)
			} else {
				name = fmt.Sprintf("mlx5_comp%d@pci:%s", q, x.pci)
			}
			line(irq, chip, name)
		}
		if x.ctrl != 0 {
			name := fmt.Sprintf("mlx5_async0@pci:%s", x.pci)
			if x.virtio >= 0 {
				name = fmt.Sprintf("virtio%d-config", x.virtio)
			}
			line(x.ctrl, chip, name)
		}
	}
	fmt.Fprintf(&b, " NMI:")
	for range n.ncpu {
		b.WriteString("          0")
	}
	b.WriteString("   Non-maskable interrupts\n ERR:          0\n")
	write(filepath.Join(root, "proc/interrupts"), b.String())

	for irq, cpu := range c.aff {
		m := maskHex(cpu, n.ncpu)
		write(filepath.Join(root, "proc/irq", fmt.Sprint(irq), "smp_affinity"), m+"\n")
		write(filepath.Join(root, "proc/irq", fmt.Sprint(irq), "effective_affinity"), m+"\n")
	}

	b.Reset()
	b.WriteString("          ")
	for cpu := range n.ncpu {
		fmt.Fprintf(&b, "  CPU%-7d", cpu)
	}
	b.WriteString("\n")
	for _, name := range []string{"HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"} {
		fmt.Fprintf(&b, "%10s:", name)
		for cpu := range n.ncpu {
			v := uint64(0)
			if name == "NET_RX" {
				v = c.netRX[cpu]
			} else if name == "TIMER" || name == "SCHED" || name == "RCU" {
				v = uint64(1000 * c.seconds)
			}
			fmt.Fprintf(&b, " %10d", v)
		}
		b.WriteString("\n")
	}
	write(filepath.Join(root, "proc/softirqs"), b.String())

	b.Reset()
	var tot [4]uint64 // user system idle softirq
	cpuLines := make([]string, n.ncpu)
	for cpu := range n.ncpu {
		all := uint64(c.seconds * userHZ)
		user := c.busyT[cpu]
		soft := c.softirqT[cpu]
		idle := all - user - soft
		cpuLines[cpu] = fmt.Sprintf("cpu%d %d 0 0 %d 0 0 %d 0 0 0\n", cpu, user, idle, soft)
		tot[0] += user
		tot[2] += idle
		tot[3] += soft
	}
	fmt.Fprintf(&b, "cpu  %d 0 0 %d 0 0 %d 0 0 0\n", tot[0], tot[2], tot[3])
	b.WriteString(strings.Join(cpuLines, ""))
	b.WriteString("intr 0\nctxt 1000\nbtime 1764100000\nprocesses 100\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n")
	write(filepath.Join(root, "proc/stat"), b.String())

	b.Reset()
	for cpu := range n.ncpu {
		s := c.softnet[cpu]
		fmt.Fprintf(&b, "%08x %08x %08x 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 %08x\n", s[0], s[1], s[2], cpu)
	}
	write(filepath.Join(root, "proc/net/softnet_stat"), b.String())

	for _, x := range n.nics {
		for stat, v := range c.nicStat[x.name] {
			write(filepath.Join(root, "sys/class/net", x.name, "statistics", stat), fmt.Sprintf("%d\n", v))
		}
	}
	// lo counts drops too (it has none here) but has no device.
	for _, stat := range []string{"rx_dropped", "tx_dropped", "rx_missed_errors", "rx_fifo_errors", "rx_packets"} {
		write(filepath.Join(root, "sys/class/net/lo/statistics", stat), "0\n")
	}

	for _, r := range []string{"cpu", "memory", "io"} {
		v := c.psi[r]
		s := fmt.Sprintf("some avg10=%.2f avg60=%.2f avg300=%.2f total=%d\n", pct(v[0], c.seconds), pct(v[0], c.seconds)/2, pct(v[0], c.seconds)/4, v[0])
		if r != "cpu" || c.cpuFull {
			s += fmt.Sprintf("full avg10=%.2f avg60=%.2f avg300=%.2f total=%d\n", pct(v[1], c.seconds), pct(v[1], c.seconds)/2, 0.0, v[1])
		}
		write(filepath.Join(root, "proc/pressure", r), s)
	}
	cg := filepath.Join(root, "sys/fs/cgroup", n.cg)
	for _, path := range c.cgOrder {
		st := c.cgroups[path]
		d := filepath.Join(cg, path)
		psiFile := func(some uint64, full bool) string {
			s := fmt.Sprintf("some avg10=%.2f avg60=0.00 avg300=0.00 total=%d\n", pct(some, c.seconds), some)
			if full {
				s += "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
			}
			return s
		}
		write(filepath.Join(d, "cpu.pressure"), psiFile(st.cpuSome, true))
		write(filepath.Join(d, "memory.pressure"), psiFile(st.memSome, true))
		write(filepath.Join(d, "io.pressure"), psiFile(st.ioSome, true))
		write(filepath.Join(d, "cpu.stat"), fmt.Sprintf("usage_usec %d\nuser_usec %d\nsystem_usec 0\nnr_periods %d\nnr_throttled %d\nthrottled_usec %d\nnr_bursts 0\nburst_usec 0\n",
			st.usage, st.usage, st.nrPeriods, st.nrThrottled, st.thr))
	}
}

// pct is a made-up avg10 for a stall total over seconds: the share of the last second.
func pct(totalUS uint64, seconds int) float64 {
	if seconds == 0 {
		return 0
	}
	return float64(totalUS) / float64(seconds) / 1e4
}

func newCounters(n node) *counters {
	c := &counters{irq: map[int][]uint64{}, aff: map[int]int{}, netRX: make([]uint64, n.ncpu),
		softirqT: make([]uint64, n.ncpu), busyT: make([]uint64, n.ncpu), softnet: make([][3]uint32, n.ncpu),
		nicStat: map[string]map[string]uint64{}, psi: map[string][2]uint64{}, cgroups: map[string]cgState{}, seconds: 1000}
	for _, o := range n.others {
		c.irq[o.n] = make([]uint64, n.ncpu)
	}
	for _, x := range n.nics {
		for _, i := range append(append([]int{}, x.irqs...), x.ctrl) {
			if i != 0 {
				c.irq[i] = make([]uint64, n.ncpu)
			}
		}
		c.nicStat[x.name] = map[string]uint64{"rx_packets": 1e6, "tx_packets": 1e6, "rx_dropped": 10, "tx_dropped": 0, "rx_missed_errors": 0, "rx_fifo_errors": 0}
	}
	for cpu := range n.ncpu {
		c.busyT[cpu] = 20 * userHZ
		c.softirqT[cpu] = userHZ
	}
	return c
}

// second advances the counters by one second of a NIC load served on the CPUs of aff.
func (c *counters) second(n node, perIRQ uint64) {
	c.seconds++
	for _, x := range n.nics {
		for _, irq := range x.irqs {
			cpu := c.aff[irq]
			c.irq[irq][cpu] += perIRQ
			c.netRX[cpu] += perIRQ * 2
		}
		c.nicStat[x.name]["rx_packets"] += perIRQ * uint64(len(x.irqs)) * 8
	}
	for _, o := range n.others {
		c.irq[o.n][o.n%n.ncpu] += 7
	}
	for cpu := range n.ncpu {
		c.busyT[cpu] += 20
		c.softirqT[cpu] += 1
		c.softnet[cpu][0] += 1000
	}
}

// load puts the softirq cost of the NIC on the CPUs serving it.
func (c *counters) load(cpus map[int]uint64) {
	for cpu, ticks := range cpus {
		c.softirqT[cpu] += ticks
		c.busyT[cpu] -= min(c.busyT[cpu], 0)
	}
}

func skewed8() {
	n := node{dir: "skewed8", ncpu: 8,
		nics:   []nic{{name: "eth0", pci: "0000:00:02.0", virtio: -1, irqs: []int{24, 25, 26, 27, 28, 29, 30, 31, 32}, ctrl: 33}},
		others: []irqLine{{n: 4, chip: "IO-APIC", name: "ttyS0"}}}
	c := newCounters(n)
	skew := []int{5, 4, 5, 4, 5, 4, 5, 4, 5} // smp_affinity 20,10,20,10,... as in the field report
	balanced := []int{6, 7, 4, 7, 2, 5, 3, 0, 1}
	for i, irq := range n.nics[0].irqs {
		c.aff[irq] = skew[i]
	}
	n.base(c)
	for scan := range 7 {
		if scan == 4 { // irqbalance restarted
			for i, irq := range n.nics[0].irqs {
				c.aff[irq] = balanced[i]
			}
		}
		c.second(n, 50000)
		if scan < 4 {
			c.load(map[int]uint64{4: 60, 5: 90})
			c.softnet[5][1] += 50
			c.softnet[5][2] += 200
			c.softnet[4][2] += 100
			c.nicStat["eth0"]["rx_dropped"] += 500
			c.nicStat["eth0"]["rx_missed_errors"] += 300
		} else {
			c.load(map[int]uint64{0: 10, 1: 10, 2: 10, 3: 10, 4: 10, 5: 10, 6: 10, 7: 10})
		}
		c.psi["cpu"] = [2]uint64{c.psi["cpu"][0] + 10000, 0}
		n.scan(scan, c)
	}
}

func balanced8() {
	n := node{dir: "balanced8", ncpu: 8,
		nics:   []nic{{name: "eth0", pci: "0000:00:02.0", virtio: -1, irqs: []int{24, 25, 26, 27, 28, 29, 30, 31, 32}, ctrl: 33}},
		others: []irqLine{{n: 4, chip: "IO-APIC", name: "ttyS0"}}}
	c := newCounters(n)
	for i, irq := range n.nics[0].irqs {
		c.aff[irq] = []int{6, 7, 4, 7, 2, 5, 3, 0, 1}[i] // 40,80,10,80,04,20,08,01,02
	}
	n.base(c)
	for scan := range 4 {
		c.second(n, 50000)
		c.load(map[int]uint64{0: 10, 1: 10, 2: 10, 3: 10, 4: 10, 5: 10, 6: 10, 7: 20})
		c.softnet[3][2] += 1 // an occasional squeeze is normal
		n.scan(scan, c)
	}
}

func node96() {
	n := node{dir: "node96", ncpu: 96, cg: "unified",
		nics: []nic{{name: "eth0", pci: "0000:00:02.0", virtio: -1, numa: 0, ctrl: 33}}}
	for q := range 32 {
		n.nics[0].irqs = append(n.nics[0].irqs, 34+q)
	}
	for q := range 96 {
		n.others = append(n.others, irqLine{n: 100 + q, chip: "PCI-MSIX-0000:00:04.0", name: fmt.Sprintf("nvme0q%d", q)})
	}
	n.others = append(n.others, irqLine{n: 4, chip: "IO-APIC", name: "ttyS0"})
	c := newCounters(n)
	for i, irq := range n.nics[0].irqs {
		c.aff[irq] = i * 3 // one queue every third CPU
	}
	pods := []string{
		"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_0000_4000_8000_000000000001.slice",
		"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_0000_4000_8000_000000000002.slice",
		"kubepods.slice/kubepods-pod0a1b2c3d_0000_4000_8000_000000000003.slice",
	}
	c.cgOrder = pods
	n.base(c)
	for scan := range 3 {
		c.second(n, 20000)
		for _, p := range pods {
			st := c.cgroups[p]
			st.usage += 500000
			st.nrPeriods += 10
			c.cgroups[p] = st
		}
		c.psi["cpu"] = [2]uint64{c.psi["cpu"][0] + 20000, c.psi["cpu"][1]}
		n.scan(scan, c)
	}
}

func virtio1q() {
	n := node{dir: "virtio1q", ncpu: 2,
		nics:   []nic{{name: "eth0", pci: "0000:00:03.0", virtio: 2, numa: -1, irqs: []int{38, 39}, ctrl: 37}},
		others: []irqLine{{n: 4, chip: "IO-APIC", name: "ttyS0"}}}
	c := newCounters(n)
	c.aff[38], c.aff[39] = 1, 0
	n.base(c)
	for scan := range 3 {
		c.second(n, 3000)
		n.scan(scan, c)
	}
}

// psi holds a node with each PSI shape: cpu without a full line (kernels before 5.13),
// memory quiet, io with full stalls; a throttled pod, a contended pod and an idle pod.
func psi() {
	n := node{dir: "psi", ncpu: 4}
	c := newCounters(n)
	throttled := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice"
	contended := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod66666666_7777_8888_9999_000000000000.slice"
	idle := "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podaaaaaaaa_bbbb_cccc_dddd_eeeeeeeeeeee.slice"
	c.cgOrder = []string{throttled, contended, idle}
	n.base(c)
	for scan := range 5 {
		c.second(n, 0)
		c.psi["cpu"] = [2]uint64{c.psi["cpu"][0] + 350000, 0}
		c.psi["memory"] = [2]uint64{c.psi["memory"][0] + 1000, c.psi["memory"][1]}
		c.psi["io"] = [2]uint64{c.psi["io"][0] + 400000, c.psi["io"][1] + 250000}
		t := c.cgroups[throttled]
		t.cpuSome += 300000
		t.usage += 200000
		t.nrPeriods += 10
		t.nrThrottled += 8
		t.thr += 280000
		c.cgroups[throttled] = t
		k := c.cgroups[contended]
		k.cpuSome += 400000
		k.usage += 900000
		k.nrPeriods += 0
		c.cgroups[contended] = k
		i := c.cgroups[idle]
		i.usage += 1000
		c.cgroups[idle] = i
		n.scan(scan, c)
	}
}

// outDir is where the nodes are written: testdata/nodes, or the first argument.
var outDir = "testdata/nodes"

func main() {
	if len(os.Args) > 1 {
		outDir = os.Args[1]
	}
	skewed8()
	balanced8()
	node96()
	virtio1q()
	psi()
}
