// Package scan is `remedy-agent scan`: a one-shot diagnosis that runs every detector
// over a few scans and prints what it found with the evidence (which IRQs sit on which
// CPUs, which counters grew, which pods stall) — what an engineer would otherwise piece
// together by hand from /proc/interrupts, smp_affinity, ethtool -S and /proc/pressure.
package scan

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detectors"
	"github.com/remedyhq/remedy/agent/detect/freeze"
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
}

// Seen is a finding with the number of scans (after the baseline) it was seen in; the
// finding itself is the last one seen.
type Seen struct {
	detect.Finding
	Detector string `json:"detector"`
	Seen     int    `json:"seen"`
	Of       int    `json:"of"`
}

// Run parses args (without the "scan" word), scans and prints to stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("remedy-agent scan", flag.ContinueOnError)
	fl.SetOutput(stderr)
	hostRoot := fl.String("host-root", "/", "where the host's / is mounted (/host in a pod)")
	interval := fl.Duration("interval", time.Second, "time between scans")
	count := fl.Int("count", 3, "number of scans; the first is a baseline, so at least 2")
	output := fl.String("o", "table", "output format: table or json")
	ifaces := fl.String("interfaces", "", "comma-separated interfaces to watch (default: every NIC backed by a device)")
	imds := fl.String("imds-endpoint", "", "Azure Scheduled Events URL, e.g. "+freeze.DefaultAzureEndpoint+" (default: off)")
	ethtool := fl.Bool("driver-stats", true, "read the drivers' own counters (ethtool -S) in this network namespace")
	disable := fl.String("disable", "", "comma-separated detectors to leave out: irq, drops, psi, freeze")
	if err := fl.Parse(args); err != nil {
		return err
	}
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fl.Arg(0))
	case *count < 2:
		return fmt.Errorf("%w: --count %d: at least 2 scans are needed, the first is a baseline", ErrUsage, *count)
	case *interval <= 0:
		return fmt.Errorf("%w: --interval must be positive", ErrUsage)
	case *output != "table" && *output != "json":
		return fmt.Errorf("%w: -o %q: want table or json", ErrUsage, *output)
	}
	ds, err := detectors.New(detectors.Options{
		HostRoot: *hostRoot, Interfaces: split(*ifaces), Interval: *interval, DriverStats: *ethtool,
		IMDSEndpoint: *imds, Disable: split(*disable),
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer ds.Close()
	res, err := Scan(ctx, ds.List, *count, *interval)
	if err != nil {
		return err
	}
	res.HostRoot = *hostRoot
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return printTable(stdout, res)
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

func printTable(w io.Writer, res Result) error {
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

func split(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
