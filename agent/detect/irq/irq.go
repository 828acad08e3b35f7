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
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/nodefs"
	"github.com/remedyhq/remedy/wire/signal"
)

// ServingShare is the share of a NIC's interrupts a CPU must take to count as serving it.
const ServingShare = 0.05

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
	// RediscoverEvery is how many scans reuse one discovery of the NICs and their
	// queue IRQs (DefaultRediscoverEvery when zero); a vanished IRQ forces a new one.
	RediscoverEvery int
	// AffinityEvery: the queue IRQs' affinities are read every AffinityEvery scans
	// (DefaultAffinityEvery when zero), and at once when an IRQ was served by a CPU
	// outside its known affinity.
	AffinityEvery int
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
	fs     nodefs.FS
	r      *nodefs.Reader
	opts   Options
	online []int
	nics   []discovered
	scans  int
	prev   *sample
	spare  *sample // the sample before prev, reused to spare allocations
	perCPU []uint64
	deltas []uint64
	// affScans counts scans since affinities were last read in full.
	affScans int
	m        metrics
}

// discovered is a NIC's queue IRQs; discovery is redone every RediscoverEvery scans.
type discovered struct {
	iface       string
	irqs        []nodefs.QueueIRQ
	queues      int
	eff, smp    []string         // affinity file paths, parallel to irqs
	masks       []nodefs.CPUMask // last read affinities, storage reused across scans
	known       bool             // masks have been read
	noEffective bool             // the kernel has no effective_affinity
}

// sample is what one scan read.
type sample struct {
	at     time.Time
	counts map[int][]uint64 // NIC queue IRQ -> per-CPU count
	netRX  []uint64
	cpu    []nodefs.CPUTime
}

// Defaults of the read cadence.
const (
	// DefaultRediscoverEvery is how many scans reuse one discovery of the NICs' queue IRQs.
	DefaultRediscoverEvery = 30
	// DefaultAffinityEvery is how many scans may reuse the affinities read.
	DefaultAffinityEvery = 10
)

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
	if opts.RediscoverEvery <= 0 {
		opts.RediscoverEvery = DefaultRediscoverEvery
	}
	if opts.AffinityEvery <= 0 {
		opts.AffinityEvery = DefaultAffinityEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Detector{fs: fs, r: fs.NewReader(), opts: opts, m: m}, nil
}

// Name implements detect.Detector.
func (d *Detector) Name() string { return "irq" }

// nic is what one scan saw of one NIC.
type nic struct {
	iface    string
	queues   int
	irqs     []nodefs.QueueIRQ
	affinity []nodefs.CPUMask // parallel to irqs
	spread   nodefs.CPUMask   // union of the affinities
	possible int
}

// Scan implements detect.Detector.
func (d *Detector) Scan(ctx context.Context) ([]detect.Finding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := d.opts.Now()
	if d.scans%d.opts.RediscoverEvery == 0 {
		if err := d.discover(); err != nil {
			return nil, err
		}
	}
	d.scans++
	cur := d.spare
	if cur == nil {
		cur = &sample{counts: map[int][]uint64{}}
	}
	cur.at = now
	wanted := 0
	for _, n := range d.nics {
		for _, q := range n.irqs {
			if _, ok := cur.counts[q.IRQ]; !ok {
				cur.counts[q.IRQ] = nil
			}
			wanted++
		}
	}
	if wanted > 0 {
		found, err := d.r.InterruptCounts(cur.counts)
		if err != nil {
			return nil, fmt.Errorf("irq: %w", err)
		}
		if found < wanted {
			d.scans = 0 // an IRQ went away (channels changed): rediscover next scan
		}
		if cur.netRX, err = d.r.NetRX(cur.netRX); err != nil {
			return nil, fmt.Errorf("irq: %w", err)
		}
		if cur.cpu, err = d.r.CPUTimes(cur.cpu); err != nil {
			return nil, fmt.Errorf("irq: %w", err)
		}
	}
	reread := d.affScans%d.opts.AffinityEvery == 0 || d.landedElsewhere(cur)
	d.affScans++
	nics, err := d.affinities(reread)
	if err != nil {
		return nil, err
	}
	prev := d.prev
	d.prev, d.spare = cur, prev
	d.m.begin()
	var out []detect.Finding
	for _, n := range nics {
		if f := d.judge(n, prev, cur, d.online); f != nil {
			out = append(out, *f)
		}
	}
	d.m.end()
	return out, nil
}

// discover finds the online CPUs and the queue IRQs of every NIC.
func (d *Detector) discover() error {
	online, err := d.fs.OnlineCPUs()
	if err != nil {
		return fmt.Errorf("irq: %w", err)
	}
	names := d.opts.Interfaces
	if len(names) == 0 {
		if names, err = d.fs.NICs(); err != nil {
			return fmt.Errorf("irq: %w", err)
		}
	}
	ints, err := d.fs.Interrupts()
	if err != nil {
		return fmt.Errorf("irq: %w", err)
	}
	var nics []discovered
	for _, name := range names {
		qs, err := d.fs.NICQueueIRQs(name, ints)
		if errors.Is(err, nodefs.ErrNoDevice) || errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("irq: %w", err)
		}
		if len(qs) == 0 {
			continue
		}
		dn := discovered{iface: name, irqs: qs, queues: queues(qs), masks: make([]nodefs.CPUMask, len(qs))}
		for _, q := range qs {
			dn.eff = append(dn.eff, d.fs.IRQEffectiveAffinityPath(q.IRQ))
			dn.smp = append(dn.smp, d.fs.IRQAffinityPath(q.IRQ))
		}
		nics = append(nics, dn)
	}
	if !slices.Equal(online, d.online) || !sameIRQs(nics, d.nics) {
		// Samples of another set of IRQs or CPUs cannot be compared: start over.
		d.prev, d.spare = nil, nil
	}
	d.online, d.nics = online, nics
	return nil
}

func sameIRQs(a, b []discovered) bool {
	return slices.EqualFunc(a, b, func(x, y discovered) bool {
		return x.iface == y.iface && slices.Equal(x.irqs, y.irqs)
	})
}

// affinities reads where each queue IRQ is routed now: its effective affinity where
// the kernel reports one, else its smp_affinity.
func (d *Detector) affinities(reread bool) ([]nic, error) {
	out := make([]nic, 0, len(d.nics))
	for i := range d.nics {
		dn := &d.nics[i]
		n := nic{iface: dn.iface, irqs: dn.irqs, queues: dn.queues, affinity: dn.masks}
		reread := reread || !dn.known
		dn.known = true
		for j := range dn.irqs {
			m := dn.masks[j]
			if !reread {
				n.spread = orMask(n.spread, m)
				continue
			}
			err := os.ErrNotExist
			if !dn.noEffective {
				m, err = d.r.Mask(dn.eff[j], dn.masks[j])
				if errors.Is(err, os.ErrNotExist) {
					dn.noEffective = true
				}
			}
			if errors.Is(err, os.ErrNotExist) || (err == nil && m.Count() == 0) {
				m, err = d.r.Mask(dn.smp[j], dn.masks[j])
			}
			if errors.Is(err, os.ErrNotExist) {
				d.scans = 0 // the IRQ went away between reads: rediscover
				m = nil
			} else if err != nil {
				return nil, fmt.Errorf("irq: %w", err)
			}
			dn.masks[j] = m
			n.spread = orMask(n.spread, m)
		}
		n.possible = min(n.queues, len(d.online))
		out = append(out, n)
	}
	return out, nil
}

func orMask(dst, m nodefs.CPUMask) nodefs.CPUMask {
	for w, bits := range m {
		for len(dst) <= w {
			dst = append(dst, 0)
		}
		dst[w] |= bits
	}
	return dst
}

// landedElsewhere reports whether, since the previous scan, a queue IRQ was served by a
// CPU outside its known affinity: the affinity changed (it takes effect at the next
// interrupt), so it must be read again. Without that, affinities are read every
// AffinityEvery scans: one file per IRQ is most of this detector's cost.
func (d *Detector) landedElsewhere(cur *sample) bool {
	if d.prev == nil {
		return true
	}
	for _, dn := range d.nics {
		if !dn.known {
			return true
		}
		for j, q := range dn.irqs {
			now, before := cur.counts[q.IRQ], d.prev.counts[q.IRQ]
			for col := range min(len(now), len(before), len(d.online)) {
				if now[col] > before[col] && !dn.masks[j].Has(d.online[col]) {
					return true
				}
			}
		}
	}
	return false
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
func (d *Detector) judge(n nic, prev, cur *sample, online []int) *detect.Finding {
	spread := n.spread.Count()
	ratio := 1.0
	if n.possible > 0 {
		ratio = float64(spread) / float64(n.possible)
	}
	skewed := n.queues >= d.opts.MinQueues && n.possible >= 2 && ratio < d.opts.MinSpread
	d.m.observe(n, spread, ratio, skewed)
	if prev == nil {
		return nil // a baseline scan: no deltas yet
	}
	// Per-CPU interrupts of this NIC over the interval, by /proc/interrupts column.
	perCPU := d.perCPU[:0]
	for range online {
		perCPU = append(perCPU, 0)
	}
	d.perCPU = perCPU
	var total uint64
	deltas := d.deltas[:0]
	for _, q := range n.irqs {
		now, before := cur.counts[q.IRQ], prev.counts[q.IRQ]
		var delta uint64
		for col := range now {
			if col < len(before) && col < len(perCPU) && now[col] >= before[col] {
				perCPU[col] += now[col] - before[col]
				delta += now[col] - before[col]
			}
		}
		total += delta
		deltas = append(deltas, delta)
	}
	d.deltas = deltas
	// Serving CPUs are those that took a real share of the interrupts; where the kernel
	// has no effective_affinity, a wide smp_affinity can hide that one CPU takes all.
	busiest, serving := 0, 0
	for col, v := range perCPU {
		if v > perCPU[busiest] {
			busiest = col
		}
		if total > 0 && float64(v) >= ServingShare*float64(total) {
			serving++
		}
	}
	cpu := busiest
	if busiest < len(online) {
		cpu = online[busiest]
	}
	secs := cur.at.Sub(prev.at).Seconds()
	var share, rate, netRX, softirq float64
	if total > 0 {
		share = float64(perCPU[busiest]) / float64(total)
	}
	if secs > 0 {
		rate = float64(total) / secs
		if busiest < len(cur.netRX) && busiest < len(prev.netRX) && cur.netRX[busiest] >= prev.netRX[busiest] {
			netRX = float64(cur.netRX[busiest]-prev.netRX[busiest]) / secs
		}
	}
	if cpu < len(cur.cpu) && cpu < len(prev.cpu) && cur.cpu[cpu].Total > prev.cpu[cpu].Total && cur.cpu[cpu].SoftIRQ >= prev.cpu[cpu].SoftIRQ {
		softirq = float64(cur.cpu[cpu].SoftIRQ-prev.cpu[cpu].SoftIRQ) / float64(cur.cpu[cpu].Total-prev.cpu[cpu].Total)
	}
	d.m.observeLoad(n.iface, share, softirq, rate, serving)
	if !skewed {
		return nil
	}
	ncpu := len(online)
	if len(online) > 0 {
		ncpu = online[len(online)-1] + 1
	}
	cpus := nodefs.FormatCPUList(n.spread.CPUs())
	load := fmt.Sprintf("cpu %d took %.0f%% of %d interrupts, NET_RX %+.0f/s, softirq %.0f%% of its time", cpu, 100*share, total, netRX, 100*softirq)
	if total == 0 {
		load = "no interrupts on these queues over the interval: the skew costs nothing until traffic comes"
	}
	evidence := []string{
		fmt.Sprintf("%d queue irqs (%d queues) of %s served by cpus %s: %d of %d possible", len(n.irqs), n.queues, n.iface, cpus, spread, n.possible),
		load,
	}
	for i, q := range n.irqs {
		aff := n.affinity[i]
		evidence = append(evidence, fmt.Sprintf("irq %d %s: smp/effective affinity %s (cpu %s), +%d", q.IRQ, q.Name,
			aff.Format(ncpu), nodefs.FormatCPUList(aff.CPUs()), deltas[i]))
	}
	return &detect.Finding{
		Kind:    signal.KindIRQSkew,
		Subject: n.iface,
		Summary: fmt.Sprintf("%s: %d queue irqs on %d of %d cpus (%s)", n.iface, len(n.irqs), spread, n.possible, cpus),
		Labels:  map[string]string{"iface": n.iface, "cpus": cpus, "busiest_cpu": strconv.Itoa(cpu)},
		Values: map[string]float64{
			"queue_irqs": float64(len(n.irqs)), "queues": float64(n.queues), "spread_cpus": float64(spread),
			"possible_cpus": float64(n.possible), "spread_ratio": ratio, "busiest_cpu": float64(cpu),
			"busiest_share": share, "interrupts_per_second": rate, "busiest_net_rx_per_second": netRX,
			"busiest_softirq_ratio": softirq, "serving_cpus": float64(serving),
		},
		Evidence: evidence,
	}
}

// metrics are updated in place scan after scan; series of NICs or IRQs that went away
// (or whose routing changed) are deleted rather than all reset, which would re-create
// every series each scan.
type metrics struct {
	queueIRQs, spreadCPUs, possible, ratio, skewed *prometheus.GaugeVec
	share, softirq, rate, serving                  *prometheus.GaugeVec
	affinity                                       *prometheus.GaugeVec
	seen, seenNow                                  map[string]bool      // ifaces
	affLabels                                      map[string]affSeries // by iface/irq
	affNow                                         map[string]bool
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
		serving:    g("serving_cpus", "CPUs that took at least 5% of the NIC's queue interrupts over the last scan.", "iface"),
		affinity:   g("queue_affinity_info", "Where each NIC queue IRQ is routed (cpus label); always 1.", "iface", "irq", "name", "cpus"),
		seen:       map[string]bool{}, seenNow: map[string]bool{},
		affLabels: map[string]affSeries{}, affNow: map[string]bool{},
	}
	err := detect.Register(reg, m.queueIRQs, m.spreadCPUs, m.possible, m.ratio, m.skewed, m.share, m.softirq, m.rate, m.serving, m.affinity)
	return m, err
}

func (m metrics) perIface() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{m.queueIRQs, m.spreadCPUs, m.possible, m.ratio, m.skewed, m.share, m.softirq, m.rate, m.serving}
}

// begin starts a scan's updates; end deletes what the scan did not update.
func (m metrics) begin() {
	clear(m.seenNow)
	clear(m.affNow)
}

func (m metrics) end() {
	for iface := range m.seen {
		if !m.seenNow[iface] {
			for _, v := range m.perIface() {
				v.DeleteLabelValues(iface)
			}
			delete(m.seen, iface)
		}
	}
	for k, a := range m.affLabels {
		if !m.affNow[k] {
			m.affinity.DeleteLabelValues(a.labels[:]...)
			delete(m.affLabels, k)
		}
	}
}

func (m metrics) observe(n nic, spread int, ratio float64, skewed bool) {
	m.seen[n.iface], m.seenNow[n.iface] = true, true
	m.queueIRQs.WithLabelValues(n.iface).Set(float64(len(n.irqs)))
	m.spreadCPUs.WithLabelValues(n.iface).Set(float64(spread))
	m.possible.WithLabelValues(n.iface).Set(float64(n.possible))
	m.ratio.WithLabelValues(n.iface).Set(ratio)
	v := 0.0
	if skewed {
		v = 1
	}
	m.skewed.WithLabelValues(n.iface).Set(v)
	for i, q := range n.irqs {
		key := n.iface + "/" + strconv.Itoa(q.IRQ)
		m.affNow[key] = true
		old, ok := m.affLabels[key]
		if ok && n.affinity[i].Equal(old.mask) {
			continue // unchanged: the series is already 1
		}
		if ok {
			m.affinity.DeleteLabelValues(old.labels[:]...)
		}
		a := affSeries{
			labels: [4]string{n.iface, strconv.Itoa(q.IRQ), q.Name, nodefs.FormatCPUList(n.affinity[i].CPUs())},
			mask:   slices.Clone(n.affinity[i]),
		}
		m.affLabels[key] = a
		m.affinity.WithLabelValues(a.labels[:]...).Set(1)
	}
}

type affSeries struct {
	labels [4]string
	mask   nodefs.CPUMask
}

func (m metrics) observeLoad(iface string, share, softirq, rate float64, serving int) {
	m.serving.WithLabelValues(iface).Set(float64(serving))
	m.share.WithLabelValues(iface).Set(share)
	m.softirq.WithLabelValues(iface).Set(softirq)
	m.rate.WithLabelValues(iface).Set(rate)
}
