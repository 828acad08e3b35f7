package detect

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type runnerMetrics struct {
	duration      *prometheus.HistogramVec
	errors        *prometheus.CounterVec
	findings      *prometheus.GaugeVec
	published     *prometheus.CounterVec
	publishErrors prometheus.Counter
}

func newRunnerMetrics(reg prometheus.Registerer) (runnerMetrics, error) {
	m := runnerMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "remedy_detect_scan_duration_seconds",
			Help:    "Time one detector took for one scan.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
		}, []string{"detector"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_detect_scan_errors_total",
			Help: "Scans a detector failed.",
		}, []string{"detector"}),
		findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_detect_findings",
			Help: "Findings by kind and hysteresis state after the last scan.",
		}, []string{"kind", "state"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_detect_signals_published_total",
			Help: "Signals published, by kind and status.",
		}, []string{"kind", "status"}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remedy_detect_publish_errors_total",
			Help: "Signal publications that failed and will be retried.",
		}),
	}
	if err := Register(reg, m.duration, m.errors, m.findings, m.published, m.publishErrors); err != nil {
		return runnerMetrics{}, err
	}
	return m, nil
}

// Register registers collectors on reg; a nil reg registers nothing. The detectors use
// it for their own metrics.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}
