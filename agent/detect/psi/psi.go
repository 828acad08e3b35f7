// Package psi detects resource starvation from pressure stall information: the node's
// /proc/pressure/{cpu,memory,io} and each pod's cgroup v2 *.pressure. It measures the
// share of the scan interval that tasks were stalled (from the totals, not the kernel's
// averages) and tells CFS-quota throttling apart from contention, because a pod throttled
// at its CPU limit shows CPU pressure too: raising the limit fixes one, moving load
// fixes the other.
package psi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/nodefs"
	"github.com/remedyhq/remedy/wire/signal"
)

// Resources are the pressure files read.
var Resources = []string{"cpu", "memory", "io"}

// Threshold is the share of the interval (percent) tasks may stall before a finding;
// zero disables a line.
type Threshold struct {
	Some float64 `json:"some"`
	Full float64 `json:"full"`
}

// DefaultThresholds apply to resources Options.Thresholds leaves out.
var DefaultThresholds = map[string]Threshold{
	"cpu":    {Some: 20},
	"memory": {Some: 10, Full: 5},
	"io":     {Some: 20, Full: 10},
}

// DefaultCgroupGlobs find pod cgroups for the systemd and the cgroupfs drivers.
var DefaultCgroupGlobs = []string{
	"kubepods.slice/*pod*.slice",
	"kubepods.slice/*/*pod*.slice",
	"kubepods/pod*",
	"kubepods/*/pod*",
}

// DefaultThrottleShare is the share of a CPU stall that throttling must explain for the
// finding's cause to be "throttling".
const DefaultThrottleShare = 0.5

// Defaults of the pod read cadence.
const (
	DefaultPodEvery        = 10
	DefaultRediscoverEvery = 6
)

// Causes of CPU pressure.
const (
	CauseContention = "contention"
	CauseThrottling = "throttling"
)

// Options configure the detector.
type Options struct {
	Thresholds map[string]Threshold
	// CgroupRoot is the cgroup v2 mount below the host root ("" finds it:
	// sys/fs/cgroup, else sys/fs/cgroup/unified on a hybrid host); "-" reads no cgroups.
	CgroupRoot string
	// CgroupGlobs select the pod cgroups below CgroupRoot; DefaultCgroupGlobs when nil.
	CgroupGlobs []string
	// PodEvery: the pods are read every PodEvery scans (DefaultPodEvery when zero),
	// their findings standing in between. A node runs up to 110 pods of four files
	// each; reading them every second would cost more than the rest of the agent.
	PodEvery int
	// RediscoverEvery is how many pod reads reuse one search for pod cgroups
	// (DefaultRediscoverEvery when zero); a pod that went away forces a new one.
	RediscoverEvery int
	// ThrottleShare: DefaultThrottleShare when zero.
	ThrottleShare float64
	// Registerer registers the remedy_psi_* metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Detector is the PSI detector.
type Detector struct {
	fs   nodefs.FS
	r    *nodefs.Reader
	opts Options
	pods []string // cgroups below cgroot, found every RediscoverEvery pod reads
	// scans counts pod reads since the last discovery, ticks all scans.
	scans, ticks int
	// The node is read every scan, the pods every PodEvery scans; their findings stand
	// until the next pod read.
	prevNode, prevPods *sample
	podFindings        []detect.Finding
	podThrottled       float64
	cgroot             string
	m                  metrics
}

type sample struct {
	at     time.Time
	groups map[string]*group // "" for the node, else the cgroup path below the root
}

type group struct {
	pressure map[string]Pressure
	cpu      *CPUStat
}

// New builds the detector over fs.
func New(fs nodefs.FS, opts Options) (*Detector, error) {
	th := map[string]Threshold{}
	for r, t := range DefaultThresholds {
		th[r] = t
	}
	for r, t := range opts.Thresholds {
		if !slices.Contains(Resources, r) {
			return nil, fmt.Errorf("psi: unknown resource %q", r)
		}
		if t.Some < 0 || t.Some > 100 || t.Full < 0 || t.Full > 100 {
			return nil, fmt.Errorf("psi: %s threshold not in [0,100]", r)
		}
		th[r] = t
	}
	opts.Thresholds = th
	if opts.CgroupGlobs == nil {
		opts.CgroupGlobs = DefaultCgroupGlobs
	}
	if opts.ThrottleShare == 0 {
		opts.ThrottleShare = DefaultThrottleShare
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	if opts.RediscoverEvery <= 0 {
		opts.RediscoverEvery = DefaultRediscoverEvery
	}
	if opts.PodEvery <= 0 {
		opts.PodEvery = DefaultPodEvery
	}
	d := &Detector{fs: fs, r: fs.NewReader(), opts: opts, m: m}
	switch opts.CgroupRoot {
	case "-":
	case "":
		for _, p := range []string{fs.SysPath("fs", "cgroup"), fs.SysPath("fs", "cgroup", "unified")} {
			if _, err := os.Stat(filepath.Join(p, "cgroup.controllers")); err == nil {
				d.cgroot = p
				break
			}
		}
	default:
		d.cgroot = filepath.Join(fs.Root(), opts.CgroupRoot)
	}
	return d, nil
}

// Name implements detect.Detector.
func (d *Detector) Name() string { return "psi" }

// Scan implements detect.Detector.
func (d *Detector) Scan(ctx context.Context) ([]detect.Finding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := d.opts.Now()
	node, err := d.readNode(now)
	if err != nil {
		return nil, err
	}
	podsRead := d.cgroot != "" && d.ticks%d.opts.PodEvery == 0
	d.ticks++
	if podsRead {
		pods, err := d.readPods(now)
		if err != nil {
			return nil, err
		}
		if d.prevPods != nil {
			d.podFindings, d.podThrottled = d.judgeGroups(pods, d.prevPods, 0)
		}
		d.prevPods = pods
	}
	prev := d.prevNode
	d.prevNode = node
	if prev == nil {
		return nil, nil
	}
	nodeFindings, _ := d.judgeGroups(node, prev, d.podThrottled)
	if podsRead || d.cgroot == "" {
		// Pod series are only set on the scans that read the pods.
		d.m.sweep()
	}
	return append(slices.Clip(d.podFindings), nodeFindings...), nil
}

// judgeGroups compares every group of cur with prev and returns the findings and the
// groups' summed throttling (percent of the interval).
func (d *Detector) judgeGroups(cur, prev *sample, podThrottled float64) ([]detect.Finding, float64) {
	us := float64(cur.at.Sub(prev.at).Microseconds())
	if us <= 0 {
		return nil, 0
	}
	var out []detect.Finding
	var sum float64
	for _, path := range slices.Sorted(maps.Keys(cur.groups)) {
		g, pg := cur.groups[path], prev.groups[path]
		if pg == nil {
			continue // a new pod: baseline
		}
		throttled := 0.0
		if g.cpu != nil && pg.cpu != nil && g.cpu.ThrottledUsec >= pg.cpu.ThrottledUsec {
			throttled = 100 * float64(g.cpu.ThrottledUsec-pg.cpu.ThrottledUsec) / us
			sum += throttled
			d.m.throttled.Set(throttled, podUID(path))
		}
		for _, r := range Resources {
			p, pp := g.pressure[r], pg.pressure[r]
			if p.Some == nil || pp.Some == nil {
				continue
			}
			if f := d.judge(path, r, p, pp, us, throttled, podThrottled, g, pg); f != nil {
				out = append(out, *f)
			}
		}
	}
	return out, sum
}

func stall(cur, prev *Line, us float64) (float64, bool) {
	if cur == nil || prev == nil || cur.Total < prev.Total {
		return 0, false
	}
	return min(100, 100*float64(cur.Total-prev.Total)/us), true
}

// judge measures one resource of one group; for the node, podThrottled is the pods'
// throttling summed over the interval.
func (d *Detector) judge(path, r string, p, pp Pressure, us, throttled, podThrottled float64, g, pg *group) *detect.Finding {
	pod := podUID(path)
	some, _ := stall(p.Some, pp.Some, us)
	full, hasFull := stall(p.Full, pp.Full, us)
	d.m.stalled.Set(some, pod, r, "some")
	d.m.avg10.Set(p.Some.Avg10, pod, r, "some")
	if hasFull {
		d.m.stalled.Set(full, pod, r, "full")
		d.m.avg10.Set(p.Full.Avg10, pod, r, "full")
	}
	th := d.opts.Thresholds[r]
	line := ""
	switch {
	case th.Full > 0 && hasFull && full >= th.Full:
		line = "full"
	case th.Some > 0 && some >= th.Some:
		line = "some"
	default:
		return nil
	}
	scope, subject := "pod", "pod:"+pod+":"+r
	if path == "" {
		scope, subject = "node", "node:"+r
	}
	// Only a pod's own cpu.stat can explain its CPU stall as throttling; the node's
	// pressure carries the pods' throttling as evidence but stays contention.
	cause := CauseContention
	if r == "cpu" && path != "" && some > 0 && throttled >= d.opts.ThrottleShare*some {
		cause = CauseThrottling
	}
	vals := map[string]float64{"some_percent": some, "some_avg10": p.Some.Avg10, "some_avg60": p.Some.Avg60}
	if hasFull {
		vals["full_percent"] = full
		vals["full_avg10"] = p.Full.Avg10
	}
	ev := []string{fmt.Sprintf("%s %s some: stalled %.1f%% of the interval (avg10 %.2f)", scope, r, some, p.Some.Avg10)}
	if hasFull {
		ev = append(ev, fmt.Sprintf("%s %s full: stalled %.1f%% of the interval (avg10 %.2f)", scope, r, full, p.Full.Avg10))
	}
	if r == "cpu" {
		if path == "" && d.cgroot != "" {
			vals["pods_throttled_percent"] = podThrottled
			ev = append(ev, fmt.Sprintf("%d pods throttled %.1f%% of the interval in total", len(d.pods), podThrottled))
		} else if g.cpu != nil && pg.cpu != nil {
			vals["throttled_percent"] = throttled
			vals["nr_throttled"] = float64(g.cpu.NrThrottled - min(g.cpu.NrThrottled, pg.cpu.NrThrottled))
			vals["nr_periods"] = float64(g.cpu.NrPeriods - min(g.cpu.NrPeriods, pg.cpu.NrPeriods))
			ev = append(ev, fmt.Sprintf("cpu.stat: throttled in %.0f of %.0f periods, %.1f%% of the interval", vals["nr_throttled"], vals["nr_periods"], throttled))
		}
	}
	labels := map[string]string{"scope": scope, "resource": r, "line": line, "cause": cause}
	if path != "" {
		labels["pod_uid"] = pod
		labels["cgroup"] = "/" + path
	}
	return &detect.Finding{
		Kind:     signal.KindPSI,
		Subject:  subject,
		Summary:  fmt.Sprintf("%s %s pressure: %s %.0f%% (%s)", scope, r, line, map[string]float64{"some": some, "full": full}[line], cause),
		Labels:   labels,
		Values:   vals,
		Evidence: ev,
	}
}

var podRE = regexp.MustCompile(`pod([0-9a-f]{8}[_-][0-9a-f]{4}[_-][0-9a-f]{4}[_-][0-9a-f]{4}[_-][0-9a-f]{12})`)

// podUID extracts the pod UID from a kubepods cgroup path; the path itself for others.
func podUID(path string) string {
	if path == "" {
		return ""
	}
	m := podRE.FindAllStringSubmatch(path, -1)
	if len(m) == 0 {
		return path
	}
	return strings.ReplaceAll(m[len(m)-1][1], "_", "-")
}

// readNode reads /proc/pressure.
func (d *Detector) readNode(now time.Time) (*sample, error) {
	s := &sample{at: now, groups: map[string]*group{}}
	node := &group{pressure: map[string]Pressure{}}
	for _, r := range Resources {
		st, err := d.fs.Proc().PSIStatsForResource(r)
		if errors.Is(err, os.ErrNotExist) {
			continue // no PSI (kernel without CONFIG_PSI or psi=0)
		}
		if err != nil {
			return nil, fmt.Errorf("psi: %w", err)
		}
		p := Pressure{}
		if st.Some != nil {
			p.Some = &Line{st.Some.Avg10, st.Some.Avg60, st.Some.Avg300, st.Some.Total}
		}
		if st.Full != nil {
			p.Full = &Line{st.Full.Avg10, st.Full.Avg60, st.Full.Avg300, st.Full.Total}
		}
		node.pressure[r] = p
	}
	s.groups[""] = node
	return s, nil
}

// readPods reads the pod cgroups' pressure and cpu.stat.
func (d *Detector) readPods(now time.Time) (*sample, error) {
	s := &sample{at: now, groups: make(map[string]*group, len(d.pods))}
	if d.scans%d.opts.RediscoverEvery == 0 {
		if err := d.discover(); err != nil {
			return nil, err
		}
	}
	d.scans++
	for _, rel := range d.pods {
		grp, err := d.readGroup(filepath.Join(d.cgroot, rel))
		if errors.Is(err, os.ErrNotExist) {
			d.scans = 0 // the pod went away: search again next time
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("psi: cgroup %s: %w", rel, err)
		}
		s.groups[rel] = grp
	}
	return s, nil
}

// discover finds the pod cgroups.
func (d *Detector) discover() error {
	seen := map[string]bool{}
	d.pods = d.pods[:0]
	for _, g := range d.opts.CgroupGlobs {
		matches, err := filepath.Glob(filepath.Join(d.cgroot, g))
		if err != nil {
			return fmt.Errorf("psi: cgroup glob %q: %w", g, err)
		}
		for _, dir := range matches {
			rel, _ := filepath.Rel(d.cgroot, dir)
			if fi, err := os.Stat(dir); seen[rel] || err != nil || !fi.IsDir() {
				continue
			}
			seen[rel] = true
			d.pods = append(d.pods, rel)
		}
	}
	return nil
}

func (d *Detector) readGroup(dir string) (*group, error) {
	g := &group{pressure: make(map[string]Pressure, len(Resources))}
	for _, r := range Resources {
		b, err := d.r.Read(filepath.Join(dir, r+".pressure"))
		if err != nil {
			return nil, err
		}
		p, err := ParsePressure(b)
		if err != nil {
			return nil, fmt.Errorf("%s.pressure: %w", r, err)
		}
		g.pressure[r] = p
	}
	b, err := d.r.Read(filepath.Join(dir, "cpu.stat"))
	if err == nil {
		st, err := ParseCPUStat(b)
		if err != nil {
			return nil, err
		}
		g.cpu = &st
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return g, nil
}

type metrics struct {
	stalled, avg10, throttled *detect.Gauges
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	stalled, avg10, throttled := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "remedy_psi_stalled_percent",
		Help: "Share of the last scan interval tasks were stalled on a resource (pod \"\" is the node).",
	}, []string{"pod", "resource", "line"}),
		prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_psi_avg10_percent",
			Help: "The kernel's 10 s pressure average (pod \"\" is the node).",
		}, []string{"pod", "resource", "line"}),
		prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_psi_cpu_throttled_percent",
			Help: "Share of the last scan interval a pod was throttled by its CFS quota.",
		}, []string{"pod"})
	m := metrics{stalled: detect.NewGauges(stalled), avg10: detect.NewGauges(avg10), throttled: detect.NewGauges(throttled)}
	return m, detect.Register(reg, stalled, avg10, throttled)
}

func (m metrics) sweep() {
	m.stalled.Sweep()
	m.avg10.Sweep()
	m.throttled.Sweep()
}
