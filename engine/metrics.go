package engine

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	signals     *prometheus.CounterVec
	decisions   *prometheus.CounterVec
	actions     *prometheus.CounterVec
	evalSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_signals_total", Help: "Signals submitted, by source, audit type and whether new (not a duplicate).",
		}, []string{"source", "type", "new"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_decisions_total", Help: "Decisions recorded, by outcome (act, none, rejected, policy_error).",
		}, []string{"outcome"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_actions_total", Help: "Actions by action and status (rejected, succeeded, dry_run, failed, ...).",
		}, []string{"action", "status"}),
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "remedy_policy_eval_seconds", Help: "Policy evaluation time per signal.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.signals, m.decisions, m.actions, m.evalSeconds)
	}
	return m
}
