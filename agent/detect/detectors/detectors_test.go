package detectors

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detecttest"
)

// TestMetricsScrapeable replays the skewed node through every detector and the runner
// on one registry and scrapes it over HTTP as Prometheus would.
func TestMetricsScrapeable(t *testing.T) {
	n := detecttest.Load(t, "skewed8")
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	ds, err := New(Options{HostRoot: n.Root, Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	r, err := detect.NewRunner(detect.Options{Node: "aks-nodepool1-0", Registerer: reg}, ds.List...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3 && n.Next(t); i++ {
		now = now.Add(time.Second)
		r.Scan(context.Background())
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`remedy_irq_skewed{iface="eth0"} 1`,
		`remedy_irq_spread_cpus{iface="eth0"} 2`,
		`remedy_irq_queue_affinity_info{cpus="5",iface="eth0",irq="24",name="mlx5_comp0@pci:0000:00:02.0"} 1`,
		`remedy_net_drops_per_second{cause="ring_overflow",iface="eth0"} 300`,
		`remedy_net_drops_softnet_per_second{cause="budget_exhausted"} 300`,
		`remedy_psi_stalled_percent{line="some",pod="",resource="cpu"} 1`,
		`remedy_vm_freeze_wall_jump_seconds `,
		`remedy_detect_findings{kind="irq_skew",state="pending"} 1`,
		`remedy_detect_scan_duration_seconds_count{detector="irq"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{HostRoot: "/", Disable: []string{"irq", "drops", "psi", "freeze"}}); err != detect.ErrNoDetectors {
		t.Fatalf("all disabled: err = %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Options{HostRoot: "/", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{HostRoot: "/", Registerer: reg}); err == nil || !strings.Contains(err.Error(), "register metrics: duplicate metrics collector registration attempted") {
		t.Fatalf("double registration: err = %v", err)
	}
}
