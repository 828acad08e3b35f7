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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/nodefs"
	"github.com/remedyhq/remedy/wire/signal"
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
	r           *nodefs.Reader
	opts        Options
	ifaces      []string // discovered every RediscoverEvery scans
	scans       int
	prev        *sample
	unsupported map[string]bool // interfaces whose driver has no stats
	m           metrics
}

type sample struct {
	at      time.Time
	ifaces  map[string]map[string]uint64 // iface -> counter -> value
	softnet []nodefs.Softnet
}

// DefaultRediscoverEvery is how many scans reuse one listing of the interfaces.
const DefaultRediscoverEvery = 30

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
	return &Detector{fs: fs, r: fs.NewReader(), opts: opts, unsupported: map[string]bool{}, m: m}, nil
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
	var out []detect.Finding
	for _, iface := range slices.Sorted(maps.Keys(cur.ifaces)) {
		out = append(out, d.judgeIface(iface, prev.ifaces[iface], cur.ifaces[iface], secs)...)
	}
	out = append(out, d.judgeSoftnet(prev.softnet, cur.softnet, secs)...)
	d.m.rate.Sweep()
	return out, nil
}

func (d *Detector) read() (*sample, error) {
	s := &sample{at: d.opts.Now(), ifaces: make(map[string]map[string]uint64, len(d.ifaces))}
	if d.scans%DefaultRediscoverEvery == 0 {
		d.ifaces = d.opts.Interfaces
		if len(d.ifaces) == 0 {
			var err error
			if d.ifaces, err = d.fs.NICs(); err != nil {
				return nil, fmt.Errorf("drops: %w", err)
			}
		}
	}
	d.scans++
	for _, iface := range d.ifaces {
		c := make(map[string]uint64, len(ringStats)+len(stackStats))
		for _, name := range append(slices.Clip(ringStats), stackStats...) {
			v, err := d.r.Uint(d.fs.SysPath("class", "net", iface, "statistics", name))
			if errors.Is(err, os.ErrNotExist) {
				continue // the interface went away, or the counter is not kept
			}
			if err != nil {
				return nil, fmt.Errorf("drops: %s: %w", iface, err)
			}
			c[name] = v
		}
		if len(c) == 0 {
			d.scans = 0 // the interface went away: list them again next scan
			continue
		}
		if d.opts.DriverStats != nil && !d.unsupported[iface] {
			stats, err := d.opts.DriverStats(iface)
			if err != nil {
				d.unsupported[iface] = true // ask once: no driver stats, or no such device here
			}
			for k, v := range stats {
				// Many drivers repeat the generic counters (rx_dropped, rx_missed_errors)
				// in ethtool -S; counting them twice would double the rates.
				if driverCause(k) != "" && !slices.Contains(ringStats, k) && !slices.Contains(stackStats, k) {
					c["driver:"+k] = v
				}
			}
		}
		s.ifaces[iface] = c
	}
	var err error
	if s.softnet, err = d.r.Softnet(nil); err != nil {
		return nil, fmt.Errorf("drops: %w", err)
	}
	return s, nil
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
		d.m.rate.Set(rate, iface, cause)
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

func (d *Detector) judgeSoftnet(prev, cur []nodefs.Softnet, secs float64) []detect.Finding {
	var dropped, squeezed uint64
	var evDrop, evSqueeze []string
	for i, c := range cur {
		// Lines are per CPU in CPU order; match by CPU in case one went offline.
		j := i
		if j >= len(prev) || prev[j].CPU != c.CPU {
			j = slices.IndexFunc(prev, func(p nodefs.Softnet) bool { return p.CPU == c.CPU })
			if j < 0 {
				continue
			}
		}
		// The counters are 32-bit and wrap; unsigned subtraction handles one wrap.
		dd, ds := c.Dropped-prev[j].Dropped, c.TimeSqueezed-prev[j].TimeSqueezed
		dropped += uint64(dd)
		squeezed += uint64(ds)
		if dd > 0 {
			evDrop = append(evDrop, fmt.Sprintf("cpu %d softnet dropped +%d", c.CPU, dd))
		}
		if ds > 0 {
			evSqueeze = append(evSqueeze, fmt.Sprintf("cpu %d softnet time_squeeze +%d", c.CPU, ds))
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
	rate    *detect.Gauges
	softnet *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	rate := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "remedy_net_drops_per_second",
		Help: "Packet drops per second of an interface over the last scan, by cause (ring_overflow, dropped).",
	}, []string{"iface", "cause"})
	m := metrics{
		rate: detect.NewGauges(rate),
		softnet: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_net_drops_softnet_per_second",
			Help: "Softnet events per second over the last scan, summed over CPUs: backlog_overflow (dropped) and budget_exhausted (time_squeeze).",
		}, []string{"cause"}),
	}
	return m, detect.Register(reg, rate, m.softnet)
}
