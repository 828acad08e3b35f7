package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/wire/bus"
)

// What the engine answers node agents beside their actions and results: whether to run
// an action their journal has never seen, and whether they are alive.

// MayRun answers an agent's RunCheck, asked on subject, from the ledger: only an action
// for the asking node (the subject is what its credentials allow), at its current
// attempt, that has not ended, is to be run. A replay of an action that already ran is
// refused here even when the agent's journal was lost; the agent reports the refusal,
// which is audited.
func (e *Engine) MayRun(ctx context.Context, subject string, q bus.RunCheck) (bus.RunAnswer, error) {
	row, err := e.o.Store.Action(ctx, q.ID)
	switch {
	case errors.Is(err, audit.ErrNoAction):
		return bus.RunAnswer{Reason: "no such action in the ledger"}, nil
	case err != nil:
		return bus.RunAnswer{}, err
	}
	attempt := q.Attempt
	if attempt == 0 {
		attempt = 1
	}
	switch {
	case subject != bus.RunCheckSubject(row.Node):
		return bus.RunAnswer{Reason: fmt.Sprintf("asked on %s; the action is for node %s", subject, row.Node)}, nil
	case attempt != row.Attempt:
		return bus.RunAnswer{Reason: fmt.Sprintf("attempt %d; the action is at attempt %d", attempt, row.Attempt)}, nil
	case row.State != audit.StatePlanned && row.State != audit.StateDispatched:
		return bus.RunAnswer{Reason: fmt.Sprintf("the action is %s", row.State)}, nil
	case !row.Deadline.IsZero() && e.o.Now().After(row.Deadline):
		return bus.RunAnswer{Reason: "the action's deadline passed"}, nil
	}
	return bus.RunAnswer{Run: true}, nil
}

// liveness keeps when each node's agent was last heard from.
type liveness struct {
	mu       sync.Mutex
	lastSeen map[string]time.Time // by heartbeat subject
	gauge    *prometheus.GaugeVec
	noAgent  prometheus.Counter
}

func newLiveness(reg prometheus.Registerer) *liveness {
	l := &liveness{lastSeen: map[string]time.Time{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_agent_last_seen_timestamp_seconds", Help: "When each node's agent last said it is alive (unix seconds).",
		}, []string{"node"}),
		noAgent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remedy_dispatch_no_live_agent_total", Help: "Node actions dispatched to a node whose agent has not been heard from for three heartbeat intervals.",
		})}
	if reg != nil {
		reg.MustRegister(l.gauge, l.noAgent)
	}
	return l
}

// Heartbeat records an agent's heartbeat received on subject; one whose node is not the
// subject's is ignored.
func (e *Engine) Heartbeat(subject string, data []byte) {
	var hb bus.Heartbeat
	if json.Unmarshal(data, &hb) != nil || hb.Node == "" || bus.HeartbeatSubject(hb.Node) != subject {
		return
	}
	now := e.o.Now()
	e.live.mu.Lock()
	e.live.lastSeen[subject] = now
	e.live.mu.Unlock()
	e.live.gauge.WithLabelValues(hb.Node).Set(float64(now.Unix()))
}

// agentGone says why a node's agent is not known to be alive ("" when it is).
func (e *Engine) agentGone(node string) string {
	e.live.mu.Lock()
	seen, ok := e.live.lastSeen[bus.HeartbeatSubject(node)]
	e.live.mu.Unlock()
	switch {
	case !ok:
		return "no heartbeat from the node's agent since this engine started"
	case e.o.Now().Sub(seen) > 3*bus.HeartbeatInterval:
		return fmt.Sprintf("no heartbeat from the node's agent since %s", seen.UTC().Format(time.RFC3339))
	}
	return ""
}
