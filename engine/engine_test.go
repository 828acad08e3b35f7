package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/signal"
)

const testPolicy = `package remedy

decisions contains {"action": "sysctl.set", "params": {"key": "net.core.netdev_max_backlog", "value": 8192}, "risk": "low", "reason": "backlog"} if {
	input.signal.status == "firing"
	input.signal.kind == "packet_drops"
}

decisions contains {"action": "no.such.action", "reason": "typo"} if {
	input.signal.kind == "typo"
}

decisions contains {"action": "sysctl.set", "params": {"key": "kernel.panic", "value": 1}, "reason": "outside allow-list"} if {
	input.signal.kind == "bad_params"
}

decisions contains {"action": "sysctl.set", "params": {"key": "net.core.netdev_budget", "value": 600}, "reason": count(input.history)} if {
	input.signal.kind == "history"
}

decisions contains "not an object" if {
	input.signal.kind == "conflict"
}
`

// capture is the dispatch seam in a unit test; the real NATS dispatcher is exercised by
// the end-to-end tests in test/.
type capture struct {
	mu   sync.Mutex
	reqs []executors.Request
	fail error
}

func (c *capture) Dispatch(_ context.Context, r executors.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.reqs = append(c.reqs, r)
	return nil
}

func (c *capture) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := map[string]bool{}
	for _, r := range c.reqs {
		ids[r.ID] = true
	}
	return len(ids)
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reqs)
}

type env struct {
	e     *engine.Engine
	store audit.Store
	disp  *capture
}

func newEnvB(b *testing.B) *env { return newEnv(b, b.TempDir(), false) }

func newEnv(t testing.TB, dir string, dryRun bool) *env {
	t.Helper()
	pdir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "p.rego"), []byte(testPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(context.Background(), pdir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "audit.db"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
		t.Fatal(err)
	}
	d := &capture{}
	e, err := engine.New(engine.Options{Store: st, Policy: policy.NewHolder(pol), Actions: reg, Dispatcher: d,
		DryRun: dryRun, SweepInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &env{e: e, store: st, disp: d}
}

func sig(kind, node string) signal.Signal {
	return signal.Signal{Source: "test", Kind: signal.Kind(kind), Node: node, Status: signal.Firing,
		Fingerprint: kind + node, StartsAt: time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)}
}

func events(t *testing.T, st audit.Store, typ audit.Type) []audit.Event {
	t.Helper()
	evs, err := st.Query(context.Background(), audit.Filter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestHandleDecidesRecordsAndDispatches(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	s := sig("packet_drops", "node-1")
	if err := v.e.Handle(ctx, s); err != nil {
		t.Fatal(err)
	}
	if v.disp.count() != 1 {
		t.Fatalf("dispatched %d actions, want 1", v.disp.count())
	}
	req := v.disp.reqs[0]
	if req.Action != "sysctl.set" || req.Node != "node-1" || req.DryRun || req.Deadline.IsZero() ||
		req.CorrelationID != engine.CorrelationID(&s) || string(req.Params) != `{"key":"net.core.netdev_max_backlog","value":8192}` {
		t.Fatalf("request = %+v", req)
	}
	dec := events(t, v.store, audit.Decision)
	if len(dec) != 1 || dec[0].Outcome != "act" || dec[0].PolicyRev == "" || dec[0].InputHash == "" {
		t.Fatalf("decision events = %+v", dec)
	}
	for _, typ := range []audit.Type{audit.SignalReceived, audit.ActionPlanned, audit.Dispatched} {
		evs := events(t, v.store, typ)
		if len(evs) != 1 || evs[0].CorrelationID != req.CorrelationID {
			t.Fatalf("%s events = %+v", typ, evs)
		}
	}
}

func TestDuplicateDeliveryProducesNoSecondAction(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	s := sig("packet_drops", "node-1")
	for range 3 {
		if err := v.e.Handle(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := v.e.Submit(ctx, []signal.Signal{s}); err != nil {
			t.Fatal(err)
		}
	}
	v.e.Start(ctx)
	time.Sleep(200 * time.Millisecond) // let the workers and a few sweeps run
	v.e.Stop()
	if v.disp.count() != 1 {
		t.Fatalf("dispatched %d times, want 1", v.disp.count())
	}
	if n := len(events(t, v.store, audit.SignalReceived)); n != 1 {
		t.Fatalf("%d signal events, want 1", n)
	}
	if n := len(events(t, v.store, audit.Decision)); n != 1 {
		t.Fatalf("%d decision events, want 1", n)
	}
}

func TestRejections(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	for _, tc := range []struct {
		kind, outcome, rejection string
	}{
		{"typo", "rejected", `unknown action "no.such.action"`},
		{"bad_params", "rejected", `sysctl.set: invalid parameters: key "kernel.panic" is not in the allow-list`},
		{"conflict", "policy_error", ""},
		{"unrelated", "none", ""},
	} {
		s := sig(tc.kind, "node-2")
		if err := v.e.Handle(ctx, s); err != nil {
			t.Fatal(err)
		}
		evs, _ := v.store.Query(ctx, audit.Filter{CorrelationID: engine.CorrelationID(&s)})
		var dec, rej *audit.Event
		for i := range evs {
			switch evs[i].Type {
			case audit.Decision:
				dec = &evs[i]
			case audit.ActionRejected:
				rej = &evs[i]
			}
		}
		if dec == nil || dec.Outcome != tc.outcome {
			t.Fatalf("%s: decision = %+v, want outcome %s", tc.kind, dec, tc.outcome)
		}
		if tc.rejection != "" {
			var d struct{ Error string }
			if rej == nil || json.Unmarshal(rej.Detail, &d) != nil || !hasPrefix(d.Error, tc.rejection) {
				t.Fatalf("%s: rejection = %+v", tc.kind, rej)
			}
		}
	}
	if v.disp.count() != 0 {
		t.Fatalf("rejected decisions must not dispatch; dispatched %d", v.disp.count())
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

func TestInvalidSignalIsRecordedAsRejected(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	bad := sig("packet_drops", "")
	if err := v.e.Submit(ctx, []signal.Signal{bad}); err != nil {
		t.Fatal(err)
	}
	rej := events(t, v.store, audit.SignalRejected)
	if len(rej) != 1 {
		t.Fatalf("rejected events = %d", len(rej))
	}
	var d struct{ Error string }
	_ = json.Unmarshal(rej[0].Detail, &d)
	if d.Error != "signal has no node" {
		t.Fatalf("rejection reason = %q", d.Error)
	}
}

func TestDryRunReachesTheRequest(t *testing.T) {
	v := newEnv(t, t.TempDir(), true)
	defer v.store.Close()
	if err := v.e.Handle(context.Background(), sig("packet_drops", "n")); err != nil {
		t.Fatal(err)
	}
	if !v.disp.reqs[0].DryRun {
		t.Fatal("global dry-run must mark every request")
	}
	if p := events(t, v.store, audit.ActionPlanned); p[0].Outcome != "dry_run" {
		t.Fatalf("planned outcome = %s", p[0].Outcome)
	}
}

// A crash between recording a signal and deciding it, and a NATS outage at dispatch,
// are both repaired by the sweep of a (re)started engine.
func TestRecoveryAfterCrashAndDispatchOutage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := newEnv(t, dir, false)
	s1, s2 := sig("packet_drops", "a"), sig("packet_drops", "b")
	// Recorded, never decided: Submit without Start.
	if err := v.e.Submit(ctx, []signal.Signal{s1}); err != nil {
		t.Fatal(err)
	}
	// Decided, dispatch failed.
	v.disp.fail = errors.New("nats: no responders")
	if err := v.e.Handle(ctx, s2); err != nil {
		t.Fatal(err)
	}
	v.store.Close()

	w := newEnv(t, dir, false) // the restarted engine, same database
	defer w.store.Close()
	w.e.Start(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for w.disp.count() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	w.e.Stop()
	if w.disp.count() != 2 {
		t.Fatalf("after restart dispatched %d, want 2", w.disp.count())
	}
	if n := len(events(t, w.store, audit.Decision)); n != 2 {
		t.Fatalf("%d decisions, want 2", n)
	}
	if n := len(events(t, w.store, audit.Dispatched)); n != 2 {
		t.Fatalf("%d dispatched events, want 2", n)
	}
}

func TestHistoryReachesThePolicy(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	if err := v.e.Handle(ctx, sig("packet_drops", "h")); err != nil {
		t.Fatal(err)
	}
	in, err := v.e.BuildInput(ctx, sig("history", "h"))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.History) != 1 || in.History[0].Action != "sysctl.set" || in.History[0].Type != string(audit.ActionPlanned) {
		t.Fatalf("history = %+v", in.History)
	}
}

func TestExpiredActionIsNotDispatched(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	v.disp.fail = errors.New("down")
	if err := v.e.Handle(ctx, sig("packet_drops", "x")); err != nil {
		t.Fatal(err)
	}
	v.disp.fail = nil
	// The same engine much later: reopen with a clock past the deadline.
	planned := events(t, v.store, audit.ActionPlanned)
	var req executors.Request
	_ = json.Unmarshal(planned[0].Detail, &req)
	late := engine.ExportDispatch(v.e, req.Deadline.Add(time.Second))
	late(ctx, req)
	if v.disp.count() != 0 {
		t.Fatal("an expired action was dispatched")
	}
	res := events(t, v.store, audit.ActionResult)
	if len(res) != 1 || res[0].Outcome != string(executors.Expired) {
		t.Fatalf("results = %+v", res)
	}
}

// An agent gone past an action's deadline: the engine stops publishing the action
// again and, after a grace period, records it expired; it never runs late.
func TestUnansweredActionExpiresAfterItsDeadline(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	if err := v.e.Handle(ctx, sig("packet_drops", "gone")); err != nil {
		t.Fatal(err)
	}
	if v.disp.count() != 1 {
		t.Fatalf("dispatched %d times, want 1", v.disp.count())
	}
	var req executors.Request
	_ = json.Unmarshal(events(t, v.store, audit.ActionPlanned)[0].Detail, &req)
	grace := 2 * time.Minute // RedispatchAfter's default

	engine.ExportRedispatchStale(v.e, req.Deadline.Add(-time.Second))(ctx) // stale, still in time
	if v.disp.count() != 2 {
		t.Fatalf("an unanswered action within its deadline was published %d times, want 2", v.disp.count())
	}
	engine.ExportRedispatchStale(v.e, req.Deadline.Add(grace/2))(ctx) // past the deadline, in the grace
	if v.disp.count() != 2 || len(events(t, v.store, audit.ActionResult)) != 0 {
		t.Fatalf("past its deadline: published %d times, %d results; want 2 and none yet", v.disp.count(),
			len(events(t, v.store, audit.ActionResult)))
	}
	engine.ExportRedispatchStale(v.e, req.Deadline.Add(grace+time.Second))(ctx)
	res := events(t, v.store, audit.ActionResult)
	if v.disp.count() != 2 || len(res) != 1 || res[0].Outcome != string(executors.Expired) || res[0].ActionID != req.ID {
		t.Fatalf("after the grace: published %d times, results %+v; want 2 and one expired", v.disp.count(), res)
	}
	var r executors.Result
	_ = json.Unmarshal(res[0].Detail, &r)
	if !strings.Contains(r.Message, "no result from the node's agent by the deadline") {
		t.Fatalf("expiry message = %q", r.Message)
	}
	// The agent comes back and reports the action expired too: still one result.
	b, _ := json.Marshal(executors.Result{ID: req.ID, Action: req.Action, Node: req.Node, Attempt: 1,
		CorrelationID: req.CorrelationID, Status: executors.Expired, Message: "deadline passed"})
	if err := v.e.AcceptResult(ctx, bus.ResultSubject(req.Node), b); err != nil {
		t.Fatal(err)
	}
	if n := len(events(t, v.store, audit.ResultRefused)); n != 0 {
		t.Fatalf("the agent's own expiry report was refused: %d refusals", n)
	}
	if n := len(events(t, v.store, audit.ActionResult)); n != 1 {
		t.Fatalf("%d results after the agent's own expiry report, want 1", n)
	}
}

// The policy's view of a node's history is read incrementally (engine/history.go): it
// must still see what others append to the audit log (another replica, the approval
// service), once each, newest first, and the same as a cold engine reading it in full.
func TestHistorySeesEveryWriterOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := newEnv(t, dir, false)
	defer v.store.Close()
	history := func(e *engine.Engine) []string {
		t.Helper()
		in, err := e.BuildInput(ctx, sig("history", "h"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range in.History {
			b, _ := json.Marshal(h)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			out = append(out, m["type"].(string)+"/"+m["outcome"].(string))
		}
		return out
	}
	if got := history(v.e); len(got) != 0 {
		t.Fatalf("history before anything happened = %v", got)
	}
	if err := v.e.Handle(ctx, sig("packet_drops", "h")); err != nil {
		t.Fatal(err)
	}
	if got := history(v.e); len(got) != 1 || got[0] != "action.planned/planned" {
		t.Fatalf("history after an action = %v", got)
	}
	// Another writer: a verification for node h, and an event on another node.
	if _, err := v.store.Append(ctx,
		audit.Event{Type: audit.Verification, Node: "h", Action: "sysctl.set", Outcome: "fixed", Key: "verify:x"},
		audit.Event{Type: audit.Verification, Node: "other", Action: "sysctl.set", Outcome: "fixed", Key: "verify:y"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"verification/fixed", "action.planned/planned"}
	for range 2 { // read twice: nothing is added twice
		if got := history(v.e); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("history after another writer = %v, want %v", got, want)
		}
	}
	cold, err := engine.New(engine.Options{Store: v.store, Policy: policyHolder(t, dir), Actions: executors.NewRegistry(), Dispatcher: &capture{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := history(cold); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("a cold engine reads %v, want %v", got, want)
	}
}

func policyHolder(t *testing.T, dir string) *policy.Holder {
	t.Helper()
	pol, err := policy.Load(context.Background(), filepath.Join(dir, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	return policy.NewHolder(pol)
}

// During a storm (many webhook batches waiting for their commit) the workers decide one
// signal at a time; otherwise they do not wait for each other.
func TestStormLeavesOneDecisionAtATime(t *testing.T) {
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	v.e.Start(ctx)
	defer func() { cancel(); v.e.Stop() }()
	yield := engine.ExportStorm(v.e, 0)
	a, b := yield(), yield() // calm: both go at once
	a()
	b()
	yield = engine.ExportStorm(v.e, 16)
	first := yield()
	second := make(chan func())
	go func() { second <- yield() }()
	select {
	case <-second:
		t.Fatal("a second decision started during a storm while the first ran")
	case <-time.After(100 * time.Millisecond):
	}
	first()
	select {
	case release := <-second:
		release()
	case <-time.After(5 * time.Second):
		t.Fatal("the second decision never started after the first ended")
	}
}

// The workers' dispatch records go in batches; every one is in the audit log by the
// time the engine has stopped, once, and each action was published once.
func TestWorkersRecordEveryDispatch(t *testing.T) {
	v := newEnv(t, t.TempDir(), false)
	defer v.store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	v.e.Start(ctx)
	const n = 200
	for i := range n {
		s := sig("packet_drops", fmt.Sprintf("batch-%d", i))
		if err := v.e.Submit(ctx, []signal.Signal{s}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); v.disp.distinct() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d actions published", v.disp.distinct(), n)
		}
	}
	cancel()
	v.e.Stop()
	recorded := map[string]int{}
	for _, ev := range events(t, v.store, audit.Dispatched) {
		recorded[ev.ActionID]++
	}
	if len(recorded) != n {
		t.Fatalf("%d dispatch records after stop, want %d", len(recorded), n)
	}
	for id, c := range recorded {
		if c != 1 {
			t.Fatalf("action %s recorded dispatched %d times", id, c)
		}
	}
	if v.disp.count() != n {
		t.Fatalf("published %d times, want %d", v.disp.count(), n)
	}
}
