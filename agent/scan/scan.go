// Package scan is `remedy-agent scan`: a one-shot diagnosis that runs every detector
// over a few scans and prints what it found with the evidence (which IRQs sit on which
// CPUs, which counters grew, which pods stall) — what an engineer would otherwise piece
// together by hand from /proc/interrupts, smp_affinity, ethtool -S and /proc/pressure.
package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detectors"
	"github.com/remedyhq/remedy/nodefs"
)

// Sentinel errors.
var (
	ErrUsage = errors.New("scan: bad usage")
)

// Result is the JSON output.
type Result struct {
	HostRoot string            `json:"hostRoot"`
	Scans    int               `json:"scans"`
	Interval string            `json:"interval"`
	Findings []Seen            `json:"findings"`
	Errors   map[string]string `json:"errors,omitempty"`
	// Layout is the IRQ → CPU layout and the counters' growth, printed healthy or not.
	Layout *Layout `json:"layout,omitempty"`
}

// Seen is a finding with the number of scans (after the baseline) it was seen in; the
// finding itself is the last one seen.
type Seen struct {
	detect.Finding
	Detector string `json:"detector"`
	Seen     int    `json:"seen"`
	Of       int    `json:"of"`
}

// Options say what to scan and how to print it. Flags are parsed in cmd/remedy-agent.
type Options struct {
	HostRoot    string        // where the host's / is mounted (/host in a pod)
	Interval    time.Duration // time between scans
	Count       int           // number of scans; the first is a baseline, so at least 2
	Interfaces  []string      // NICs to watch (default: every NIC backed by a device)
	IMDS        string        // Azure Scheduled Events URL (empty: the freeze detector is off)
	DriverStats bool          // read the drivers' own counters (ethtool -S)
	Disable     []string      // detectors to leave out: irq, drops, psi, freeze
}

// Check reports what is wrong with o, wrapping ErrUsage.
func (o Options) Check() error {
	switch {
	case o.Count < 2:
		return fmt.Errorf("%w: --count %d: at least 2 scans are needed, the first is a baseline", ErrUsage, o.Count)
	case o.Interval <= 0:
		return fmt.Errorf("%w: --interval must be positive", ErrUsage)
	}
	return nil
}

// Run scans as o says and returns the result; the detectors' warnings go to stderr.
func Run(ctx context.Context, o Options, stderr io.Writer) (Result, error) {
	if err := o.Check(); err != nil {
		return Result{}, err
	}
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	ds, err := detectors.New(detectors.Options{
		HostRoot: o.HostRoot, Interfaces: o.Interfaces, Interval: o.Interval, DriverStats: o.DriverStats,
		IMDSEndpoint: o.IMDS, Disable: o.Disable,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return Result{}, err
	}
	defer ds.Close()
	fs, err := nodefs.New(o.HostRoot)
	if err != nil {
		return Result{}, err
	}
	ifaces, err := nicNames(fs, o.Interfaces)
	if err != nil {
		return Result{}, err
	}
	before, berr := takeSnapshot(fs, ifaces)
	res, err := Scan(ctx, ds.List, o.Count, o.Interval)
	if err != nil {
		return res, err
	}
	res.HostRoot = o.HostRoot
	if after, err := takeSnapshot(fs, ifaces); berr == nil && err == nil {
		l := layoutOf(fs, ifaces, before, after)
		res.Layout = &l
	}
	return res, nil
}

// Scan runs the detectors count times, interval apart, and gathers what they found.
func Scan(ctx context.Context, ds []detect.Detector, count int, interval time.Duration) (Result, error) {
	res := Result{Scans: count, Interval: interval.String()}
	seen := map[string]*Seen{}
	for i := range count {
		if i > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(interval):
			}
		}
		for _, d := range ds {
			fs, err := d.Scan(ctx)
			if err != nil {
				if res.Errors == nil {
					res.Errors = map[string]string{}
				}
				res.Errors[d.Name()] = err.Error()
			}
			for _, f := range fs {
				s, ok := seen[f.Key()]
				if !ok {
					s = &Seen{Detector: d.Name()}
					seen[f.Key()] = s
				}
				s.Finding = f
				s.Seen++
			}
		}
	}
	res.Findings = []Seen{}
	for _, s := range seen {
		s.Of = count - 1
		res.Findings = append(res.Findings, *s)
	}
	sort.Slice(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Subject < b.Subject
	})
	if len(res.Errors) == len(ds) && len(ds) > 0 {
		return res, fmt.Errorf("scan: every detector failed: %v", res.Errors)
	}
	return res, nil
}

// PrintTable prints res for a person: the findings, their evidence and the errors.
func PrintTable(w io.Writer, res Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KIND\tSUBJECT\tSEEN\tSUMMARY\n")
	for _, f := range res.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", f.Kind, f.Subject, f.Seen, f.Of, f.Summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Findings) == 0 {
		fmt.Fprintf(w, "no findings in %d scans %s apart\n", res.Scans, res.Interval)
	}
	for _, f := range res.Findings {
		fmt.Fprintf(w, "\n%s %s:\n", f.Kind, f.Subject)
		for _, e := range f.Evidence {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	printLayout(w, res)
	for _, name := range sortedKeys(res.Errors) {
		fmt.Fprintf(w, "\nerror: %s: %s\n", name, res.Errors[name])
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
