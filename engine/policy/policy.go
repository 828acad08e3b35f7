// Package policy loads remedy's Rego policies and evaluates them: compiled once into a
// prepared query over the single decision document data.remedy.decisions, evaluated per
// signal with a parsed input. A policy that fails to compile never replaces the one that
// is running.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
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

// ErrBadDecision marks a decision document that does not match the contract.
var ErrBadDecision = errors.New("malformed decision")

// Policy is a compiled policy set.
type Policy struct {
	// Revision identifies the exact policy files and data (sha256 of their contents).
	Revision string
	// Files are the Rego and data files loaded, relative to the directory.
	Files []string
	query rego.PreparedEvalQuery
}

// IsTestFile reports whether a Rego file holds opa tests; they are loaded by the test
// runner, not the engine.
func IsTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// Load compiles every .rego (except *_test.rego) and data file (.json, .yaml) below dir.
func Load(ctx context.Context, dir string) (*Policy, error) {
	res, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).Filtered([]string{dir},
		func(abspath string, info fs.FileInfo, _ int) bool {
			return !info.IsDir() && IsTestFile(info.Name())
		})
	if err != nil {
		return nil, fmt.Errorf("load policies from %s: %w", dir, err)
	}
	if len(res.Modules) == 0 {
		return nil, fmt.Errorf("load policies from %s: no .rego files", dir)
	}
	h := sha256.New()
	p := &Policy{}
	names := make([]string, 0, len(res.Modules))
	for name := range res.Modules {
		names = append(names, name)
	}
	sort.Strings(names)
	opts := []func(*rego.Rego){rego.Query(Query)}
	for _, name := range names {
		m := res.Modules[name]
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(name), len(m.Raw))
		h.Write(m.Raw)
		opts = append(opts, rego.ParsedModule(m.Parsed))
		rel, _ := filepath.Rel(dir, name)
		p.Files = append(p.Files, rel)
	}
	docs, err := json.Marshal(res.Documents) // map keys marshal sorted: stable revision
	if err != nil {
		return nil, fmt.Errorf("encode policy data: %w", err)
	}
	h.Write(docs)
	p.Revision = hex.EncodeToString(h.Sum(nil))[:16]
	opts = append(opts, rego.Store(inmem.NewFromObject(res.Documents)))
	q, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile policies: %w", err)
	}
	p.query = q
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
func (p *Policy) EvalValue(ctx context.Context, input ast.Value) ([]Decision, error) {
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalExternalCancel(cancel))
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", Query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil // the document is undefined: no decision
	}
	return decodeDecisions(rs[0].Expressions[0].Value)
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

// Holder keeps the running policy and swaps in a new one only when it compiles.
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

// Reload compiles dir and swaps it in; on error the running policy stays.
func (h *Holder) Reload(ctx context.Context, dir string) (*Policy, error) {
	p, err := Load(ctx, dir)
	if err != nil {
		return nil, err
	}
	h.cur.Store(p)
	return p, nil
}
