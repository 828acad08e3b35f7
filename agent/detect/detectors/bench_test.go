package detectors

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detecttest"
	"github.com/remedyhq/remedy/wire/signal"
)

func scanAll(tb testing.TB, ds []detect.Detector) int {
	n := 0
	for _, d := range ds {
		fs, err := d.Scan(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		n += len(fs)
	}
	return n
}

// BenchmarkFullScan96 is one scan of every detector on the 96-CPU fixture node: 32 NIC
// queue IRQs among 130 IRQ lines of 96 columns, 96 softnet lines, 3 pods' pressure.
func BenchmarkFullScan96(b *testing.B) {
	n := detecttest.Load(b, "node96")
	for n.Next(b) {
	}
	ds, err := New(Options{HostRoot: n.Root, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	scanAll(b, ds.List) // baseline
	b.ReportAllocs()
	c0 := detecttest.CPUTime(b)
	for b.Loop() {
		scanAll(b, ds.List)
	}
	detecttest.ReportCPU(b, c0)
}

// BenchmarkDetector96 breaks the full scan down by detector.
func BenchmarkDetector96(b *testing.B) {
	n := detecttest.Load(b, "node96")
	for n.Next(b) {
	}
	ds, err := New(Options{HostRoot: n.Root})
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	for _, d := range ds.List {
		b.Run(d.Name(), func(b *testing.B) {
			if _, err := d.Scan(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			c0 := detecttest.CPUTime(b)
			for b.Loop() {
				if _, err := d.Scan(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			detecttest.ReportCPU(b, c0)
		})
	}
}

// BenchmarkFullScanLive is one scan of every detector on this machine's own /proc and
// /sys, ethtool driver statistics included.
func BenchmarkFullScanLive(b *testing.B) {
	ds, err := New(Options{HostRoot: "/", DriverStats: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	scanAll(b, ds.List)
	b.ReportAllocs()
	c0 := detecttest.CPUTime(b)
	for b.Loop() {
		scanAll(b, ds.List)
	}
	detecttest.ReportCPU(b, c0)
}

var footprint = flag.Duration("footprint", 0, "run TestFootprint for this long (e.g. 60s)")

// TestFootprint runs the detectors through the runner at a 1 s interval on this
// machine, with metrics registered and scraped every 15 s as Prometheus would, and
// reports the process's CPU share and resident memory. It only runs when asked:
// go test -run TestFootprint ./agent/detect/detectors -args -footprint=60s
func TestFootprint(t *testing.T) {
	if *footprint == 0 {
		t.Skip("measures for a minute: run with -args -footprint=60s")
	}
	reg := prometheus.NewRegistry()
	ds, err := New(Options{HostRoot: "/", DriverStats: true, Interval: time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	published := 0
	r, err := detect.NewRunner(detect.Options{Node: "footprint", Interval: time.Second, Registerer: reg,
		Publisher: detect.PublisherFunc(func(context.Context, signal.Signal) error { published++; return nil })}, ds.List...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *footprint)
	defer cancel()
	go func() {
		tk := time.NewTicker(15 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				_, _ = reg.Gather()
			}
		}
	}()
	// Warm up, then measure.
	r.Scan(ctx)
	u0, w0 := detecttest.CPUTime(t), time.Now()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	used, wall := detecttest.CPUTime(t)-u0, time.Since(w0)
	rss, hwm := status(t, "VmRSS"), status(t, "VmHWM")
	t.Logf("footprint over %s at 1s: CPU %.3f%% of a core (%s), RSS %d kB, peak RSS %d kB, %d signals published",
		wall.Round(time.Second), 100*used.Seconds()/wall.Seconds(), used.Round(time.Millisecond), rss, hwm, published)
}

func status(t *testing.T, key string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
