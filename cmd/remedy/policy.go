package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/wire/signal"
)

func policyCommand() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "policy",
		Short: "Evaluate, test and replay the Rego policy",
	})
	c.AddCommand(policyEvalCommand(), policyTestCommand(), policyReplayCommand())
	return c
}

// evalResult is what `remedy policy eval` prints.
type evalResult struct {
	Revision  string        `json:"policyRevision"`
	Decisions []evalChecked `json:"decisions"`
}

// evalChecked is one decision and whether the action catalogue accepts it.
type evalChecked struct {
	policy.Decision
	Target string `json:"target,omitempty"`
	Valid  bool   `json:"valid"`
	Error  string `json:"error,omitempty"`
}

func (r evalResult) table(w io.Writer) error {
	noun := "decisions"
	if len(r.Decisions) == 1 {
		noun = "decision"
	}
	fmt.Fprintf(w, "policy revision %s: %d %s\n", r.Revision, len(r.Decisions), noun)
	if len(r.Decisions) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tTARGET\tRISK\tAPPROVAL\tPARAMS\tVALID\tREASON")
	for _, d := range r.Decisions {
		valid := "yes"
		if !d.Valid {
			valid = "no: " + d.Error
		}
		params := string(d.Params)
		if params == "" {
			params = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", d.Action, dashed(d.Target), dashed(string(d.Risk)), d.RequiresApproval, params, valid, d.Reason)
	}
	return tw.Flush()
}

// policyEval evaluates the policy for one input: a full input document ({"signal": …,
// "node": …}) or a bare signal, and checks each decision against the action catalogue.
func policyEvalCommand() *cobra.Command {
	c := &cobra.Command{Use: "eval --input-file FILE", Short: "What the policy decides for one input, and why", Args: cli.NoArgs,
		Long: `Evaluate the policy for one input: a full input document ({"signal": …, "node": …}) or a
bare signal, and check each decision against the action catalogue. A policy whose own tests
fail is still evaluated: eval is how one finds out why.`}
	fs := c.Flags()
	dir := fs.String("policies", "policies", "directory or bundle of Rego policies and data")
	inPath := fs.String("input-file", "", "JSON file with a signal or a full input document (- for stdin)")
	cli.Alias(fs, "input", "input-file")
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		// Checked here, not with MarkFlagRequired, which would not see the old --input.
		if *inPath == "" {
			return cli.Usagef("--input-file is required")
		}
		ctx := cmd.Context()
		var b []byte
		var err error
		if *inPath == "-" {
			b, err = io.ReadAll(cmd.InOrStdin())
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
		p, err := policy.LoadWith(ctx, *dir, policy.Options{SkipTests: true})
		if err != nil {
			return err
		}
		ds, err := p.Eval(ctx, doc)
		if err != nil {
			return err
		}
		reg := app.ShippedActions()
		res := evalResult{Revision: p.Revision, Decisions: []evalChecked{}}
		for _, d := range ds {
			c := evalChecked{Decision: d, Valid: true}
			t, err := reg.Check(d.Action, d.Params)
			if err != nil {
				c.Valid, c.Error = false, err.Error()
			}
			c.Target = string(t)
			res.Decisions = append(res.Decisions, c)
		}
		return out.Print(cmd.OutOrStdout(), res, res.table)
	}
	return c
}

// errTestsFailed makes `remedy policy test` exit non-zero.
var errTestsFailed = errors.New("policy tests failed")

// policyTest runs the policy's Rego tests, as `opa test` does, and then the load-time
// catalogue check the engine applies.
func policyTestCommand() *cobra.Command {
	c := &cobra.Command{Use: "test", Short: "Run the policy's Rego tests and the catalogue check", Args: cli.NoArgs,
		Long: `Run the policy's Rego tests, as opa test does, then the load-time catalogue check the
engine applies. Exit code 1 when a test fails.`}
	fs := c.Flags()
	dir := fs.String("policies", "policies", "directory or bundle of Rego policies and data")
	run := fs.String("run", "", "run only the tests whose name matches this regular expression")
	verbose := fs.BoolP("verbose", "v", false, "list every test, not only failures")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return policyTest(cmd.Context(), *dir, *run, *verbose, cmd.OutOrStdout())
	}
	return c
}

func policyTest(ctx context.Context, dir, run string, verbose bool, stdout io.Writer) error {
	results, err := policy.RunTests(ctx, dir, run, 0)
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
		if verbose || !r.Pass() {
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
	if run != "" {
		return nil
	}
	check := policy.CatalogueChecker(app.ShippedActions())
	if _, err := policy.LoadWith(ctx, dir, policy.Options{Check: check, SkipTests: true}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "catalogue: every decision seen in the rules and the tests' inputs is valid")
	return nil
}
