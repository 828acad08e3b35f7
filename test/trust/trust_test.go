// Package trust_test publishes forged and misdirected results and signals on a real
// NATS server to a running engine: nothing a message says about itself is believed.
// A result counts only for an action in the ledger, at its attempt, from the results
// subject of the node it was dispatched to; a signal only from its own node's subject.
// Everything else is recorded, with the reason and the subject it came on.
package trust_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/signal"
)

type env struct {
	t   *testing.T
	ctx context.Context
	a   *app.App
	nc  *nats.Conn
	js  jetstream.JetStream
}

// start runs an engine on its embedded NATS; with, when given, adjusts its options.
func start(t *testing.T, with ...func(*app.Options)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	o := app.Options{DataDir: t.TempDir(), PolicyDir: "../e2e/testdata/policies", Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", PolicyReload: -1, SweepInterval: 100 * time.Millisecond}
	for _, f := range with {
		f(&o)
	}
	a, err := app.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	nc, err := nats.Connect(a.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, a: a, nc: nc, js: js}
}

func (v *env) publish(subject string, data []byte) {
	v.t.Helper()
	if _, err := v.js.Publish(v.ctx, subject, data); err != nil {
		v.t.Fatal(err)
	}
}

// waitFor polls the audit log until n events match f.
func (v *env) waitFor(f audit.Filter, n int) []audit.Event {
	v.t.Helper()
	for {
		evs, err := v.a.Store.Query(v.ctx, f)
		if err != nil {
			v.t.Fatal(err)
		}
		if len(evs) >= n {
			return evs
		}
		select {
		case <-v.ctx.Done():
			v.t.Fatalf("%d of %d events like %+v", len(evs), n, f)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// planOn makes the engine dispatch one action to node (no agent runs: it stays
// dispatched) and returns its request.
func (v *env) planOn(node string) executors.Request {
	v.t.Helper()
	s := signal.Signal{Source: "test", Kind: signal.KindPacketDrops, Node: node, Status: signal.Firing,
		Fingerprint: "fp-" + node, StartsAt: time.Now().UTC()}
	if err := v.a.Engine.Submit(v.ctx, []signal.Signal{s}); err != nil {
		v.t.Fatal(err)
	}
	ev := v.waitFor(audit.Filter{Type: audit.Dispatched, Node: node}, 1)[0]
	row, err := v.a.Store.Action(v.ctx, ev.ActionID)
	if err != nil {
		v.t.Fatal(err)
	}
	var req executors.Request
	if err := json.Unmarshal(row.Request, &req); err != nil {
		v.t.Fatal(err)
	}
	req.Attempt = row.Attempt
	return req
}

func result(req executors.Request, mod func(*executors.Result)) []byte {
	r := executors.Result{ID: req.ID, Action: req.Action, Node: req.Node, CorrelationID: req.CorrelationID, Attempt: req.Attempt,
		Status: executors.Succeeded, Message: "done", Before: map[string]string{"x": "1"}, After: map[string]string{"x": "2"}}
	if mod != nil {
		mod(&r)
	}
	b, _ := json.Marshal(r)
	return b
}

func TestResultsAreNotBelieved(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an engine with NATS")
	}
	v := start(t)
	reqA := v.planOn("node-a")
	reqB := v.planOn("node-b")
	cases := []struct {
		name, subject string
		data          []byte
		reason        string
	}{
		{"unknown action", bus.ResultSubject("node-a"), result(reqA, func(r *executors.Result) { r.ID = "0123456789abcdef01234567" }),
			"no such action in the ledger"},
		{"another node's action, on this node's subject", bus.ResultSubject("node-a"), result(reqB, nil),
			"sent on remedy.results.node-a, not on the results subject of node node-b the action is for"},
		{"naming another node", bus.ResultSubject("node-a"), result(reqA, func(r *executors.Result) { r.Node = "node-b" }),
			`names node "node-b"; the action is for node "node-a"`},
		{"a stale attempt", bus.ResultSubject("node-a"), result(reqA, func(r *executors.Result) { r.Attempt = 2 }),
			"for attempt 2; the action is at attempt 1"},
		{"undecodable", bus.ResultSubject("node-a"), []byte("{not json"), "undecodable result"},
		{"a refusal of a forged copy", bus.ResultSubject("node-a"), result(reqA, func(r *executors.Result) {
			r.Status, r.Unverified, r.Message = executors.Refused, true, "bad signature"
		}), "the agent refused a copy of the action that failed verification"},
	}
	for i, tc := range cases {
		v.publish(tc.subject, tc.data)
		evs := v.waitFor(audit.Filter{Type: audit.ResultRefused}, i+1)
		var d struct{ Reason, Subject string }
		_ = json.Unmarshal(evs[0].Detail, &d)
		if !strings.HasPrefix(d.Reason, tc.reason) || d.Subject != tc.subject {
			t.Errorf("%s: refused with %q on %q; want %q on %q", tc.name, d.Reason, d.Subject, tc.reason, tc.subject)
		}
	}
	// None of them moved an action or counted as its result.
	if res, _ := v.a.Store.Query(v.ctx, audit.Filter{Type: audit.ActionResult}); len(res) != 0 {
		t.Fatalf("a refused result was recorded as a result: %+v", res)
	}
	for _, req := range []executors.Request{reqA, reqB} {
		if row, _ := v.a.Store.Action(v.ctx, req.ID); row.State != audit.StateDispatched {
			t.Fatalf("%s is %s after forged results; want dispatched", req.Node, row.State)
		}
	}
	// The real result, from its node's subject, is accepted once; a repeat is not a
	// second result, and a later different report is refused.
	v.publish(bus.ResultSubject("node-a"), result(reqA, nil))
	v.publish(bus.ResultSubject("node-a"), result(reqA, nil))
	got := v.waitFor(audit.Filter{Type: audit.ActionResult}, 1)
	if len(got) != 1 || got[0].Actor != "agent:node-a" || got[0].Outcome != string(executors.Succeeded) {
		t.Fatalf("results = %+v", got)
	}
	v.publish(bus.ResultSubject("node-a"), result(reqA, func(r *executors.Result) { r.Status = executors.Failed }))
	evs := v.waitFor(audit.Filter{Type: audit.ResultRefused}, len(cases)+1)
	if !strings.Contains(string(evs[0].Detail), "the action is succeeded already") {
		t.Fatalf("a second, different result: %s", evs[0].Detail)
	}
	if row, _ := v.a.Store.Action(v.ctx, reqA.ID); row.State != audit.StateSucceeded {
		t.Fatalf("node-a's action is %s; want succeeded", row.State)
	}
}

func TestSignalsAreNotBelieved(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an engine with NATS")
	}
	v := start(t)
	// node-a reports a signal about node-b on its own subject.
	s := signal.Signal{Source: "remedy-agent", Kind: signal.KindPacketDrops, Node: "node-b", Status: signal.Firing,
		Fingerprint: "forged", StartsAt: time.Now().UTC()}
	b, err := signal.EncodeCloudEvent(&s, "remedy-agent/node-a")
	if err != nil {
		t.Fatal(err)
	}
	subject := "remedy.signals.node-a.packet_drops"
	v.publish(subject, b)
	rej := v.waitFor(audit.Filter{Type: audit.SignalRejected}, 1)
	var d struct{ Error, Subject string }
	_ = json.Unmarshal(rej[0].Detail, &d)
	if d.Subject != subject || !strings.Contains(d.Error, `the event is for node "node-b"`) {
		t.Fatalf("rejection = %s", rej[0].Detail)
	}
	// The same signal on node-b's own subject is believed.
	good := s
	good.Fingerprint = "real"
	b, _ = signal.EncodeCloudEvent(&good, "remedy-agent/node-b")
	v.publish(good.Subject(), b)
	v.waitFor(audit.Filter{Type: audit.Dispatched, Node: "node-b"}, 1)
	decisions := v.waitFor(audit.Filter{Type: audit.Decision, Node: "node-b"}, 1)
	if len(decisions) != 1 {
		t.Fatalf("%d decisions for node-b; want only the real signal's", len(decisions))
	}
	// Signals taken in over NATS are counted by source.
	if n := counter(t, v.a, "remedy_signals_total", "remedy-agent"); n != 1 {
		t.Fatalf("remedy_signals_total{source=remedy-agent} = %v; want 1", n)
	}
}

func counter(t *testing.T, a *app.App, name, source string) float64 {
	t.Helper()
	mfs, err := a.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// Run-once survives the agent's journal: after a node's state directory is wiped, a
// captured, validly signed envelope re-published within its deadline is not run again.
// The agent asks the engine about an action its journal has never seen, and the engine
// answers from its ledger.
func TestReplayAfterJournalLossIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an engine with NATS and an agent")
	}
	const node = "node-r"
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := start(t, func(o *app.Options) { o.DryRun, o.SigningKey = true, key })
	ctx, a, nc, js := v.ctx, v.a, v.nc, v.js
	// An eavesdropper on the node's subject keeps the signed envelope.
	captured := make(chan []byte, 4)
	sub, err := nc.Subscribe(bus.ActionSubject(node), func(m *nats.Msg) { captured <- m.Data })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	runAgent := func(stateDir string) (stop func()) {
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- agent.Run(actx, agent.Options{Node: node, NATSURL: a.NATSURL(), StateDir: stateDir, Registry: reg,
				VerifyKey: pub, AskEngine: true})
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	state := t.TempDir()
	stop := runAgent(state)
	if err := a.Engine.Submit(ctx, []signal.Signal{{Source: "test", Kind: signal.KindPacketDrops, Node: node,
		Status: signal.Firing, Fingerprint: "replay", StartsAt: time.Now().UTC()}}); err != nil {
		t.Fatal(err)
	}
	first := v.waitFor(audit.Filter{Type: audit.ActionResult, Node: node}, 1)[0]
	if first.Outcome != string(executors.DryRun) {
		t.Fatalf("first run: %s", first.Outcome)
	}
	envelope := <-captured
	stop()

	// The node is re-imaged: same name, empty state directory.
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	stop = runAgent(t.TempDir())
	defer stop()
	if _, err := js.Publish(ctx, bus.ActionSubject(node), envelope, jetstream.WithMsgID("replayed-copy")); err != nil {
		t.Fatal(err)
	}
	refused := v.waitFor(audit.Filter{Type: audit.ResultRefused, Node: node}, 1)[0]
	if !strings.Contains(string(refused.Detail), "the engine says not to run it: the action is dry_run") {
		t.Fatalf("the replay was not refused by the engine's answer: %s", refused.Detail)
	}
	if n := len(v.waitFor(audit.Filter{Type: audit.ActionResult, Node: node}, 1)); n != 1 {
		t.Fatalf("%d results; the replayed action must not count as a second run", n)
	}
}
