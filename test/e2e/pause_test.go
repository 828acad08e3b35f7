package e2e

import (
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/test/testenv"
)

// The kill switch loses nothing: an alert that arrives while remedy is paused waits as a
// paused action; after resume the guards look at it again and it runs. Alertmanager's
// re-send of the still-firing alert (a second alert joins its group) is still one
// signal and one action.
func TestPausedActionRunsAfterResume(t *testing.T) {
	testenv.Heavy(t)
	const node = "e2e-paused"
	s := startStack(t, node)
	am := testenv.StartAlertmanager(t, s.app.URL()+"/webhooks/alertmanager")
	if err := s.app.Guards.Pause(s.ctx, "user:oncall", "change freeze"); err != nil {
		t.Fatal(err)
	}
	alertA := testenv.Alert{Labels: map[string]string{"alertname": "NodePacketDrops", "node": node, "device": "eth0"},
		StartsAt: time.Now().Add(-time.Minute).UTC().Truncate(time.Second)}
	if err := am.Push(s.ctx, alertA); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the paused action", func() bool { return s.count(t, node, audit.ActionPaused) == 1 })
	paused := s.events(t, audit.Filter{Node: node, Type: audit.ActionPaused})[0]
	if paused.Outcome != "paused" {
		t.Fatalf("paused event outcome %q", paused.Outcome)
	}
	time.Sleep(500 * time.Millisecond) // a few sweeps while paused
	if n := s.count(t, node, audit.Dispatched); n != 0 {
		t.Fatalf("%d dispatches while paused", n)
	}
	if row, err := s.app.Store.Action(s.ctx, paused.ActionID); err != nil || row.State != audit.StatePaused {
		t.Fatalf("ledger row = %+v, %v; want paused", row, err)
	}

	if err := s.app.Guards.Resume(s.ctx, "user:oncall", "", "freeze over"); err != nil {
		t.Fatal(err)
	}
	// Alertmanager re-sends the group with the first alert in it.
	alertB := alertA
	alertB.Labels = map[string]string{"alertname": "NodePacketDrops", "node": node, "device": "eth1"}
	if err := am.Push(s.ctx, alertB); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, e := range s.events(t, audit.Filter{Ascending: true}) {
				t.Logf("%d %s %s %s %s %s", e.Seq, e.Type, e.Node, e.Outcome, e.Key, e.Detail)
			}
		}
	}()
	testenv.Eventually(t, 30*time.Second, "both actions' results", func() bool { return s.count(t, node, audit.ActionResult) == 2 })
	if n := s.count(t, node, audit.SignalReceived); n != 2 {
		t.Fatalf("%d signals recorded; want 2 (the re-sent alert is a duplicate)", n)
	}
	trail := s.events(t, audit.Filter{CorrelationID: paused.CorrelationID})
	types := map[audit.Type]int{}
	for _, e := range trail {
		types[e.Type]++
	}
	for typ, want := range map[audit.Type]int{audit.ActionPaused: 1, audit.ActionPlanned: 1, audit.Dispatched: 1, audit.ActionResult: 1} {
		if types[typ] != want {
			t.Errorf("paused incident has %d %s events, want %d (%v)", types[typ], typ, want, types)
		}
	}
	if row, _ := s.app.Store.Action(s.ctx, paused.ActionID); row.State != audit.StateDryRun {
		t.Fatalf("the paused action ended %s; want dry_run (the stack runs in dry run)", row.State)
	}
}
