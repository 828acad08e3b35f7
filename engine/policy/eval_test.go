package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// regoEval is how EvalValue evaluated before it ran the query on topdown itself: a
// rego.PreparedEvalQuery over the same compiler and store, its result read as JSON.
func regoEval(ctx context.Context, p *Policy, input ast.Value) ([]Decision, error) {
	pq, err := rego.New(rego.Query(Query), rego.Compiler(p.compiler), rego.Store(p.store), rego.StoreReadAST(true), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", Query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	return decodeDecisions(rs[0].Expressions[0].Value)
}

func sameEval(t *testing.T, p *Policy, input ast.Value, where string) {
	t.Helper()
	ctx := context.Background()
	want, wantErr := regoEval(ctx, p, input)
	got, gotErr := p.EvalValue(ctx, input)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Errorf("%s: error %v, through rego %v", where, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) { // nil and empty differ: the audit log records which
		t.Errorf("%s: decisions\n%#v\nthrough rego\n%#v", where, got, want)
	}
}

// TestEvalValueDecidesAsRego evaluates every input the library's own tests give it both
// ways: the decisions (their order, params bytes, nil or empty) are the same.
func TestEvalValueDecidesAsRego(t *testing.T) {
	ctx := context.Background()
	p, err := LoadWith(ctx, "../../policies", Options{SkipTests: true})
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := testInputs(ctx, p.set)
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 30 {
		t.Fatalf("%d test inputs", len(inputs))
	}
	decided := 0
	for _, in := range inputs {
		v, err := ast.InterfaceToValue(in.value)
		if err != nil {
			t.Fatal(err)
		}
		if ds, _ := p.EvalValue(ctx, v); len(ds) > 0 {
			decided++
		}
		sameEval(t, p, v, where(in.loc))
	}
	if decided < 20 {
		t.Errorf("only %d of %d test inputs decide something", decided, len(inputs))
	}
}

// TestEvalValueMalformedAsRego: documents that break the contract fail with the same
// error both ways, and the odd-but-valid ones decode the same.
func TestEvalValueMalformedAsRego(t *testing.T) {
	for name, mod := range map[string]string{
		"array": "package remedy\n\ndecisions := input.doc\n",
		"set":   "package remedy\n\ndecisions contains d if some d in input.doc\n",
		// with pushes a frame of the rule cache: inner is cached with two values.
		"with": "package remedy\n\ninner := input.doc\n\ndecisions := array.concat(inner, alt) if {\n\tcount(inner) >= 0\n\talt := inner with input.doc as [{\"action\": \"w\"}]\n\tcount(inner) >= 0\n}\n",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(mod), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := LoadWith(context.Background(), dir, Options{SkipTests: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range []string{
			`[]`, `"nope"`, `[1]`, `[null]`, `[[1]]`, `[{"action": "a", "foo": 1}]`, `[{"action": "a", "risk": "medium"}]`,
			`[{"risk": "low"}]`, `[{"action": ""}]`, `[{"action": 1}]`, `[{"action": "a", "requires_approval": "yes"}]`,
			`[{"action": "a", "reason": 2}]`, `[{"action": "a", "risk": null}]`,
			`[{"action": "a"}]`, `[{"action": "a", "params": null}]`, `[{"action": "a", "params": {}}]`,
			`[{"action": "b", "params": {"z": [1, 2.50, 1e21, null, true, "x"], "a": {"n": -0}}, "risk": "critical", "requires_approval": true, "reason": "r"},
			  {"action": "a", "params": {"k": "v"}, "risk": "high", "requires_approval": false},
			  {"action": "c", "risk": "low"}]`,
		} {
			v := ast.MustParseTerm(`{"doc": ` + doc + `}`).Value
			sameEval(t, p, v, name+" "+doc)
		}
		sameEval(t, p, ast.NewObject(), name+" no doc") // undefined
	}
}

// TestEvalValueReadsDataAsRego: the data document read in parts, missing parts and
// data.system (which a read of the root leaves out) come out the same both ways.
func TestEvalValueReadsDataAsRego(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"data.json": `{"remedy": {"config": {"a": "x", "n": [1, 2.5, 1e21], "o": {"k": null}}}, "system": {"s": 1}, "other": {"v": true}}`,
		"p.rego": `package remedy

decisions := [{"action": data.remedy.config.a, "params": {
	"n": data.remedy.config.n,
	"n1": data.remedy.config.n[1],
	"o": data.remedy.config.o,
	"missing": object.get(data.remedy.config, "missing", "none"),
	"sys": data.system.s,
	"system": [k | some k, _ in data.system],
	"other": data.other,
	"input": [v | some v in data.remedy.config.n; v == input.want],
}}]
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := LoadWith(context.Background(), dir, Options{SkipTests: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`{}`, `{"want": 2.5}`} {
		v := ast.MustParseTerm(in).Value
		sameEval(t, p, v, in)
		ds, err := p.EvalValue(context.Background(), v)
		if err != nil || len(ds) != 1 || ds[0].Action != "x" {
			t.Fatalf("%s: %+v %v", in, ds, err)
		}
		t.Logf("%s: %s", in, ds[0].Params)
	}
}

// TestEvalValueConcurrent evaluates the library's test inputs from several goroutines at
// once (the pooled rule caches and the shared data document): each decides as alone.
func TestEvalValueConcurrent(t *testing.T) {
	ctx := context.Background()
	p, err := LoadWith(ctx, "../../policies", Options{SkipTests: true})
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := testInputs(ctx, p.set)
	if err != nil {
		t.Fatal(err)
	}
	values := make([]ast.Value, len(inputs))
	want := make([][]Decision, len(inputs))
	for i, in := range inputs {
		if values[i], err = ast.InterfaceToValue(in.value); err != nil {
			t.Fatal(err)
		}
		if want[i], err = p.EvalValue(ctx, values[i]); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for round := range 2 {
				for j := range values {
					i := (j + g*7 + round) % len(values)
					got, err := p.EvalValue(ctx, values[i])
					if err != nil || !reflect.DeepEqual(got, want[i]) {
						errs <- fmt.Errorf("%s: %+v, %v; alone %+v", where(inputs[i].loc), got, err, want[i])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestEvalValueCancelled: a cancelled context stops the evaluation with an error.
func TestEvalValueCancelled(t *testing.T) {
	dir := t.TempDir()
	// Long enough that the evaluation is still running when the context is cancelled.
	mod := "package remedy\n\ndecisions contains {\"action\": \"a\", \"reason\": sprintf(\"%d\", [n])} if {\n\tn := count([x | some x in numbers.range(1, input.n); x % 7 == 0])\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadWith(context.Background(), dir, Options{SkipTests: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.EvalValue(ctx, ast.MustParseTerm(`{"n": 100000000}`).Value)
		done <- err
	}()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled evaluation returned no error")
	}
	// Nothing of the cancelled evaluation (its pooled rule cache) leaks into the next.
	ds, err := p.EvalValue(context.Background(), ast.MustParseTerm(`{"n": 20}`).Value)
	if err != nil || len(ds) != 1 || ds[0].Reason != "2" {
		t.Fatalf("%+v, %v", ds, err)
	}
}
