package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/webhooks/alertmanager"
)

// policyEngine is an engine over one policy module, loaded with popts, and a gate.
func policyEngine(t *testing.T, mod string, popts policy.Options, gate engine.Gate) (*engine.Engine, audit.Store, *capture) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.LoadWith(context.Background(), dir, popts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "audit.db"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
		t.Fatal(err)
	}
	d := &capture{}
	e, err := engine.New(engine.Options{Store: st, Policy: policy.NewHolder(pol), Actions: reg, Dispatcher: d, Gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	return e, st, d
}

// TestDeadlineIsAPolicyError: a decision the policy's deadline cuts off (the issue's
// numbers.range(1, 1e7)) is recorded as outcome policy_error with the reason, and nothing
// is dispatched.
func TestDeadlineIsAPolicyError(t *testing.T) {
	mod := "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": sprintf(\"%d\", [n])} if {\n\tn := count([x | some x in numbers.range(1, 1e7)])\n}\n"
	e, st, d := policyEngine(t, mod, policy.Options{EvalTimeout: 20 * time.Millisecond}, nil)
	if err := e.Handle(context.Background(), sig("irq_skew", "node-1")); err != nil {
		t.Fatal(err)
	}
	dec := events(t, st, audit.Decision)
	var detail struct{ Error string }
	if len(dec) != 1 || dec[0].Outcome != "policy_error" || json.Unmarshal(dec[0].Detail, &detail) != nil {
		t.Fatalf("decisions %+v", dec)
	}
	if want := "evaluate data.remedy.decisions: policy evaluation cut off at its deadline of 20ms"; detail.Error != want {
		t.Errorf("error %q, want %q", detail.Error, want)
	}
	if d.count() != 0 {
		t.Errorf("dispatched %d", d.count())
	}
}

// holdAll holds every action for a human.
type holdAll struct{}

func (holdAll) Check(context.Context, guard.Candidate) guard.Verdict {
	return guard.Verdict{Outcome: guard.Hold, Reason: guard.ReasonRisk}
}
func (holdAll) Paused() bool { return false }

// TestRequesterIsNormalised: remedy_requested_by is trimmed and lower-cased, so "Alice "
// is the approver alice (who then may not approve it); no label is the engine.
func TestRequesterIsNormalised(t *testing.T) {
	if engine.RequesterLabel != alertmanager.RequesterLabel {
		t.Fatalf("the webhook sets %q, the engine reads %q", alertmanager.RequesterLabel, engine.RequesterLabel)
	}
	mod := "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": \"r\"} if input.signal.kind == \"irq_skew\"\n"
	e, st, _ := policyEngine(t, mod, policy.Options{SkipTests: true}, holdAll{})
	for node, label := range map[string]string{"n1": " Alice ", "n2": "BOB", "n3": ""} {
		s := sig("irq_skew", node)
		if label != "" {
			s.Labels = map[string]string{engine.RequesterLabel: label}
		}
		if err := e.Handle(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	for _, ev := range events(t, st, audit.ApprovalRequested) {
		var h engine.Held
		if err := json.Unmarshal(ev.Detail, &h); err != nil {
			t.Fatal(err)
		}
		got[ev.Node] = ev.Actor + " " + h.Requester
	}
	want := map[string]string{"n1": "user:alice user:alice", "n2": "user:bob user:bob", "n3": "engine engine"}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %q, want %q", n, got[n], w)
		}
	}
}
