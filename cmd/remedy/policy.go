package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/engine/signal"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
)

// policyEval evaluates the policy for one input: a full input document ({"signal": …,
// "node": …}) or a bare signal, and checks each decision against the action catalogue.
func policyEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("policies", "policies", "directory of Rego policies and data")
	inPath := fs.String("input", "", "JSON file with a signal or a full input document (- for stdin)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *inPath == "" {
		return errors.New("--input is required")
	}
	var b []byte
	var err error
	if *inPath == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(*inPath)
	}
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("input %s: %w", *inPath, err)
	}
	if _, ok := doc["signal"]; !ok {
		var s signal.Signal
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("input %s: %w", *inPath, err)
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("input %s: %w", *inPath, err)
		}
		doc = map[string]any{"signal": doc, "node": map[string]any{"name": s.Node}, "history": []any{}}
	}
	p, err := policy.Load(ctx, *dir)
	if err != nil {
		return err
	}
	ds, err := p.Eval(ctx, doc)
	if err != nil {
		return err
	}
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
		return err
	}
	type checked struct {
		policy.Decision
		Valid bool   `json:"valid"`
		Error string `json:"error,omitempty"`
	}
	out := struct {
		Revision  string    `json:"policyRevision"`
		Decisions []checked `json:"decisions"`
	}{Revision: p.Revision, Decisions: []checked{}}
	for _, d := range ds {
		c := checked{Decision: d, Valid: true}
		if _, err := reg.Check(d.Action, d.Params); err != nil {
			c.Valid, c.Error = false, err.Error()
		}
		out.Decisions = append(out.Decisions, c)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
