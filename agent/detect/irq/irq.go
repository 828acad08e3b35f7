// Package irq detects NIC queue interrupts piled onto a few CPUs: the state irqbalance
// left Azure nodes in after a VM freeze, where nine queue IRQs sat on CPUs 4 and 5
// (smp_affinity 20, 10, 20, ...) and ksoftirqd/5 burnt a whole core while packets dropped.
//
// Each scan reads /proc/interrupts, the queue IRQs' affinities, /proc/softirqs and
// /proc/stat. A NIC is skewed when its queue IRQs are served by fewer than MinSpread of
// the CPUs that could serve them (one per queue, at most the online CPUs). The finding
// carries the busiest CPU's share of the NIC's interrupts and its softirq time over the
// scan interval.
package irq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/engine/signal"
	"github.com/remedyhq/remedy/nodefs"
)

// Defaults of Options.
const (
	DefaultMinSpread = 0.5
	DefaultMinQueues = 2
)

// Options configure the detector.
type Options struct {
	// Interfaces limits the NICs looked at; empty means every interface backed by a device.
	Interfaces []string
	// MinSpread is the least share of the possible CPUs that must serve a NIC's queue
	// IRQs (DefaultMinSpread when zero).
	MinSpread float64
	// MinQueues is the least number of queues a NIC needs to be judged (a single queue
	// cannot be spread); DefaultMinQueues when zero.
	MinQueues int
	// Registerer registers the remedy_irq_* metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Detector is the IRQ skew detector.
type Detector struct {
	fs   nodefs.FS
	opts Options
	prev *sample
	m    metrics
}

// sample is what one scan read.
type sample struct {
	at       time.Time
	counts   map[int][]uint64 // NIC queue IRQ -> per-CPU count
	netRX    []uint64
	softirq  map[int64]float64 // cpu -> softirq seconds
	cpuTotal map[int64]float64 // cpu -> all seconds
}

// New builds the detector over fs.
func New(fs nodefs.FS, opts Options) (*Detector, error) {
	if opts.MinSpread < 0 || opts.MinSpread > 1 {
		return nil, fmt.Errorf("irq: min spread %v not in [0,1]", opts.MinSpread)
	}
	if opts.MinSpread == 0 {
		opts.MinSpread = DefaultMinSpread
	}
	if opts.MinQueues <= 0 {
		opts.MinQueues = DefaultMinQueues
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Detector{fs: fs, opts: opts, m: m}, nil
}

// Name implements detect.Detector.
func (d *Detector) Name() string { return "irq" }

// NIC is what one scan saw of one NIC.
type NIC struct {
	Iface    string
	Queues   int
	IRQs     []nodefs.QueueIRQ
	Affinity map[int]nodefs.CPUMask // irq -> effective (else smp) affinity
	Spread   nodefs.CPUMask         // union of the affinities
	Possible int
}

// Scan implements detect.Detector.
func (d *Detector) Scan(ctx context.Context) ([]detect.Finding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := d.opts.Now()
	ints, err := d.fs.Interrupts()
	if err != nil {
		return nil, fmt.Errorf("irq: %w", err)
	}
	online, err := d.fs.OnlineCPUs()
	if err != nil {
		return nil, fmt.Errorf("irq: %w", err)
	}
	nics, err := d.nics(ints, len(online))
	if err != nil {
		return nil, err
	}
	cur := &sample{at: now, counts: map[int][]uint64{}}
	for _, n := range nics {
		for _, q := range n.IRQs {
			cur.counts[q.IRQ] = ints[q.IRQ].Counts
		}
	}
	if len(nics) > 0 {
		si, err := d.fs.Proc().Softirqs()
		if err != nil {
			return nil, fmt.Errorf("irq: read softirqs: %w", err)
		}
		cur.netRX = si.NetRx
		st, err := d.fs.Proc().Stat()
		if err != nil {
			return nil, fmt.Errorf("irq: read stat: %w", err)
		}
		cur.softirq = make(map[int64]float64, len(st.CPU))
		cur.cpuTotal = make(map[int64]float64, len(st.CPU))
		for cpu, c := range st.CPU {
			cur.softirq[cpu] = c.SoftIRQ
			cur.cpuTotal[cpu] = c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
		}
	}
	prev := d.prev
	d.prev = cur
	d.m.reset()
	var out []detect.Finding
	for _, n := range nics {
		f := d.judge(n, prev, cur, online)
		if f != nil {
			out = append(out, *f)
		}
	}
	return out, nil
}

// nics discovers the queue IRQs of every NIC and their affinities.
func (d *Detector) nics(ints nodefs.Interrupts, online int) ([]NIC, error) {
	names := d.opts.Interfaces
	if len(names) == 0 {
		var err error
		if names, err = d.fs.NICs(); err != nil {
			return nil, fmt.Errorf("irq: %w", err)
		}
	}
	var out []NIC
	for _, name := range names {
		qs, err := d.fs.NICQueueIRQs(name, ints)
		if errors.Is(err, nodefs.ErrNoDevice) || errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("irq: %w", err)
		}
		if len(qs) == 0 {
			continue
		}
		n := NIC{Iface: name, IRQs: qs, Affinity: make(map[int]nodefs.CPUMask, len(qs)), Queues: queues(qs)}
		for _, q := range qs {
			m, err := d.fs.IRQEffectiveAffinity(q.IRQ)
			if errors.Is(err, os.ErrNotExist) || (err == nil && m.Count() == 0) {
				m, err = d.fs.IRQAffinity(q.IRQ)
			}
			if errors.Is(err, os.ErrNotExist) {
				continue // the IRQ went away between reads
			}
			if err != nil {
				return nil, fmt.Errorf("irq: %w", err)
			}
			n.Affinity[q.IRQ] = m
			for _, c := range m.CPUs() {
				n.Spread = n.Spread.Set(c)
			}
		}
		n.Possible = min(n.Queues, online)
		out = append(out, n)
	}
	return out, nil
}

// queues counts the queues behind a NIC's IRQs: virtio gives each queue pair an input
// and an output vector ("virtio2-input.0", "virtio2-output.0"); other drivers one
// combined vector per queue.
func queues(qs []nodefs.QueueIRQ) int {
	seen := map[string]bool{}
	for _, q := range qs {
		key := q.Name
		if i := strings.LastIndexByte(q.Name, '.'); i > 0 && strings.HasPrefix(q.Name, "virtio") {
			key = q.Name[i+1:]
		}
		seen[key] = true
	}
	return len(seen)
}

// judge measures one NIC and returns a finding when it is skewed.
func (d *Detector) judge(n NIC, prev, cur *sample, online []int) *detect.Finding {
	ratio := 1.0
	if n.Possible > 0 {
		ratio = float64(n.Spread.Count()) / float64(n.Possible)
	}
	skewed := n.Queues >= d.opts.MinQueues && n.Possible >= 2 && ratio < d.opts.MinSpread
	d.m.observe(n, ratio, skewed)
	if prev == nil {
		return nil // a baseline scan: no deltas yet
	}
	// Per-CPU interrupts of this NIC over the interval.
	perCPU := make([]uint64, len(online))
	var total uint64
	var evidence []string
	for _, q := range n.IRQs {
		now, before := cur.counts[q.IRQ], prev.counts[q.IRQ]
		var delta uint64
		for col := range now {
			if col < len(before) && col < len(perCPU) && now[col] >= before[col] {
				perCPU[col] += now[col] - before[col]
				delta += now[col] - before[col]
			}
		}
		total += delta
		aff := n.Affinity[q.IRQ]
		evidence = append(evidence, fmt.Sprintf("irq %d %s: smp/effective affinity %s (cpu %s), +%d", q.IRQ, q.Name,
			aff.Format(len(online)), nodefs.FormatCPUList(aff.CPUs()), delta))
	}
	busiest := 0
	for col, v := range perCPU {
		if v > perCPU[busiest] {
			busiest = col
		}
	}
	cpu := busiest
	if busiest < len(online) {
		cpu = online[busiest]
	}
	secs := cur.at.Sub(prev.at).Seconds()
	vals := map[string]float64{
		"queue_irqs":    float64(len(n.IRQs)),
		"queues":        float64(n.Queues),
		"spread_cpus":   float64(n.Spread.Count()),
		"possible_cpus": float64(n.Possible),
		"spread_ratio":  ratio,
		"busiest_cpu":   float64(cpu),
	}
	if total > 0 {
		vals["busiest_share"] = float64(perCPU[busiest]) / float64(total)
	}
	if secs > 0 {
		vals["interrupts_per_second"] = float64(total) / secs
	}
	if busiest < len(cur.netRX) && busiest < len(prev.netRX) && secs > 0 && cur.netRX[busiest] >= prev.netRX[busiest] {
		vals["busiest_net_rx_per_second"] = float64(cur.netRX[busiest]-prev.netRX[busiest]) / secs
	}
	if dt := cur.cpuTotal[int64(cpu)] - prev.cpuTotal[int64(cpu)]; dt > 0 {
		vals["busiest_softirq_ratio"] = (cur.softirq[int64(cpu)] - prev.softirq[int64(cpu)]) / dt
	}
	d.m.observeLoad(n.Iface, vals)
	if !skewed {
		return nil
	}
	cpus := nodefs.FormatCPUList(n.Spread.CPUs())
	evidence = append([]string{
		fmt.Sprintf("%d queue irqs (%d queues) of %s served by cpus %s: %d of %d possible", len(n.IRQs), n.Queues, n.Iface, cpus, n.Spread.Count(), n.Possible),
		fmt.Sprintf("cpu %d took %.0f%% of %d interrupts, NET_RX %+.0f/s, softirq %.0f%% of its time",
			cpu, 100*vals["busiest_share"], total, vals["busiest_net_rx_per_second"], 100*vals["busiest_softirq_ratio"]),
	}, evidence...)
	return &detect.Finding{
		Kind:     signal.KindIRQSkew,
		Subject:  n.Iface,
		Summary:  fmt.Sprintf("%s: %d queue irqs on %d of %d cpus (%s)", n.Iface, len(n.IRQs), n.Spread.Count(), n.Possible, cpus),
		Labels:   map[string]string{"iface": n.Iface, "cpus": cpus, "busiest_cpu": strconv.Itoa(cpu)},
		Values:   vals,
		Evidence: evidence,
	}
}

type metrics struct {
	queueIRQs, spreadCPUs, possible, ratio, skewed *prometheus.GaugeVec
	share, softirq, rate                           *prometheus.GaugeVec
	affinity                                       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "remedy_irq_" + name, Help: help}, labels)
	}
	m := metrics{
		queueIRQs:  g("queue_irqs", "Queue IRQs of the NIC.", "iface"),
		spreadCPUs: g("spread_cpus", "Distinct CPUs the NIC's queue IRQs are routed to.", "iface"),
		possible:   g("possible_cpus", "CPUs that could serve the NIC's queues: min(queues, online CPUs).", "iface"),
		ratio:      g("spread_ratio", "spread_cpus / possible_cpus.", "iface"),
		skewed:     g("skewed", "1 when the NIC's queue IRQs are skewed onto too few CPUs.", "iface"),
		share:      g("busiest_cpu_share", "Share of the NIC's interrupts on its busiest CPU over the last scan.", "iface"),
		softirq:    g("busiest_cpu_softirq_ratio", "Share of the busiest CPU's time spent in softirq over the last scan.", "iface"),
		rate:       g("interrupts_per_second", "Interrupts of the NIC's queues per second over the last scan.", "iface"),
		affinity:   g("queue_affinity_info", "Where each NIC queue IRQ is routed (cpus label); always 1.", "iface", "irq", "name", "cpus"),
	}
	err := detect.Register(reg, m.queueIRQs, m.spreadCPUs, m.possible, m.ratio, m.skewed, m.share, m.softirq, m.rate, m.affinity)
	return m, err
}

func (m metrics) reset() {
	for _, v := range []*prometheus.GaugeVec{m.queueIRQs, m.spreadCPUs, m.possible, m.ratio, m.skewed, m.share, m.softirq, m.rate, m.affinity} {
		v.Reset()
	}
}

func (m metrics) observe(n NIC, ratio float64, skewed bool) {
	m.queueIRQs.WithLabelValues(n.Iface).Set(float64(len(n.IRQs)))
	m.spreadCPUs.WithLabelValues(n.Iface).Set(float64(n.Spread.Count()))
	m.possible.WithLabelValues(n.Iface).Set(float64(n.Possible))
	m.ratio.WithLabelValues(n.Iface).Set(ratio)
	v := 0.0
	if skewed {
		v = 1
	}
	m.skewed.WithLabelValues(n.Iface).Set(v)
	for _, irq := range slices.Sorted(maps.Keys(n.Affinity)) {
		m.affinity.WithLabelValues(n.Iface, strconv.Itoa(irq), nameOf(n.IRQs, irq), nodefs.FormatCPUList(n.Affinity[irq].CPUs())).Set(1)
	}
}

func (m metrics) observeLoad(iface string, vals map[string]float64) {
	m.share.WithLabelValues(iface).Set(vals["busiest_share"])
	m.softirq.WithLabelValues(iface).Set(vals["busiest_softirq_ratio"])
	m.rate.WithLabelValues(iface).Set(vals["interrupts_per_second"])
}

func nameOf(qs []nodefs.QueueIRQ, irq int) string {
	for _, q := range qs {
		if q.IRQ == irq {
			return q.Name
		}
	}
	return ""
}
