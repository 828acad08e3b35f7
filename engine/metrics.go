package engine

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine/audit"
)

// metrics are what an operator alerts on, per stage.
type metrics struct {
	reg            prometheus.Registerer
	signals        *prometheus.CounterVec // intake, by source (webhook, agents over NATS, node conditions)
	decisions      *prometheus.CounterVec
	actions        *prometheus.CounterVec
	evalSeconds    prometheus.Histogram
	undecided      prometheus.Gauge // the sweep's last count of recorded, undecided signals
	dispatched     prometheus.Counter
	redispatched   prometheus.Counter
	dispatchErrors *prometheus.CounterVec
	resultsRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		reg: reg,
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_signals_total", Help: "Signals taken in (webhooks, NATS, node conditions), by source, audit type and whether new (not a duplicate).",
		}, []string{"source", "type", "new"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_decisions_total", Help: "Decisions recorded, by outcome (act, none, rejected, pending_approval, paused, refused, policy_error).",
		}, []string{"outcome"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_actions_total", Help: "Actions by action and status (rejected, succeeded, dry_run, failed, ...).",
		}, []string{"action", "status"}),
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "remedy_policy_eval_seconds", Help: "Policy evaluation time per signal.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 14),
		}),
		undecided: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remedy_signals_undecided", Help: "Signals recorded but not decided, as the last sweep found them (at most one sweep batch).",
		}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remedy_dispatches_total", Help: "Actions dispatched: published to an agent or started in the cluster.",
		}),
		redispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remedy_redispatches_total", Help: "Dispatched actions published again because no result came.",
		}),
		dispatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_dispatch_errors_total", Help: "Failed publishes to the bus, by what was published (publish, republish).",
		}, []string{"op"}),
		resultsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remedy_results_refused_total", Help: "Results not accepted (unknown action, another node's, a stale attempt, wrong subject, undecodable).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.signals, m.decisions, m.actions, m.evalSeconds, m.undecided, m.dispatched, m.redispatched,
			m.dispatchErrors, m.resultsRefused)
	}
	return m
}

func (m metrics) signal(source string, t audit.Type, inserted bool) {
	m.signals.WithLabelValues(source, string(t), fmt.Sprint(inserted)).Inc()
}

// queueDepth exports the intake queue's length.
func (m metrics) queueDepth(f func() float64) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "remedy_intake_queue_depth", Help: "Signals recorded and waiting for a worker to decide them.",
	}, f))
}
