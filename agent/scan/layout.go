package scan

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/remedyhq/remedy/nodefs"
)

// Layout is what the node looks like, healthy or not: which CPUs each NIC queue IRQ may
// go to and which served it during the scans, and which drop counters grew. It is what an
// engineer checks by hand in /proc/interrupts, smp_affinity and the NIC statistics.
type Layout struct {
	NICs []NICLayout `json:"nics"`
	// Softnet is the growth of /proc/net/softnet_stat's drop columns, all CPUs together.
	Softnet map[string]uint64 `json:"softnet,omitempty"`
}

// NICLayout is one NIC's queue IRQs and counters.
type NICLayout struct {
	Interface string      `json:"interface"`
	IRQs      []IRQLayout `json:"irqs"`
	// Counters holds the growth during the scans of the NIC's statistics (rx_packets,
	// rx_dropped, rx_missed_errors, rx_fifo_errors, tx_dropped) that could be read.
	Counters map[string]uint64 `json:"counters,omitempty"`
}

// IRQLayout is one queue IRQ.
type IRQLayout struct {
	IRQ      int    `json:"irq"`
	Name     string `json:"name"`
	Affinity string `json:"affinity"`          // smp_affinity as a CPU list: where it may go
	Serving  string `json:"serving,omitempty"` // the CPUs that served it during the scans
	Count    uint64 `json:"interrupts"`        // interrupts during the scans
}

// nicCounters are the statistics whose growth the layout shows.
var nicCounters = []string{"rx_packets", "rx_dropped", "rx_missed_errors", "rx_fifo_errors", "tx_dropped"}

// snapshot is the counters at one moment.
type snapshot struct {
	ints    nodefs.Interrupts
	stats   map[string]map[string]uint64 // iface -> counter -> value
	softnet map[string]uint64
}

func takeSnapshot(fs nodefs.FS, ifaces []string) (snapshot, error) {
	s := snapshot{stats: map[string]map[string]uint64{}}
	var err error
	if s.ints, err = fs.Interrupts(); err != nil {
		return s, err
	}
	r := fs.NewReader()
	for _, iface := range ifaces {
		m := map[string]uint64{}
		for _, c := range nicCounters {
			if v, err := r.Uint(fs.SysPath("class", "net", iface, "statistics", c)); err == nil {
				m[c] = v
			}
		}
		s.stats[iface] = m
	}
	if sn, err := r.Softnet(nil); err == nil {
		s.softnet = map[string]uint64{}
		for _, c := range sn {
			s.softnet["dropped"] += uint64(c.Dropped)
			s.softnet["time_squeezed"] += uint64(c.TimeSqueezed)
		}
	}
	return s, nil
}

// layoutOf builds the layout from the snapshots before and after the scans.
func layoutOf(fs nodefs.FS, ifaces []string, before, after snapshot) Layout {
	l := Layout{NICs: []NICLayout{}}
	for _, iface := range ifaces {
		qs, err := fs.NICQueueIRQs(iface, after.ints)
		if err != nil || len(qs) == 0 {
			continue // virtual, gone, or without queue IRQs: nothing to lay out
		}
		n := NICLayout{Interface: iface}
		for _, q := range qs {
			il := IRQLayout{IRQ: q.IRQ, Name: q.Name, Affinity: "?"}
			if m, err := fs.IRQAffinity(q.IRQ); err == nil {
				il.Affinity = nodefs.FormatCPUList(m.CPUs())
			}
			var serving []int
			a, b := after.ints[q.IRQ].Counts, before.ints[q.IRQ].Counts
			for cpu := range a {
				var d uint64
				if cpu < len(b) && a[cpu] >= b[cpu] {
					d = a[cpu] - b[cpu]
				}
				if d > 0 {
					serving = append(serving, cpu)
					il.Count += d
				}
			}
			il.Serving = nodefs.FormatCPUList(serving)
			n.IRQs = append(n.IRQs, il)
		}
		n.Counters = grown(before.stats[iface], after.stats[iface])
		l.NICs = append(l.NICs, n)
	}
	l.Softnet = grown(before.softnet, after.softnet)
	return l
}

// grown is after-before for the counters in both (0 for one that went back: a wrap or
// a reset).
func grown(before, after map[string]uint64) map[string]uint64 {
	if after == nil {
		return nil
	}
	out := map[string]uint64{}
	for k, v := range after {
		if b, ok := before[k]; ok {
			if v >= b {
				out[k] = v - b
			} else {
				out[k] = 0
			}
		}
	}
	return out
}

// nicNames is the NICs the layout covers: the ones given, else every device-backed one.
func nicNames(fs nodefs.FS, given []string) ([]string, error) {
	if len(given) > 0 {
		return given, nil
	}
	names, err := fs.NICs()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

func printLayout(w io.Writer, res Result) {
	l := res.Layout
	if l == nil {
		return
	}
	fmt.Fprintf(w, "\nIRQ layout (interrupts during the %d scans, %s apart):\n", res.Scans, res.Interval)
	if len(l.NICs) == 0 {
		fmt.Fprintln(w, "  no NIC with queue IRQs (virtual interfaces only)")
	}
	for _, n := range l.NICs {
		fmt.Fprintf(w, "  %s: %d queue IRQs\n", n.Interface, len(n.IRQs))
		for _, q := range n.IRQs {
			serving := q.Serving
			if serving == "" {
				serving = "none"
			}
			fmt.Fprintf(w, "    irq %d %s: affinity cpus %s, served by %s, +%d\n", q.IRQ, q.Name, q.Affinity, serving, q.Count)
		}
	}
	fmt.Fprintln(w, "\nCounters (growth during the scans):")
	for _, n := range l.NICs {
		if len(n.Counters) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", n.Interface, formatCounters(n.Counters))
		}
	}
	if len(l.Softnet) > 0 {
		fmt.Fprintf(w, "  softnet_stat: %s\n", formatCounters(l.Softnet))
	}
}

func formatCounters(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s +%d", k, m[k])
	}
	return s
}
