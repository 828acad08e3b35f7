package detect

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Gauges wraps a GaugeVec whose series follow what a scan saw: Set the series a scan
// measured, then Sweep deletes the ones it did not. Unlike Reset before every scan, it
// does not re-create every series each scan.
type Gauges struct {
	Vec       *prometheus.GaugeVec
	last, now map[string][]string
}

// NewGauges wraps vec.
func NewGauges(vec *prometheus.GaugeVec) *Gauges {
	return &Gauges{Vec: vec, last: map[string][]string{}, now: map[string][]string{}}
}

// Set sets the series of labels to v.
func (g *Gauges) Set(v float64, labels ...string) {
	key := strings.Join(labels, "\x00")
	if _, ok := g.now[key]; !ok {
		if l, ok := g.last[key]; ok {
			g.now[key] = l
		} else {
			g.now[key] = append([]string(nil), labels...)
		}
	}
	g.Vec.WithLabelValues(labels...).Set(v)
}

// Sweep deletes the series not Set since the previous Sweep.
func (g *Gauges) Sweep() {
	for k, l := range g.last {
		if _, ok := g.now[k]; !ok {
			g.Vec.DeleteLabelValues(l...)
		}
	}
	g.last, g.now = g.now, g.last
	clear(g.now)
}
