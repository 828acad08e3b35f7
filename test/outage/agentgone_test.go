package outage

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/loadgen"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
)

// An agent that is gone longer than its actions' deadline (10 minutes by default; 3 s
// here): the engine records each action expired once the deadline and a grace period
// have passed, and when the agent comes back it refuses the stale actions waiting in
// its stream instead of running them late. Nothing runs; each action has one result.
func TestAgentGonePastTheDeadline(t *testing.T) {
	testenv.Heavy(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ttl, grace = 3 * time.Second, time.Second
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "engine"), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1",
		PolicyDir: filepath.Join(testenv.RepoRoot(), "test", "e2e", "testdata", "policies"), DryRun: true,
		ActionTTL: ttl, RedispatchAfter: grace, SweepInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	const alerts = 5
	o := loadgen.Options{AlertsPerWebhook: 1, Nodes: 1, Seed: "gone"}
	postAlerts(t, a.URL(), o, 0, alerts, "with no agent; the engine records it all the same")
	results := func() []audit.Event {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.ActionResult, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	// No agent: the actions are dispatched, then expire on the engine's side.
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d actions recorded expired by the engine", alerts), func() bool {
		return len(results()) == alerts
	})
	for _, r := range results() {
		if r.Outcome != string(executors.Expired) || r.Actor != audit.ActorEngine {
			t.Fatalf("result %+v, want expired", r)
		}
	}
	// The agent comes back and finds its stale actions in the stream.
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(actx, agent.Options{Node: "bench-node-0", NATSURL: a.NATSURL(), StateDir: filepath.Join(dir, "agent"), Registry: reg})
	}()
	testenv.Eventually(t, 30*time.Second, "the agent has consumed its stale actions", func() bool {
		cons, err := a.JS.Consumer(ctx, bus.StreamActions, bus.AgentConsumer("bench-node-0"))
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= alerts
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the agent's expiry reports, if any, reach the audit log
	res := results()
	if len(res) != alerts {
		t.Fatalf("%d results, want %d (one per action)", len(res), alerts)
	}
	for _, r := range res {
		if r.Outcome != string(executors.Expired) {
			t.Fatalf("an action ran late: %+v", r)
		}
	}
}
