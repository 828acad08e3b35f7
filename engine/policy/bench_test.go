package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/wire/signal"
)

// benchInput is the field case as the engine builds it: nine queue IRQs on CPUs 4 and
// 5, a node with facts, a few history entries.
func benchInput() engine.Input {
	now := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
	return engine.Input{
		Signal: signal.Signal{
			Source: "agent", Kind: signal.KindIRQSkew, Node: "aks-1", Status: signal.Firing, Fingerprint: "f1",
			StartsAt: now.Add(-time.Minute),
			Labels:   map[string]string{"iface": "eth0", "cpus": "4-5", "busiest_cpu": "5", "subject": "eth0"},
			Values:   map[string]float64{"queue_irqs": 9, "spread_cpus": 2, "possible_cpus": 8, "spread_ratio": 0.25, "busiest_share": 0.6},
		},
		Node: facts.Node{Name: "aks-1", Known: true, Labels: map[string]string{"kubernetes.io/os": "linux", "topology.kubernetes.io/zone": "eu-1a"},
			Conditions: []facts.Condition{{Type: "Ready", Status: "True"}}, AllocatableCPU: 8000, PodCount: 31,
			NICs: map[string]facts.NIC{"eth0": {RxRingMax: 8192, CombinedMax: 8, CombinedCurrent: 8}}},
		Cluster: facts.Cluster{Nodes: 20, Cordoned: 1},
		Now:     now,
	}
}

// cpuTime is the process's user and system CPU time. On a shared machine wall time per
// op mostly measures the other processes; the benchmarks report CPU time per op too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs f b.N times and reports the CPU time per op.
func loop(b *testing.B, f func()) {
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func loadLibrary(b *testing.B) *policy.Policy {
	b.Helper()
	p, err := policy.LoadWith(context.Background(), library, policy.Options{SkipTests: true})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkEval is the evaluation cost per decision on the full library, with the
// prepared query and the input already in AST form.
func BenchmarkEval(b *testing.B) {
	ctx := context.Background()
	p := loadLibrary(b)
	raw, _ := json.Marshal(benchInput())
	var doc any
	_ = json.Unmarshal(raw, &doc)
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		b.Fatal(err)
	}
	ds, err := p.EvalValue(ctx, v)
	if err != nil || len(ds) != 1 || ds[0].Action != "irqbalance.restart" {
		b.Fatalf("decisions %+v, %v", ds, err)
	}
	loop(b, func() {
		if _, err := p.EvalValue(ctx, v); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkEvalNoDecision is a signal no rule acts on: what most evaluations cost.
func BenchmarkEvalNoDecision(b *testing.B) {
	ctx := context.Background()
	p := loadLibrary(b)
	in := benchInput()
	in.Signal.Values["spread_ratio"] = 1
	raw, _ := json.Marshal(in)
	var doc any
	_ = json.Unmarshal(raw, &doc)
	v, _ := ast.InterfaceToValue(doc)
	loop(b, func() {
		if ds, err := p.EvalValue(ctx, v); err != nil || len(ds) != 0 {
			b.Fatal(ds, err)
		}
	})
}

// BenchmarkEvalLongHistory is BenchmarkEval on a node with the longest history the engine
// passes (200 action events, none of them a restart): the rules that read the history
// scan all of it.
func BenchmarkEvalLongHistory(b *testing.B) {
	ctx := context.Background()
	p := loadLibrary(b)
	in := benchInput()
	raw, _ := json.Marshal(in)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	hist := make([]any, 0, 200)
	for i := range 200 {
		t := in.Now.Add(-time.Duration(i) * time.Minute).Format(time.RFC3339Nano)
		typ := []string{"action.planned", "action.result"}[i%2]
		hist = append(hist, map[string]any{"time": t, "type": typ, "action": "sysctl.set", "actionId": fmt.Sprint("a", i/2),
			"outcome": map[string]string{"action.planned": "planned", "action.result": "succeeded"}[typ], "kind": "packet_drops", "correlationId": fmt.Sprint("c", i/2)})
	}
	doc["history"] = hist
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		b.Fatal(err)
	}
	if ds, err := p.EvalValue(ctx, v); err != nil || len(ds) != 1 || ds[0].Action != "irqbalance.restart" {
		b.Fatalf("decisions %+v, %v", ds, err)
	}
	loop(b, func() {
		if _, err := p.EvalValue(ctx, v); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkEngineInputPath is what engine.decide does per signal today: the Input
// struct to JSON, back to a generic value, then to AST, then evaluated.
func BenchmarkEngineInputPath(b *testing.B) {
	ctx := context.Background()
	p := loadLibrary(b)
	in := benchInput()
	loop(b, func() {
		raw, _ := json.Marshal(in)
		var doc any
		_ = json.Unmarshal(raw, &doc)
		if _, err := p.Eval(ctx, doc); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkInputConversion is the conversion alone, without evaluation.
func BenchmarkInputConversion(b *testing.B) {
	in := benchInput()
	loop(b, func() {
		raw, _ := json.Marshal(in)
		var doc any
		_ = json.Unmarshal(raw, &doc)
		if _, err := ast.InterfaceToValue(doc); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkInputValue is the conversion engine.Input.Value does instead: the AST value
// built from the structs, no JSON.
func BenchmarkInputValue(b *testing.B) {
	in := benchInput()
	loop(b, func() {
		_ = in.Value()
	})
}

// BenchmarkEngineInputPathValue is BenchmarkEngineInputPath with Input.Value in place of
// the JSON round trip (engine.decide still marshals the input once, for its hash).
func BenchmarkEngineInputPathValue(b *testing.B) {
	ctx := context.Background()
	p := loadLibrary(b)
	in := benchInput()
	loop(b, func() {
		if _, err := p.EvalValue(ctx, in.Value()); err != nil {
			b.Fatal(err)
		}
	})
}
