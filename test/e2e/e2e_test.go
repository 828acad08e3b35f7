// Package e2e drives remedy end to end with real parts: a real Alertmanager process
// sending its webhooks to an in-process `remedy serve`, a real (embedded) NATS
// JetStream server, the node agent, and the SQLite audit log.
package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detectors"
	"github.com/remedyhq/remedy/agent/detect/detecttest"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/demo"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/executors/sysctl"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/signal"
)

type stack struct {
	app *app.App
	ctx context.Context
}

// startStack starts the engine (dry run) and one agent per node.
func startStack(t *testing.T, nodes ...string) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	a, err := app.Start(ctx, app.Options{
		DataDir: filepath.Join(dir, "engine"), PolicyDir: "testdata/policies", Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", DryRun: true, SweepInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	actx, stopAgents := context.WithCancel(ctx)
	done := make(chan struct{}, len(nodes))
	for _, n := range nodes {
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			if err := agent.Run(actx, agent.Options{Node: n, NATSURL: a.NATSURL(), StateDir: filepath.Join(dir, "agent-"+n), Registry: reg}); err != nil {
				t.Error(err)
			}
		}()
	}
	t.Cleanup(func() {
		stopAgents()
		for range nodes {
			<-done
		}
	})
	return &stack{app: a, ctx: ctx}
}

func (s *stack) events(t *testing.T, f audit.Filter) []audit.Event {
	t.Helper()
	f.Limit = 10000
	evs, err := s.app.Store.Query(s.ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (s *stack) count(t *testing.T, node string, typ audit.Type) int {
	return len(s.events(t, audit.Filter{Node: node, Type: typ}))
}

func currentBacklog(t *testing.T) string {
	v, err := sysctl.Read("/", "net.core.netdev_max_backlog")
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(v, 10)
}

// An alert pushed to a real Alertmanager reaches remedy's webhook, is decided by the
// policy, dispatched over JetStream to the node's agent, run (dry run) against the real
// /proc/sys, and every step is in the audit log under one correlation id. Alertmanager's
// own re-send of the group (a second alert joins it) delivers the first alert again:
// it must not produce a second action.
func TestAlertmanagerWebhookToAgent(t *testing.T) {
	testenv.Heavy(t)
	const node = "e2e-node-1"
	s := startStack(t, node)
	am := testenv.StartAlertmanager(t, s.app.URL()+"/webhooks/alertmanager")

	alertA := testenv.Alert{
		Labels:      map[string]string{"alertname": "NodePacketDrops", "node": node, "device": "eth0", "cause": "backlog"},
		Annotations: map[string]string{"summary": "backlog drops"},
		StartsAt:    time.Now().Add(-time.Minute).UTC().Truncate(time.Second),
	}
	if err := am.Push(s.ctx, alertA); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the first action's result", func() bool {
		return s.count(t, node, audit.ActionResult) == 1
	})
	res := s.events(t, audit.Filter{Node: node, Type: audit.ActionResult})[0]
	var r executors.Result
	if err := json.Unmarshal(res.Detail, &r); err != nil {
		t.Fatal(err)
	}
	want := currentBacklog(t)
	if r.Status != executors.DryRun || r.Before["net.core.netdev_max_backlog"] != want || r.After["net.core.netdev_max_backlog"] != "4096" {
		t.Fatalf("result = %+v, want dry run %s -> 4096", r, want)
	}
	if currentBacklog(t) != want {
		t.Fatal("a dry run changed the kernel")
	}
	trail := s.events(t, audit.Filter{CorrelationID: res.CorrelationID})
	types := map[audit.Type]int{}
	for _, e := range trail {
		types[e.Type]++
	}
	for _, typ := range []audit.Type{audit.SignalReceived, audit.Decision, audit.ActionPlanned, audit.Dispatched, audit.ActionResult} {
		if types[typ] != 1 {
			t.Errorf("incident trail has %d %s events, want 1 (trail %v)", types[typ], typ, types)
		}
	}

	// A second alert in the same group: Alertmanager sends both, A for the second time.
	alertB := alertA
	alertB.Labels = map[string]string{"alertname": "NodePacketDrops", "node": node, "device": "eth1", "cause": "backlog"}
	if err := am.Push(s.ctx, alertB); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the second action's result", func() bool {
		return s.count(t, node, audit.ActionResult) == 2
	})
	time.Sleep(2500 * time.Millisecond) // more than group_interval: any further re-send has arrived
	if n := s.count(t, node, audit.SignalReceived); n != 2 {
		t.Errorf("%d distinct signals recorded, want 2", n)
	}
	if n := s.count(t, node, audit.ActionPlanned); n != 2 {
		t.Errorf("%d actions planned, want 2: a re-delivered alert produced a second action", n)
	}

	// Resolving A: a resolved signal, decided (no action), in the same incident.
	alertA.EndsAt = time.Now().UTC()
	if err := am.Push(s.ctx, alertA); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the resolved signal", func() bool {
		for _, e := range s.events(t, audit.Filter{CorrelationID: res.CorrelationID, Type: audit.SignalReceived}) {
			if e.Outcome == string(signal.Resolved) {
				return true
			}
		}
		return false
	})
	if n := s.count(t, node, audit.ActionPlanned); n != 2 {
		t.Errorf("a resolved alert planned an action (%d planned)", n)
	}
}

// Signals published as CloudEvents on NATS are decided and acted on like webhook
// alerts; an undecodable event is recorded as rejected and does not stop the intake.
func TestCloudEventsOverNATS(t *testing.T) {
	testenv.Heavy(t)
	const node = "e2e-node-2"
	s := startStack(t, node)
	nc, err := nats.Connect(s.app.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	if _, err := js.Publish(s.ctx, "remedy.signals.bad.event", []byte(`{"specversion":"1.0","type":"nope"`)); err != nil {
		t.Fatal(err)
	}
	sig := signal.Signal{Source: "remedy-agent", Kind: signal.KindPacketDrops, Node: node, Status: signal.Firing,
		Fingerprint: "ce-1", StartsAt: time.Now().UTC(), Labels: map[string]string{"cause": "backlog"}}
	b, err := signal.EncodeCloudEvent(&sig, "remedy-agent/"+node)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the duplicate is dropped by the stream's duplicate window or the audit key
		if _, err := js.Publish(s.ctx, sig.Subject(), b, jetstream.WithMsgID(sig.Key())); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 20*time.Second, "the action result", func() bool {
		return s.count(t, node, audit.ActionResult) == 1
	})
	rej := s.events(t, audit.Filter{Type: audit.SignalRejected})
	if len(rej) != 1 || !strings.Contains(string(rej[0].Detail), "remedy.signals.bad.event") {
		t.Fatalf("rejected events = %+v", rej)
	}
	if n := s.count(t, node, audit.Decision); n != 1 {
		t.Fatalf("%d decisions, want 1", n)
	}
}

// The README's first command works: the demo decides every sample alert with the
// shipped policies and every planned action comes back with a result.
func TestDemo(t *testing.T) {
	testenv.Heavy(t)
	root := testenv.RepoRoot()
	var out strings.Builder
	err := demo.Run(context.Background(), demo.Options{
		PolicyDir: filepath.Join(root, "policies"), PayloadDir: filepath.Join(root, "engine", "demo", "samples"),
		Timeout: 30 * time.Second,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.Contains(text, "warning:") {
		t.Fatalf("demo did not settle:\n%s", text)
	}
	for _, n := range []string{"aks-nodepool1-00000001", "aks-nodepool1-00000002", "aks-nodepool1-00000003", "aks-nodepool1-00000004"} {
		if !strings.Contains(text, "POST ") || !strings.Contains(text, n) {
			t.Fatalf("demo output lacks node %s:\n%s", n, text)
		}
	}
	if c := strings.Count(text, "200 OK"); c != 4 {
		t.Fatalf("%d of 4 sample webhooks accepted:\n%s", c, text)
	}
	if !strings.Contains(text, "action.result") {
		t.Fatalf("no action reached an agent:\n%s", text)
	}
}

// The agent's own detectors see IRQ skew on a node (the skewed 8-CPU fixture replayed
// scan by scan under --host-root) and the signal travels as a CloudEvent over NATS into
// the engine's audit log, firing and then resolved when the fixture rebalances.
func TestAgentDetectorsToAudit(t *testing.T) {
	testenv.Heavy(t)
	s := startStack(t)
	node := detecttest.Load(t, "skewed8")
	const name = "e2e-skewed-node"
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: node.Root})...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Options{Node: name, NATSURL: s.app.NATSURL(), StateDir: t.TempDir(), Registry: reg,
			Detect: &agent.Detection{
				Detectors: detectors.Options{HostRoot: node.Root, Interval: 100 * time.Millisecond, CgroupRoot: "-",
					Disable: []string{"drops", "psi", "freeze"}},
				Runner: detect.Options{Interval: 100 * time.Millisecond, FireAfter: 2},
			}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	statuses := func() map[string]bool {
		out := map[string]bool{}
		for _, e := range s.events(t, audit.Filter{Node: name, Type: audit.SignalReceived}) {
			if e.Kind == string(signal.KindIRQSkew) && e.Actor == "agent" {
				out[e.Outcome] = true
			}
		}
		return out
	}
	// Each fixture scan stays in place for several detector scans.
	for node.Next(t) {
		time.Sleep(400 * time.Millisecond)
		if statuses()["resolved"] {
			break
		}
	}
	testenv.Eventually(t, 20*time.Second, "irq_skew firing and resolved in the audit log", func() bool {
		st := statuses()
		return st["firing"] && st["resolved"]
	})
	var sig signal.Signal
	for _, e := range s.events(t, audit.Filter{Node: name, Type: audit.SignalReceived}) {
		if e.Outcome == "firing" {
			if err := json.Unmarshal(e.Detail, &sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sig.Labels["cpus"] == "" || sig.Labels["iface"] == "" {
		t.Fatalf("the signal lacks its evidence labels: %+v", sig)
	}
}
