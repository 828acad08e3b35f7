package detect

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGaugesSweep(t *testing.T) {
	g := NewGauges(prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "remedy_test"}, []string{"iface"}))
	g.Set(1, "eth0")
	g.Set(2, "eth1")
	g.Sweep()
	if n := testutil.CollectAndCount(g.Vec); n != 2 {
		t.Fatalf("series after scan 1 = %d", n)
	}
	g.Set(3, "eth1")
	g.Sweep()
	if n := testutil.CollectAndCount(g.Vec); n != 1 {
		t.Fatalf("series after scan 2 = %d, want eth0 swept", n)
	}
	if v := testutil.ToFloat64(g.Vec.WithLabelValues("eth1")); v != 3 {
		t.Fatalf("eth1 = %v", v)
	}
}
