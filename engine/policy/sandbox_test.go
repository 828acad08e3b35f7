package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func writePolicy(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSandboxRefusesBuiltinsAtLoad: a policy that reaches the network, the runtime or
// an answer that changes each run is refused at load with file:line, like a compile
// error, whether the call is in a rule, a function or a test. The http.send
// decision waited 60 s on a local port and was recorded as "none".
func TestSandboxRefusesBuiltinsAtLoad(t *testing.T) {
	for _, tt := range []struct {
		call, why string
	}{
		{`http.send({"method": "GET", "url": "http://127.0.0.1:9/"})`, "network builtin"},
		{`net.lookup_ip_addr("example.com")`, "network builtin"},
		{`net.cidr_contains("10.0.0.0/8", "10.1.2.3")`, "network builtin"},
		{`opa.runtime()`, "runtime (environment, configuration) builtin"},
		{`time.now_ns()`, "non-deterministic (a replay would decide otherwise; use input.now) builtin"},
		{`rand.intn("x", 10)`, "non-deterministic (a replay would decide otherwise; use input.now) builtin"},
		{`uuid.rfc4122("x")`, "non-deterministic (a replay would decide otherwise; use input.now) builtin"},
	} {
		name := strings.SplitN(tt.call, "(", 2)[0]
		mod := "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": sprintf(\"%v\", [x])} if {\n\tinput.signal.kind == \"irq_skew\"\n\tx := " + tt.call + "\n}\n"
		dir := writePolicy(t, map[string]string{"p.rego": mod})
		_, err := LoadWith(context.Background(), dir, Options{SkipTests: true})
		want := "compile policies: 1 error occurred: " + filepath.Join(dir, "p.rego") + ":5: rego_type_error: " + name + " is not allowed in remedy policies (" + tt.why + ")"
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", name, err, want)
		}
	}
	// In a test file: refused when the tests run (they are compiled in the same sandbox).
	dir := writePolicy(t, map[string]string{
		"p.rego":      "package remedy\n\ndecisions := []\n",
		"p_test.rego": "package remedy_test\n\ntest_leak if {\n\thttp.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:9/\"})\n}\n",
	})
	_, err := LoadWith(context.Background(), dir, Options{})
	want := "policy tests: 1 error occurred: " + filepath.Join(dir, "p_test.rego") + ":4: rego_type_error: http.send is not allowed in remedy policies (network builtin)"
	if err == nil || err.Error() != want {
		t.Errorf("http.send in a test:\n got %v\nwant %s", err, want)
	}
}

// TestRefusedChangeKeepsTheRunningPolicy: a change that calls http.send is refused and
// the running policy stays.
func TestRefusedChangeKeepsTheRunningPolicy(t *testing.T) {
	ctx := context.Background()
	dir := writePolicy(t, map[string]string{"p.rego": "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": \"r\"} if input.signal.kind == \"irq_skew\"\n"})
	p, err := LoadWith(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHolder(p)
	bad := "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": r.body} if {\n\tr := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:9/\"})\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reload(ctx, dir, Options{}); err == nil || !strings.Contains(err.Error(), "p.rego:4: rego_type_error: http.send is not allowed in remedy policies") {
		t.Fatalf("reload: %v", err)
	}
	if h.Current() != p {
		t.Fatal("the running policy was replaced")
	}
	ds, err := h.Current().Eval(ctx, map[string]any{"signal": map[string]any{"kind": "irq_skew"}})
	if err != nil || len(ds) != 1 {
		t.Fatalf("the running policy decides %v, %v", ds, err)
	}
}

// TestDeadlineCutsOffAnEvaluation: the count over numbers.range(1, 1e7) (16.2 s
// and 1.6 GB before) is cut off at the deadline with ErrDeadline, the reason in the
// error, and counted.
func TestDeadlineCutsOffAnEvaluation(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": sprintf(\"%d\", [n])} if {\n\tn := count([x | some x in numbers.range(1, 1e7)])\n}\n"})
	cut := prometheus.NewCounter(prometheus.CounterOpts{Name: "cut"})
	p, err := LoadWith(context.Background(), dir, Options{SkipTests: true, EvalTimeout: 50 * time.Millisecond, DeadlineExceeded: cut})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := p.EvalValue(context.Background(), ast.NewObject())
	if !errors.Is(err, ErrDeadline) || ds != nil {
		t.Fatalf("decisions %v, error %v", ds, err)
	}
	if want := "evaluate data.remedy.decisions: policy evaluation cut off at its deadline of 50ms"; err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	if n := testutil.ToFloat64(cut); n != 1 {
		t.Errorf("counted %v cut-offs", n)
	}
	// The caller's own cancellation is not a deadline and is not counted.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.EvalValue(ctx, ast.NewObject()); err == nil || errors.Is(err, ErrDeadline) || testutil.ToFloat64(cut) != 1 {
		t.Errorf("cancelled: %v, counted %v", err, testutil.ToFloat64(cut))
	}
	if p, _ := LoadWith(context.Background(), dir, Options{SkipTests: true}); p.timeout != DefaultEvalTimeout {
		t.Errorf("default deadline %v", p.timeout)
	}
}

// TestBuiltinErrorsAreStrict: a builtin that fails fails the evaluation (recorded as a
// policy error) instead of leaving the rule undefined (recorded as "no decision").
func TestBuiltinErrorsAreStrict(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"reason\": \"r\"} if {\n\tto_number(input.signal.labels.cpus) > 2\n}\n"})
	p, err := LoadWith(context.Background(), dir, Options{SkipTests: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval(context.Background(), map[string]any{"signal": map[string]any{"labels": map[string]any{"cpus": "four"}}})
	if err == nil || !strings.Contains(err.Error(), `p.rego:4: eval_builtin_error: to_number: strconv.ParseFloat: parsing "four": invalid syntax`) {
		t.Errorf("error %v", err)
	}
}

// TestDeadlineWaitsForTheCPU: while the process has not had the deadline's worth of CPU
// since the evaluation started (a starved machine), the deadline waits; once it has, or
// past ten deadlines, it cancels.
func TestDeadlineWaitsForTheCPU(t *testing.T) {
	for _, starved := range []bool{false, true} {
		var mu sync.Mutex
		calls := 0
		cpu := func() time.Duration { // start, then half the deadline, then all of it
			mu.Lock()
			defer mu.Unlock()
			calls++
			if starved || calls == 1 {
				return 0
			}
			return time.Duration(calls-1) * 25 * time.Millisecond
		}
		cancel := topdown.NewCancel()
		dl := startDeadline(50*time.Millisecond, cancel, cpu)
		for !dl.fired.Load() {
			time.Sleep(time.Millisecond)
		}
		dl.stop()
		mu.Lock()
		n := calls
		mu.Unlock()
		if !cancel.Cancelled() || (!starved && n != 3) || (starved && n < 3) {
			t.Errorf("starved=%v: cancelled %v after %d reads of the CPU time", starved, cancel.Cancelled(), n)
		}
	}
}
