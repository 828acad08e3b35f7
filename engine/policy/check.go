package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/remedyhq/remedy/executors"
)

// CatalogueChecker adapts an action registry to a Checker.
func CatalogueChecker(r *executors.Registry) Checker {
	return func(action string, params json.RawMessage) error {
		_, err := r.Check(action, params)
		return err
	}
}

// RunTests runs the tests of the policy at src (test_ rules, usually in *_test.rego),
// those whose name matches filter (a regular expression; empty runs all), and returns
// their results ordered by file and line.
func RunTests(ctx context.Context, src, filter string, timeout time.Duration) ([]*tester.Result, error) {
	set, err := readSource(src)
	if err != nil {
		return nil, err
	}
	return runTests(ctx, set, timeout, filter)
}

func runTests(ctx context.Context, set *fileSet, timeout time.Duration, filter string) ([]*tester.Result, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	r := tester.NewRunner().SetCompiler(newCompiler()).SetDefaultRegoVersion(ast.RegoV1).SetStore(inmem.NewFromObject(set.data)).
		SetModules(set.modules).SetTimeout(timeout).Filter(filter).RaiseBuiltinErrors(true)
	ch, err := r.RunTests(ctx, nil)
	if err != nil {
		var errs ast.Errors
		if errors.As(err, &errs) {
			return nil, explainDenied(errs) // compile errors: ast.Errors with file and line
		}
		return nil, err
	}
	var out []*tester.Result
	for res := range ch {
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Location, out[j].Location
		if a == nil || b == nil || a.File != b.File {
			return a != nil && (b == nil || a.File < b.File)
		}
		return a.Row < b.Row
	})
	return out, nil
}

func summarize(results []*tester.Result) TestSummary {
	var s TestSummary
	for _, r := range results {
		if r.Pass() {
			s.Passed++
		} else if !r.Skip {
			s.Failed++
		}
	}
	return s
}

// testFailure lists the failed tests, one per line with its file and line.
func testFailure(results []*tester.Result, s TestSummary) error {
	var lines []string
	for _, r := range results {
		if r.Pass() || r.Skip {
			continue
		}
		line := fmt.Sprintf("  %s: %s.%s: FAIL", where(r.Location), r.Package, r.Name)
		if r.Error != nil {
			line = fmt.Sprintf("  %s: %s.%s: ERROR: %v", where(r.Location), r.Package, r.Name, r.Error)
		}
		lines = append(lines, line)
	}
	return fmt.Errorf("%w: %d of %d:\n%s", ErrTestsFailed, s.Failed, s.Failed+s.Passed, strings.Join(lines, "\n"))
}

func where(loc *ast.Location) string {
	if loc == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d", loc.File, loc.Row)
}

// CheckCatalogue checks the decisions a policy can be seen to make against the action
// catalogue, in two ways, because a decision's parameters are mostly computed from the
// input (a ring size from the NIC's maximum) and so can only be seen by evaluating:
//
//  1. Rule heads. Every `decisions contains {"action": A, ...}` whose action is a
//     constant must name an action the catalogue knows; when its params are constant
//     too, they are checked in full.
//  2. The policy's own tests. Every input a test gives the policy (`with input as X`,
//     where X does not depend on the test's local variables) is evaluated and each
//     decision made is checked in full, parameters included.
//
// A decision seen neither way is checked when it is made, and refused and audited there.
// The error wraps ErrCatalogue and lists every mismatch with its file and line.
func CheckCatalogue(ctx context.Context, p *Policy, check Checker) error {
	var problems []string
	for _, name := range p.set.names {
		m := p.set.modules[name]
		if m == nil || IsTestFile(name) || m.Package.Path.String() != "data.remedy" {
			continue
		}
		for _, r := range m.Rules {
			problems = append(problems, checkHead(r, check)...)
		}
	}
	inputs, err := testInputs(ctx, p.set)
	if err != nil {
		return err
	}
	for _, in := range inputs {
		ds, err := p.Eval(ctx, in.value)
		if err != nil {
			problems = append(problems, fmt.Sprintf("  %s: test input: %v", where(in.loc), err))
			continue
		}
		for _, d := range ds {
			if err := check(d.Action, d.Params); err != nil {
				problems = append(problems, fmt.Sprintf("  %s: test input: decision %s %s: %v", where(in.loc), d.Action, d.Params, err))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n%s", ErrCatalogue, strings.Join(dedupe(problems), "\n"))
	}
	return nil
}

// checkHead checks a `decisions contains {...}` rule head whose action is a constant.
func checkHead(r *ast.Rule, check Checker) []string {
	if r.Head.Name.String() != "decisions" && r.Head.Ref().String() != "decisions" || r.Head.Key == nil {
		return nil
	}
	obj, ok := r.Head.Key.Value.(ast.Object)
	if !ok {
		return nil
	}
	at := obj.Get(ast.StringTerm("action"))
	if at == nil {
		return nil
	}
	action, ok := at.Value.(ast.String)
	if !ok {
		return nil
	}
	var params json.RawMessage
	pt := obj.Get(ast.StringTerm("params"))
	if pt != nil && pt.IsGround() {
		v, err := ast.JSON(pt.Value)
		if err == nil {
			params, _ = json.Marshal(v)
		}
	}
	err := check(string(action), params)
	switch {
	case err == nil:
		return nil
	case params != nil || errors.Is(err, executors.ErrUnknownAction):
		return []string{fmt.Sprintf("  %s: decision %s: %v", where(r.Location), string(action), err)}
	}
	return nil // computed params: checked through the tests' inputs
}

type testInput struct {
	value any
	loc   *ast.Location
}

// testInputs evaluates every `with input as X` of the test modules that can be
// evaluated on its own (X is a constant, a rule, or a call over them), once per
// distinct input.
func testInputs(ctx context.Context, set *fileSet) ([]testInput, error) {
	c := newCompiler()
	if c.Compile(set.modules); c.Failed() {
		return nil, fmt.Errorf("compile policies with tests: %w", explainDenied(c.Errors))
	}
	store := inmem.NewFromObject(set.data)
	seen := map[string]bool{}
	var out []testInput
	for _, name := range set.names {
		m := set.modules[name]
		if m == nil || !IsTestFile(name) {
			continue
		}
		var withs []*ast.With
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			for _, w := range e.With {
				if w.Target.String() == "input" {
					withs = append(withs, w)
				}
			}
			return false
		})
		for _, w := range withs {
			q := ast.NewBody(ast.Equality.Expr(ast.VarTerm("__remedy_input__"), w.Value))
			rs, err := rego.New(rego.Compiler(c), rego.Store(store), rego.ParsedQuery(q),
				rego.ParsedPackage(m.Package), rego.ParsedImports(m.Imports)).Eval(ctx)
			if err != nil || len(rs) != 1 {
				continue // depends on the test's local variables
			}
			v := rs[0].Bindings["__remedy_input__"]
			key, _ := json.Marshal(v)
			if seen[string(key)] {
				continue
			}
			seen[string(key)] = true
			out = append(out, testInput{value: v, loc: w.Location})
		}
	}
	return out, nil
}

func dedupe(lines []string) []string {
	seen := map[string]bool{}
	out := lines[:0]
	for _, l := range lines {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}
