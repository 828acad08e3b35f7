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
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
)

// TestDeadlineIsAPolicyError: a decision the policy's deadline cuts off (the issue's
// numbers.range(1, 1e7)) is recorded as outcome policy_error with the reason, and nothing
// is dispatched.
func TestDeadlineIsAPolicyError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mod := "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": sprintf(\"%d\", [n])} if {\n\tn := count([x | some x in numbers.range(1, 1e7)])\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.LoadWith(ctx, dir, policy.Options{EvalTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "audit.db"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &capture{}
	e, err := engine.New(engine.Options{Store: st, Policy: policy.NewHolder(pol), Actions: executors.NewRegistry(), Dispatcher: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Handle(ctx, sig("irq_skew", "node-1")); err != nil {
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
