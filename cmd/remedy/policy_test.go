package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
)

// copyDir copies the files of a flat directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPolicyReplayShowsAChangedThreshold runs the engine with the default library, posts
// two Alertmanager webhooks, and replays them through a copy of the library whose
// default backlog is raised: the backlog decision changes, the IRQ skew one does not.
func TestPolicyReplayShowsAChangedThreshold(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live, cand := filepath.Join(dir, "live"), filepath.Join(dir, "candidate")
	copyDir(t, "../../policies", live)
	copyDir(t, "../../policies", cand)
	cfg := filepath.Join(cand, "config.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), "backlog_default: 8192", "backlog_default: 16384", 1)
	if changed == string(b) {
		t.Fatal("config.yaml has no backlog_default: 8192")
	}
	if err := os.WriteFile(cfg, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}

	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "data"), PolicyDir: live,
		Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	for _, f := range []string{"irq_skew.json", "packet_drops.json"} {
		body, err := os.ReadFile(filepath.Join("../../engine/demo/samples", f))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(a.URL()+"/webhooks/alertmanager", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post %s: %s", f, resp.Status)
		}
	}
	var drops audit.Event
	waitFor(t, func() bool {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.Decision})
		if err != nil || len(evs) < 2 {
			return false
		}
		for _, ev := range evs {
			if ev.Kind == "packet_drops" {
				drops = ev
			}
		}
		return true
	})

	out, err := runCLI("policy", "replay", "--since", "1h", "--policies", cand, "--server", a.URL())
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The edit breaks one of the library's own tests: the replay says so first.
	warned, rest, ok := strings.Cut(out, "\n\nreplayed ")
	if !ok || !strings.HasPrefix(warned, "warning: the candidate's own tests fail") {
		t.Fatalf("no warning about the candidate's failing test:\n%s", out)
	}
	out = "replayed " + rest
	candidate := strings.SplitN(out, "candidate revision ", 2)[1][:16]
	since := strings.SplitN(strings.TrimPrefix(out, "replayed 2 signals recorded since "), " ", 2)[0]
	want := fmt.Sprintf(`replayed 2 signals recorded since %s through candidate revision %s: 1 changed

%s  aks-nodepool1-00000002  packet_drops firing  correlation %s  (decided by revision %s)
  - sysctl.set {"key":"net.core.netdev_max_backlog","value":8192} low
  + sysctl.set {"key":"net.core.netdev_max_backlog","value":16384} low
      because: eth0 drops (backlog_overflow): the softnet backlog overflows; raising net.core.netdev_max_backlog to 16384

note: node and cluster facts are not in the audit log; the candidate saw the recorded signal and the node's action history
`, since, candidate, drops.Time.UTC().Format(time.RFC3339), drops.CorrelationID, a.Policy.Current().Revision)
	if out != want {
		t.Errorf("replay output:\n%s\nwant:\n%s", out, want)
	}
	if candidate == a.Policy.Current().Revision {
		t.Error("the candidate has the running policy's revision")
	}

	// The running library itself replays without a change.
	out, err = runCLI("policy", "replay", "--since", "1h", "--policies", live, "--server", a.URL())
	if err != nil || !strings.HasSuffix(out, ": 0 changed\n") {
		t.Errorf("replay of the running policy: %v\n%s", err, out)
	}
}

func TestPolicyTestCommand(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "../../policies", dir)
	out, err := runCLI("policy", "test", "--policies", dir)
	if err != nil || !strings.Contains(out, "catalogue: every decision seen in the rules and the tests' inputs is valid") {
		t.Fatalf("%v\n%s", err, out)
	}
	// A threshold edit that breaks a scenario fails the tests, with the test's place.
	cfg := filepath.Join(dir, "config.yaml")
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "max_spread_ratio: 0.5", "max_spread_ratio: 0.2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI("policy", "test", "--policies", dir, "--run", "irq_skew")
	if err == nil || !strings.Contains(out, "irq_skew_test.rego:") || !strings.Contains(out, "test_nine_irqs_on_cpus_4_and_5_restart_irqbalance: FAIL") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestPolicyHotReload runs the engine with reloading every 20ms: a broken change is
// rejected and audited while the running policy keeps deciding, a good one is swapped in.
func TestPolicyHotReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "live")
	copyDir(t, "../../policies", live)
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "data"), PolicyDir: live,
		Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", DryRun: true, PolicyReload: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	first := a.Policy.Current().Revision
	policyEvents := func(typ audit.Type) []audit.Event {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: typ, Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	if evs := policyEvents(audit.PolicyLoaded); len(evs) != 1 || evs[0].PolicyRev != first {
		t.Fatalf("policy.loaded at start: %+v", evs)
	}

	// A change whose scenario test fails: rejected, audited, the first policy stays.
	cfg := filepath.Join(live, "config.yaml")
	good, _ := os.ReadFile(cfg)
	bad := strings.Replace(string(good), "max_spread_ratio: 0.5", "max_spread_ratio: 0.2", 1)
	rewriteLater(t, cfg, bad, 1)
	waitFor(t, func() bool { return len(policyEvents(audit.PolicyRejected)) == 1 })
	rej := policyEvents(audit.PolicyRejected)[0]
	var detail struct{ Error string }
	if err := json.Unmarshal(rej.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	if rej.PolicyRev != first || rej.Outcome != audit.OutcomeRefused ||
		!strings.HasPrefix(detail.Error, "policy tests failed: ") ||
		!strings.Contains(detail.Error, "\n  "+live+"/irq_skew_test.rego:43: data.remedy.irq_skew_test.test_nine_irqs_on_cpus_4_and_5_restart_irqbalance: FAIL\n") {
		t.Errorf("policy.rejected: %+v\n%s", rej, detail.Error)
	}
	if a.Policy.Current().Revision != first {
		t.Error("a rejected policy replaced the running one")
	}

	// A change that passes: loaded and audited with its revision.
	rewriteLater(t, cfg, strings.Replace(string(good), `skew_conditions: ["IRQSkewed"]`, `skew_conditions: ["IRQSkewed", "NICIRQSkewed"]`, 1), 2)
	waitFor(t, func() bool { return len(policyEvents(audit.PolicyLoaded)) == 2 })
	loaded := policyEvents(audit.PolicyLoaded)[1]
	if now := a.Policy.Current().Revision; now == first || loaded.PolicyRev != now {
		t.Errorf("running %s after reload; policy.loaded %+v", now, loaded)
	}
}

// rewriteLater writes a file with a modification time step seconds ahead, so the change
// is seen whatever the file system's timestamp granularity.
func rewriteLater(t *testing.T, path, body string, step int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Duration(step) * time.Second)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyEvalOutputs: policy eval prints a table by default and the same decisions
// with -o json and -o yaml.
func TestPolicyEvalOutputs(t *testing.T) {
	in := filepath.Join(t.TempDir(), "signal.json")
	if err := os.WriteFile(in, []byte(`{"source":"test","kind":"irq_skew","node":"worker-1","status":"firing",
		"startsAt":"2026-12-03T12:00:00Z","labels":{"iface":"eth0"},"values":{"spread_ratio":0.2}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("policy", "eval", "--input-file", in, "--policies", "../../policies")
	if err != nil || !strings.Contains(out, ": 1 decision\n") || !strings.Contains(out, "irqbalance.restart  node    low   false") {
		t.Fatalf("table: %v\n%s", err, out)
	}
	out, err = runCLI("policy", "eval", "--input", in, "--policies", "../../policies", "-o", "json") // the old flag name too
	var res evalResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res.Decisions) != 1 || !res.Decisions[0].Valid {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if out, err = runCLI("policy", "eval", "--input-file", in, "--policies", "../../policies", "-o", "yaml"); err != nil ||
		!strings.Contains(out, "- action: irqbalance.restart\n") {
		t.Fatalf("yaml: %v\n%s", err, out)
	}
}
