// Package drops detects packet drops and tells their causes apart, because each has its
// own fix: a NIC ring that overflows (rx_missed_errors, rx_fifo_errors and the driver's
// own counters: bigger rings, more queues), a per-CPU backlog that overflows
// (/proc/net/softnet_stat dropped: netdev_max_backlog, RPS) and a NAPI budget that runs
// out (softnet_stat time_squeeze: netdev_budget), besides the stack's own drops
// (rx_dropped, tx_dropped). It works on rates between scans, never on totals.
package drops

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

// Causes of drops; each is a finding's cause label and its subject's suffix.
const (
	CauseRing    = "ring_overflow"    // the NIC had no descriptor for a packet
	CauseBacklog = "backlog_overflow" // a CPU's input backlog was full
	CauseBudget  = "budget_exhausted" // NAPI polling ran out of budget or time
	CauseStack   = "dropped"          // the stack or driver dropped it (rx/tx_dropped)
)

// Defaults of Options.
const (
	DefaultMinDropRate    = 1  // drops per second
	DefaultMinSqueezeRate = 10 // time_squeeze per second; a few are normal under load
)

// StatsFunc reads a driver's own counters (ethtool -S).
type StatsFunc func(iface string) (map[string]uint64, error)

// Options configure the detector.
type Options struct {
	// Interfaces lists the interfaces to watch; empty means every interface backed by
	// a device.
	Interfaces []string
	// MinDropRate is the rate (per second) at which a drop counter becomes a finding.
	MinDropRate float64
	// MinSqueezeRate is the time_squeeze rate (per second) that becomes a finding.
	MinSqueezeRate float64
	// DriverStats reads driver counters; nil reads none. EthtoolStats gives the real one.
	DriverStats StatsFunc
	// Registerer registers the remedy_net_drops_* metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// The /sys/class/net/<iface>/statistics counters read, by cause.
var (
	ringStats  = []string{"rx_missed_errors", "rx_fifo_errors"}
	stackStats = []string{"rx_dropped", "tx_dropped"}
)

// driverCause classifies a driver counter name; "" for counters that are not drops.
func driverCause(name string) string {
	n := strings.ToLower(name)
	for _, s := range []string{"missed", "fifo", "no_buf", "nobuf", "out_of_buffer", "overrun", "discards_phy", "rx_buff_alloc_err"} {
		if strings.Contains(n, s) {
			return CauseRing
		}
	}
	if strings.Contains(n, "drop") || strings.Contains(n, "discard") {
		return CauseStack
	}
	return ""
}

// Detector is the packet drop detector.
type Detector struct {
	fs          nodefs.FS
	opts        Options
	prev        *sample
	unsupported map[string]bool // interfaces whose driver has no stats
	m           metrics
}

type sample struct {
	at      time.Time
	ifaces  map[string]map[string]uint64 // iface -> counter -> value
	softnet map[uint32][2]uint32         // cpu -> dropped, time_squeeze
}

// New builds the detector over fs.
func New(fs nodefs.FS, opts Options) (*Detector, error) {
	if opts.MinDropRate < 0 || opts.MinSqueezeRate < 0 {
		return nil, errors.New("drops: negative minimum rate")
	}
	if opts.MinDropRate == 0 {
		opts.MinDropRate = DefaultMinDropRate
	}
	if opts.MinSqueezeRate == 0 {
		opts.MinSqueezeRate = DefaultMinSqueezeRate
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Detector{fs: fs, opts: opts, unsupported: map[string]bool{}, m: m}, nil
}

// Name implements detect.Detector.
func (d *Detector) Name() string { return "drops" }

// Scan implements detect.Detector.
func (d *Detector) Scan(ctx context.Context) ([]detect.Finding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := d.read()
	if err != nil {
		return nil, err
	}
	prev := d.prev
	d.prev = cur
	if prev == nil {
		return nil, nil
	}
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return nil, nil
	}
	d.m.rate.Reset()
	var out []detect.Finding
	for _, iface := range slices.Sorted(maps.Keys(cur.ifaces)) {
		out = append(out, d.judgeIface(iface, prev.ifaces[iface], cur.ifaces[iface], secs)...)
	}
	out = append(out, d.judgeSoftnet(prev.softnet, cur.softnet, secs)...)
	return out, nil
}

func (d *Detector) read() (*sample, error) {
	s := &sample{at: d.opts.Now(), ifaces: map[string]map[string]uint64{}, softnet: map[uint32][2]uint32{}}
	names := d.opts.Interfaces
	if len(names) == 0 {
		var err error
		if names, err = d.fs.NICs(); err != nil {
			return nil, fmt.Errorf("drops: %w", err)
		}
	}
	for _, iface := range names {
		c := map[string]uint64{}
		for _, name := range append(slices.Clip(ringStats), stackStats...) {
			v, err := readCounter(d.fs.SysPath("class", "net", iface, "statistics", name))
			if errors.Is(err, os.ErrNotExist) {
				continue // the interface went away, or the counter is not kept
			}
			if err != nil {
				return nil, fmt.Errorf("drops: %s: %w", iface, err)
			}
			c[name] = v
		}
		if len(c) == 0 {
			continue
		}
		if d.opts.DriverStats != nil && !d.unsupported[iface] {
			stats, err := d.opts.DriverStats(iface)
			if err != nil {
				d.unsupported[iface] = true // ask once: no driver stats, or no such device here
			}
			for k, v := range stats {
				if driverCause(k) != "" {
					c["driver:"+k] = v
				}
			}
		}
		s.ifaces[iface] = c
	}
	sn, err := d.fs.Proc().NetSoftnetStat()
	if err != nil {
		return nil, fmt.Errorf("drops: read softnet_stat: %w", err)
	}
	for _, st := range sn {
		s.softnet[st.Index] = [2]uint32{st.Dropped, st.TimeSqueezed}
	}
	return s, nil
}

// readCounter reads a one-number sysfs file.
func readCounter(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

func (d *Detector) judgeIface(iface string, prev, cur map[string]uint64, secs float64) []detect.Finding {
	byCause := map[string]uint64{}
	evidence := map[string][]string{}
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		before, ok := prev[k]
		if !ok || cur[k] < before {
			continue // new counter or reset: no delta this scan
		}
		delta := cur[k] - before
		cause := CauseStack
		switch {
		case slices.Contains(ringStats, k):
			cause = CauseRing
		case strings.HasPrefix(k, "driver:"):
			cause = driverCause(strings.TrimPrefix(k, "driver:"))
		}
		if delta > 0 {
			byCause[cause] += delta
			evidence[cause] = append(evidence[cause], fmt.Sprintf("%s %s +%d (%d -> %d)", iface, k, delta, before, cur[k]))
		}
	}
	var out []detect.Finding
	for _, cause := range []string{CauseRing, CauseStack} {
		rate := float64(byCause[cause]) / secs
		d.m.rate.WithLabelValues(iface, cause).Set(rate)
		if rate < d.opts.MinDropRate {
			continue
		}
		out = append(out, detect.Finding{
			Kind:     signal.KindPacketDrops,
			Subject:  iface + ":" + cause,
			Summary:  fmt.Sprintf("%s: %.0f drops/s (%s)", iface, rate, cause),
			Labels:   map[string]string{"iface": iface, "cause": cause},
			Values:   map[string]float64{"drops_per_second": rate, "drops": float64(byCause[cause]), "interval_seconds": secs},
			Evidence: evidence[cause],
		})
	}
	return out
}

func (d *Detector) judgeSoftnet(prev, cur map[uint32][2]uint32, secs float64) []detect.Finding {
	var dropped, squeezed uint64
	var evDrop, evSqueeze []string
	for _, cpu := range slices.Sorted(maps.Keys(cur)) {
		before, ok := prev[cpu]
		if !ok {
			continue
		}
		// The counters are 32-bit and wrap; unsigned subtraction handles one wrap.
		dd, ds := cur[cpu][0]-before[0], cur[cpu][1]-before[1]
		dropped += uint64(dd)
		squeezed += uint64(ds)
		if dd > 0 {
			evDrop = append(evDrop, fmt.Sprintf("cpu %d softnet dropped +%d", cpu, dd))
		}
		if ds > 0 {
			evSqueeze = append(evSqueeze, fmt.Sprintf("cpu %d softnet time_squeeze +%d", cpu, ds))
		}
	}
	dropRate, squeezeRate := float64(dropped)/secs, float64(squeezed)/secs
	d.m.softnet.WithLabelValues(CauseBacklog).Set(dropRate)
	d.m.softnet.WithLabelValues(CauseBudget).Set(squeezeRate)
	var out []detect.Finding
	if dropRate >= d.opts.MinDropRate {
		out = append(out, detect.Finding{
			Kind: signal.KindPacketDrops, Subject: "softnet:" + CauseBacklog,
			Summary:  fmt.Sprintf("softnet backlog dropped %.0f packets/s", dropRate),
			Labels:   map[string]string{"cause": CauseBacklog},
			Values:   map[string]float64{"drops_per_second": dropRate, "drops": float64(dropped), "interval_seconds": secs},
			Evidence: evDrop,
		})
	}
	if squeezeRate >= d.opts.MinSqueezeRate {
		out = append(out, detect.Finding{
			Kind: signal.KindPacketDrops, Subject: "softnet:" + CauseBudget,
			Summary:  fmt.Sprintf("softnet ran out of budget %.0f times/s", squeezeRate),
			Labels:   map[string]string{"cause": CauseBudget},
			Values:   map[string]float64{"squeezes_per_second": squeezeRate, "squeezes": float64(squeezed), "interval_seconds": secs},
			Evidence: evSqueeze,
		})
	}
	return out
}

type metrics struct {
	rate, softnet *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_net_drops_per_second",
			Help: "Packet drops per second of an interface over the last scan, by cause (ring_overflow, dropped).",
		}, []string{"iface", "cause"}),
		softnet: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_net_drops_softnet_per_second",
			Help: "Softnet events per second over the last scan, summed over CPUs: backlog_overflow (dropped) and budget_exhausted (time_squeeze).",
		}, []string{"cause"}),
	}
	return m, detect.Register(reg, m.rate, m.softnet)
}
