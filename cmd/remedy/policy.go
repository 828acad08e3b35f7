package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/wire/signal"
)

const policyUsage = `Usage:
  remedy policy eval    --input FILE [--policies DIR|BUNDLE]   what the policy decides for one input, and why
  remedy policy test    [--policies DIR|BUNDLE] [--run REGEX]   run the policy's Rego tests and catalogue check
  remedy policy replay  --since 24h [--policies DIR|BUNDLE] [--server URL]
                        re-decide recorded signals with a candidate policy; print what changes
`

func policyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "eval":
		return policyEval(ctx, args[1:], stdout, stderr)
	case "test":
		return policyTest(ctx, args[1:], stdout, stderr)
	case "replay":
		return policyReplay(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, policyUsage)
	return fmt.Errorf("unknown command \"policy %s\"", args[0])
}

// policyEval evaluates the policy for one input: a full input document ({"signal": …,
// "node": …}) or a bare signal, and checks each decision against the action catalogue.
func policyEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("policies", "policies", "directory or bundle of Rego policies and data")
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
	if _, ok := doc["now"]; !ok {
		doc["now"] = time.Now().UTC().Format(time.RFC3339Nano) // as the engine would
	}
	// A policy under edit is evaluated even if its tests fail: eval is how one finds out why.
	p, err := policy.LoadWith(ctx, *dir, policy.Options{SkipTests: true})
	if err != nil {
		return err
	}
	ds, err := p.Eval(ctx, doc)
	if err != nil {
		return err
	}
	reg := app.ShippedActions()
	type checked struct {
		policy.Decision
		Target string `json:"target,omitempty"`
		Valid  bool   `json:"valid"`
		Error  string `json:"error,omitempty"`
	}
	out := struct {
		Revision  string    `json:"policyRevision"`
		Decisions []checked `json:"decisions"`
	}{Revision: p.Revision, Decisions: []checked{}}
	for _, d := range ds {
		c := checked{Decision: d, Valid: true}
		t, err := reg.Check(d.Action, d.Params)
		if err != nil {
			c.Valid, c.Error = false, err.Error()
		}
		c.Target = string(t)
		out.Decisions = append(out.Decisions, c)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// errTestsFailed makes `remedy policy test` exit non-zero.
var errTestsFailed = errors.New("policy tests failed")

// policyTest runs the policy's Rego tests, as `opa test` does, and then the load-time
// catalogue check the engine applies.
func policyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("policies", "policies", "directory or bundle of Rego policies and data")
	run := fs.String("run", "", "run only the tests whose name matches this regular expression")
	verbose := fs.Bool("v", false, "list every test, not only failures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	results, err := policy.RunTests(ctx, *dir, *run, 0)
	if err != nil {
		return err
	}
	passed, failed := 0, 0
	for _, r := range results {
		if r.Pass() {
			passed++
		} else if !r.Skip {
			failed++
		}
		if *verbose || !r.Pass() {
			loc := "?"
			if r.Location != nil {
				loc = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
			}
			status := "PASS"
			switch {
			case r.Error != nil:
				status = "ERROR: " + r.Error.Error()
			case r.Fail:
				status = "FAIL"
			case r.Skip:
				status = "SKIPPED"
			}
			fmt.Fprintf(stdout, "%s: %s.%s: %s (%s)\n", loc, r.Package, r.Name, status, r.Duration.Round(time.Microsecond))
		}
	}
	fmt.Fprintf(stdout, "PASS: %d/%d\n", passed, passed+failed)
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", errTestsFailed, failed, passed+failed)
	}
	if *run != "" {
		return nil
	}
	check := policy.CatalogueChecker(app.ShippedActions())
	if _, err := policy.LoadWith(ctx, *dir, policy.Options{Check: check, SkipTests: true}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "catalogue: every decision seen in the rules and the tests' inputs is valid")
	return nil
}
