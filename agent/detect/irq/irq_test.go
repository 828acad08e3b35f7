package irq

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detecttest"
	"github.com/remedyhq/remedy/nodefs"
	"github.com/remedyhq/remedy/wire/signal"
)

func replay(t *testing.T, name string, reg prometheus.Registerer) (*detecttest.Node, *Detector) {
	return detecttest.Replay(t, name, func(fs nodefs.FS, now func() time.Time) (*Detector, error) {
		return New(fs, Options{Registerer: reg, Now: now})
	})
}

func TestSkewedNodeFlagged(t *testing.T) {
	reg := prometheus.NewRegistry()
	n, d := replay(t, "skewed8", reg)
	var perScan []int
	var first *detect.Finding
	for n.Next(t) {
		fs, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		perScan = append(perScan, len(fs))
		if len(fs) == 1 && first == nil {
			first = &fs[0]
		}
	}
	// Scan 0 is the baseline; scans 1-3 skewed; irqbalance rebalanced before scan 4.
	if got, want := perScan, []int{0, 1, 1, 1, 0, 0, 0}; !slices.Equal(got, want) {
		t.Fatalf("findings per scan = %v, want %v", got, want)
	}
	f := first
	if f.Kind != signal.KindIRQSkew || f.Subject != "eth0" || f.Summary != "eth0: 9 queue irqs on 2 of 8 cpus (4-5)" {
		t.Fatalf("finding = %+v", f)
	}
	want := map[string]float64{
		"queue_irqs": 9, "queues": 9, "spread_cpus": 2, "possible_cpus": 8, "spread_ratio": 0.25,
		"busiest_cpu": 5, "busiest_share": 5.0 / 9, "interrupts_per_second": 450000,
		"busiest_net_rx_per_second": 500000, "busiest_softirq_ratio": 0.91, "serving_cpus": 2,
	}
	for k, v := range want {
		if math.Abs(f.Values[k]-v) > 1e-9 {
			t.Errorf("value %s = %v, want %v", k, f.Values[k], v)
		}
	}
	if f.Labels["busiest_cpu"] != "5" || f.Labels["cpus"] != "4-5" {
		t.Errorf("labels = %v", f.Labels)
	}
	if f.Evidence[2] != "irq 24 mlx5_comp0@pci:0000:00:02.0: smp/effective affinity 20 (cpu 5), +50000" ||
		f.Evidence[3] != "irq 25 mlx5_comp1@pci:0000:00:02.0: smp/effective affinity 10 (cpu 4), +50000" {
		t.Errorf("evidence = %q", f.Evidence)
	}
	if !strings.HasPrefix(f.Evidence[1], "cpu 5 took 56% of 450000 interrupts") {
		t.Errorf("evidence[1] = %q", f.Evidence[1])
	}
	// After the rebalance the metrics say so.
	if got := testutil.ToFloat64(d.m.skewed.WithLabelValues("eth0")); got != 0 {
		t.Errorf("remedy_irq_skewed after rebalance = %v", got)
	}
	if got := testutil.ToFloat64(d.m.spreadCPUs.WithLabelValues("eth0")); got != 8 {
		t.Errorf("remedy_irq_spread_cpus after rebalance = %v", got)
	}
	if got := testutil.ToFloat64(d.m.serving.WithLabelValues("eth0")); got != 8 {
		t.Errorf("remedy_irq_serving_cpus after rebalance = %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "remedy_irq_queue_affinity_info"); err != nil || n != 9 {
		t.Errorf("affinity info series = %d, %v", n, err)
	}
}

func TestNotFlagged(t *testing.T) {
	for _, tt := range []struct {
		node           string
		spread, queues float64
	}{
		{node: "balanced8", spread: 8, queues: 9}, // 40,80,10,80,04,20,08,01,02
		{node: "node96", spread: 32, queues: 32},
		{node: "virtio1q", spread: 2, queues: 1}, // one queue pair: input.0 + output.0
	} {
		t.Run(tt.node, func(t *testing.T) {
			n, d := replay(t, tt.node, nil)
			for n.Next(t) {
				fs, err := d.Scan(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(fs) != 0 {
					t.Fatalf("flagged: %+v", fs)
				}
			}
			if got := testutil.ToFloat64(d.m.spreadCPUs.WithLabelValues("eth0")); got != tt.spread {
				t.Errorf("spread = %v, want %v", got, tt.spread)
			}
			if got := testutil.ToFloat64(d.m.skewed.WithLabelValues("eth0")); got != 0 {
				t.Errorf("skewed = %v", got)
			}
		})
	}
}

// TestRunnerFiresAndResolves drives the skewed node through the runner: the skew holds
// for three scans, fires, and resolves three scans after irqbalance fixed it.
func TestRunnerFiresAndResolves(t *testing.T) {
	n, d := replay(t, "skewed8", nil)
	var got []signal.Signal
	pub := detect.PublisherFunc(func(_ context.Context, s signal.Signal) error { got = append(got, s); return nil })
	r, err := detect.NewRunner(detect.Options{Node: "aks-nodepool1-0", FireAfter: 3, Publisher: pub, Now: detecttest.NewClock().Now}, d)
	if err != nil {
		t.Fatal(err)
	}
	var when []int
	for i := 0; n.Next(t); i++ {
		before := len(got)
		r.Scan(context.Background())
		if len(got) > before {
			when = append(when, i)
		}
	}
	if len(got) != 2 || got[0].Status != signal.Firing || got[1].Status != signal.Resolved || !slices.Equal(when, []int{3, 6}) {
		t.Fatalf("published %d signals at scans %v: %+v", len(got), when, got)
	}
	if got[0].Labels["iface"] != "eth0" || got[0].Values["spread_cpus"] != 2 {
		t.Fatalf("firing signal = %+v", got[0])
	}
}

func TestLiveKernel(t *testing.T) {
	fs, err := nodefs.New("/")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(fs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d.prev == nil || len(d.prev.counts) == 0 {
		t.Skip("this machine has no NIC queue IRQs to measure")
	}
	t.Logf("live NIC queue IRQs: %d", len(d.prev.counts))
}

func TestNewErrors(t *testing.T) {
	_, err := New(nodefs.FS{}, Options{MinSpread: 2})
	if err == nil || err.Error() != "irq: min spread 2 not in [0,1]" {
		t.Fatalf("err = %v", err)
	}
}

// TestRediscoveryKeepsDeltas: rediscovering the same IRQs must not turn a scan into a
// baseline (that would break the runner's consecutive-scan count).
func TestRediscoveryKeepsDeltas(t *testing.T) {
	n, d := detecttest.Replay(t, "skewed8", func(fs nodefs.FS, now func() time.Time) (*Detector, error) {
		return New(fs, Options{RediscoverEvery: 1, Now: now})
	})
	var per []int
	for i := 0; i < 4 && n.Next(t); i++ {
		found, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		per = append(per, len(found))
	}
	if !slices.Equal(per, []int{0, 1, 1, 1}) {
		t.Fatalf("findings per scan with rediscovery every scan = %v", per)
	}
}

// TestAffinityCadence: affinities are re-read at once when interrupts land on a CPU
// outside them (the skewed node's rebalance above), and at the latest every
// AffinityEvery scans when no interrupt shows the change.
func TestAffinityCadence(t *testing.T) {
	n, d := detecttest.Replay(t, "balanced8", func(fs nodefs.FS, now func() time.Time) (*Detector, error) {
		return New(fs, Options{AffinityEvery: 3, Now: now})
	})
	for n.Next(t) {
		if _, err := d.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Skew the affinities behind the detector's back; no interrupt arrives.
	for i := 24; i <= 32; i++ {
		m := []string{"20", "10"}[i%2]
		for _, f := range []string{"smp_affinity", "effective_affinity"} {
			if err := os.WriteFile(filepath.Join(n.Root, "proc/irq", strconv.Itoa(i), f), []byte(m+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var per []int
	for range 3 {
		found, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		per = append(per, len(found))
	}
	if !slices.Equal(per, []int{0, 0, 1}) {
		t.Fatalf("findings per scan after a silent affinity change = %v, want [0 0 1]", per)
	}
}
