// Package policy loads remedy's Rego policies and evaluates them: compiled once into a
// prepared query over the single decision document data.remedy.decisions, evaluated per
// signal with a parsed input.
//
// A policy comes from a directory or an OPA bundle tarball. Loading compiles it, runs its
// own _test.rego tests and checks the decisions it can be seen to make against the
// action catalogue; a policy that fails any of these is refused, and a Holder keeps
// running the one it had. Watch reloads a source when it changes.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/prometheus/client_golang/prometheus"
)

// Query is the decision document every policy set defines.
const Query = "data.remedy.decisions"

// Risk is a decision's risk tier.
type Risk string

// Risk tiers, in increasing order.
const (
	RiskLow      Risk = "low"
	RiskHigh     Risk = "high"
	RiskCritical Risk = "critical"
)

// Decision is one action a policy chose.
type Decision struct {
	Action           string          `json:"action"`
	Params           json.RawMessage `json:"params,omitempty"`
	Risk             Risk            `json:"risk"`
	Reason           string          `json:"reason"`
	RequiresApproval bool            `json:"requires_approval,omitempty"`
}

// Sentinel errors.
var (
	// ErrBadDecision marks a decision document that does not match the contract.
	ErrBadDecision = errors.New("malformed decision")
	// ErrTestsFailed marks a policy whose own tests fail.
	ErrTestsFailed = errors.New("policy tests failed")
	// ErrCatalogue marks a policy whose decisions do not match the action catalogue.
	ErrCatalogue = errors.New("decisions do not match the action catalogue")
)

// Checker validates an action and its parameters against the action catalogue without
// running anything: executors.Registry.Check, reduced to its error.
type Checker func(action string, params json.RawMessage) error

// Options configure LoadWith.
type Options struct {
	// Check, when set, refuses a policy whose decisions visibly do not match the action
	// catalogue (see CheckCatalogue).
	Check Checker
	// SkipTests loads a policy without running its _test.rego tests.
	SkipTests bool
	// TestTimeout bounds each Rego test (default 10s).
	TestTimeout time.Duration
	// EvalTimeout bounds each evaluation of the decision document (default
	// DefaultEvalTimeout; negative: no deadline but the caller's context). An
	// evaluation cut off fails with ErrDeadline.
	EvalTimeout time.Duration
	// DeadlineExceeded, when set, counts the evaluations cut off at EvalTimeout.
	DeadlineExceeded prometheus.Counter
}

// TestSummary counts a policy's own tests as run at load.
type TestSummary struct {
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// Policy is a compiled policy set.
type Policy struct {
	// Revision identifies the policy: the bundle manifest's revision, or for a directory
	// (and a bundle without one) the sha256 of the files' contents.
	Revision string
	// Source is the directory or bundle the policy was loaded from.
	Source string
	// Files are the Rego and data files loaded (tests included), relative to the source.
	Files []string
	// Tests are the policy's own tests, run at load unless skipped.
	Tests TestSummary
	set   *fileSet
	// The compiled modules, the data document and the compiled decision query: an
	// evaluation runs the query on OPA's evaluator directly (see EvalValue).
	compiler *ast.Compiler
	store    storage.Store
	query    ast.Body
	data     dataCache
	// timeout is the evaluation deadline (0: none); cutoffs counts evaluations cut off.
	timeout time.Duration
	cutoffs prometheus.Counter
}

// resultVar is the query variable the decision document is bound to.
const resultVar = ast.Var("decisions")

// IsTestFile reports whether a Rego file holds opa tests; they are run at load and by
// `remedy policy test`, never evaluated for decisions.
func IsTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// Load compiles the policy at src (a directory or a bundle tarball) and runs its tests.
func Load(ctx context.Context, src string) (*Policy, error) {
	return LoadWith(ctx, src, Options{})
}

// LoadWith compiles the policy at src, runs its tests unless o.SkipTests, and checks its
// decisions against o.Check when set. Compile errors are OPA's ast.Errors, each with its
// file and line.
func LoadWith(ctx context.Context, src string, o Options) (*Policy, error) {
	set, err := readSource(src)
	if err != nil {
		return nil, err
	}
	p, err := compile(ctx, set)
	if err != nil {
		return nil, err
	}
	switch {
	case o.EvalTimeout == 0:
		p.timeout = DefaultEvalTimeout
	case o.EvalTimeout > 0:
		p.timeout = o.EvalTimeout
	}
	p.cutoffs = o.DeadlineExceeded
	if !o.SkipTests {
		results, err := runTests(ctx, set, o.TestTimeout, "")
		if err != nil {
			return nil, fmt.Errorf("policy tests: %w", err)
		}
		p.Tests = summarize(results)
		if p.Tests.Failed > 0 {
			return nil, testFailure(results, p.Tests)
		}
	}
	if o.Check != nil {
		if err := CheckCatalogue(ctx, p, o.Check); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func compile(ctx context.Context, set *fileSet) (*Policy, error) {
	p := &Policy{Revision: set.revision, Source: set.src, Files: set.names, set: set}
	mods := map[string]*ast.Module{}
	for _, name := range set.names {
		if m := set.modules[name]; m != nil && !IsTestFile(name) {
			mods[name] = m
		}
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("load policies from %s: no .rego files besides tests", set.src)
	}
	c := newCompiler()
	if c.Compile(mods); c.Failed() {
		return nil, fmt.Errorf("compile policies: %w", explainDenied(c.Errors))
	}
	// The store hands out AST values: reading data.remedy.config then costs no conversion
	// per evaluation.
	p.store = inmem.NewFromObjectWithOpts(set.data, inmem.OptReturnASTValuesOnRead(true))
	root, err := readRoot(ctx, p.store)
	if err != nil {
		return nil, fmt.Errorf("load policies: data: %w", err)
	}
	p.data = dataCache{root: root}
	q, err := c.QueryCompiler().Compile(ast.NewBody(ast.Equality.Expr(ast.VarTerm(string(resultVar)), ast.MustParseTerm(Query))))
	if err != nil {
		return nil, fmt.Errorf("compile policies: %w", err)
	}
	p.compiler, p.query = c, q
	return p, nil
}

// Eval evaluates the decision document for one input. The input is converted to an AST
// value once here, so the evaluator does not round-trip it through JSON.
func (p *Policy) Eval(ctx context.Context, input any) ([]Decision, error) {
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	return p.EvalValue(ctx, v)
}

// EvalValue evaluates the decision document for an input already in AST form.
//
// It runs the compiled query on OPA's evaluator (topdown) directly rather than through
// a rego.PreparedEvalQuery: the same evaluation (rule indexing and early exit on, a read
// transaction on the data) without the per-call metrics, the cancellation goroutine and
// the options a decision does not use. Builtin errors are strict: a builtin that fails
// (to_number("x"), a bad regex) fails the evaluation instead of leaving a rule
// undefined, so a policy error is recorded as one rather than as "no decision". The
// evaluation is cut off at the policy's deadline (Options.EvalTimeout) with ErrDeadline.
func (p *Policy) EvalValue(ctx context.Context, input ast.Value) ([]Decision, error) {
	txn, err := p.store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", Query, err)
	}
	defer p.store.Abort(ctx, txn)
	q := topdown.NewQuery(p.query).
		WithCompiler(p.compiler).
		WithStore(p.store).
		WithTransaction(txn).
		WithInput(ast.NewTerm(input)).
		WithMetrics(metrics.NoOp()).
		WithIndexing(true).
		WithEarlyExit(true).
		WithStrictBuiltinErrors(true)
	q = q.WithBaseCache(p.data)
	vc := getFlatCache()
	defer putFlatCache(vc)
	q = q.WithVirtualCache(vc)
	var dl *deadline
	if ctx.Done() != nil || p.timeout > 0 {
		cancel := topdown.NewCancel()
		if ctx.Done() != nil {
			stop := context.AfterFunc(ctx, cancel.Cancel)
			defer stop()
		}
		if p.timeout > 0 {
			dl = startDeadline(p.timeout, cancel, processCPU)
			defer dl.stop()
		}
		q = q.WithCancel(cancel)
	}
	var doc *ast.Term
	err = q.Iter(ctx, func(qr topdown.QueryResult) error {
		if doc == nil {
			doc = qr[resultVar]
		}
		return nil
	})
	if err != nil {
		if dl != nil && dl.fired.Load() && ctx.Err() == nil {
			if p.cutoffs != nil {
				p.cutoffs.Inc()
			}
			return nil, fmt.Errorf("evaluate %s: %w of %s", Query, ErrDeadline, p.timeout)
		}
		return nil, fmt.Errorf("evaluate %s: %w", Query, err)
	}
	if doc == nil {
		return nil, nil // the document is undefined: no decision
	}
	if ds, ok := decodeDecisionsAST(doc.Value); ok {
		return ds, nil
	}
	v, err := ast.JSON(doc.Value)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", Query, err)
	}
	return decodeDecisions(v)
}

// decodeDecisionsAST reads a well-formed decision document straight from its AST value,
// as decodeDecisions reads its JSON form: the same decisions in the same order, params
// marshalled the same way. Anything else is left to decodeDecisions (ok is false), so a
// malformed document fails with the same error.
func decodeDecisionsAST(v ast.Value) (out []Decision, ok bool) {
	var items interface {
		Len() int
		Iter(func(*ast.Term) error) error
	}
	switch v := v.(type) {
	case ast.Set:
		items = v
	case *ast.Array:
		items = v
	default:
		return nil, false
	}
	out = make([]Decision, 0, items.Len())
	errBad := errors.New("not a well-formed decision")
	err := items.Iter(func(item *ast.Term) error {
		obj, isObj := item.Value.(ast.Object)
		if !isObj {
			return errBad
		}
		var d Decision
		err := obj.Iter(func(k, val *ast.Term) error {
			key, isStr := k.Value.(ast.String)
			if !isStr {
				return errBad
			}
			var fine bool
			switch key {
			case "action":
				var s ast.String
				s, fine = val.Value.(ast.String)
				d.Action = string(s)
			case "risk":
				var s ast.String
				s, fine = val.Value.(ast.String)
				d.Risk = Risk(s)
			case "reason":
				var s ast.String
				s, fine = val.Value.(ast.String)
				d.Reason = string(s)
			case "requires_approval":
				var b ast.Boolean
				b, fine = val.Value.(ast.Boolean)
				d.RequiresApproval = bool(b)
			case "params":
				x, err := ast.JSON(val.Value)
				if err == nil {
					d.Params, err = json.Marshal(x)
				}
				fine = err == nil
			}
			if !fine {
				return errBad
			}
			return nil
		})
		if err != nil {
			return err
		}
		switch d.Risk {
		case "":
			d.Risk = RiskLow
		case RiskLow, RiskHigh, RiskCritical:
		default:
			return errBad
		}
		if d.Action == "" {
			return errBad
		}
		out = append(out, d)
		return nil
	})
	return out, err == nil
}

func decodeDecisions(v any) ([]Decision, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s must be a set or array of objects, got %T", ErrBadDecision, Query, v)
	}
	out := make([]Decision, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: decision %d is %T, not an object", ErrBadDecision, i, item)
		}
		var d Decision
		for k, val := range m {
			switch k {
			case "action":
				d.Action, ok = val.(string)
			case "risk":
				var s string
				s, ok = val.(string)
				d.Risk = Risk(s)
			case "reason":
				d.Reason, ok = val.(string)
			case "requires_approval":
				d.RequiresApproval, ok = val.(bool)
			case "params":
				var err error
				d.Params, err = json.Marshal(val)
				ok = err == nil
			default:
				return nil, fmt.Errorf("%w: decision %d has unknown field %q", ErrBadDecision, i, k)
			}
			if !ok {
				return nil, fmt.Errorf("%w: decision %d field %q has type %T", ErrBadDecision, i, k, val)
			}
		}
		if d.Action == "" {
			return nil, fmt.Errorf("%w: decision %d has no action", ErrBadDecision, i)
		}
		switch d.Risk {
		case "":
			d.Risk = RiskLow
		case RiskLow, RiskHigh, RiskCritical:
		default:
			return nil, fmt.Errorf("%w: decision %d risk %q is not low, high or critical", ErrBadDecision, i, d.Risk)
		}
		out = append(out, d)
	}
	return out, nil
}

// Holder keeps the running policy and swaps in a new one only when it loads.
type Holder struct {
	cur atomic.Pointer[Policy]
}

// NewHolder returns a holder running p.
func NewHolder(p *Policy) *Holder {
	h := &Holder{}
	h.cur.Store(p)
	return h
}

// Current returns the running policy.
func (h *Holder) Current() *Policy { return h.cur.Load() }

// Reload loads src with o and swaps it in; on error the running policy stays.
func (h *Holder) Reload(ctx context.Context, src string, o Options) (*Policy, error) {
	p, err := LoadWith(ctx, src, o)
	if err != nil {
		return nil, err
	}
	h.cur.Store(p)
	return p, nil
}
