// Package txn applies a set of node settings as one transaction: it snapshots every value,
// writes only those that differ, verifies each write by reading it back, and on any failure
// restores what it had already changed, in reverse order. Every node executor is a list of
// Changes run through Apply, so snapshot, dry-run, idempotence and rollback behave the same
// for a sysctl, an rps_cpus mask, an IRQ affinity or a NIC ring size.
package txn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/remedyhq/remedy/executors"
)

// Setting is one value on the node that an executor reads and writes.
type Setting interface {
	// Name identifies the value in a result's Before/After maps
	// ("eth0/rx-0/rps_cpus", "irq/41/smp_affinity").
	Name() string
	// Read returns the current value in canonical form, so that equal values compare equal.
	Read(ctx context.Context) (string, error)
	// Write sets the value, given in canonical form.
	Write(ctx context.Context, value string) error
}

// Change asks for one setting to hold a value.
type Change struct {
	Setting Setting
	Want    string
	// Skip, when set, marks write errors that mean "this value cannot be changed here and
	// that is expected" (a kernel-managed IRQ refuses affinity writes with EIO): the change
	// is reported as skipped instead of failing the transaction.
	Skip func(error) bool
}

// Outcome is the transaction's result, ready to become an executors.Result.
type Outcome struct {
	Status  executors.Status
	Message string
	Before  map[string]string
	After   map[string]string
	Skipped []string
}

// Result stamps the outcome with the request's identity.
func (o Outcome) Result(req executors.Request, started time.Time) executors.Result {
	return executors.Finish(req, started, executors.Result{Status: o.Status, Message: o.Message, Before: o.Before, After: o.After})
}

// Apply runs the changes as one transaction. With dryRun it only reads and reports what it
// would write. A change whose setting already holds the wanted value is not written.
func Apply(ctx context.Context, changes []Change, dryRun bool) Outcome {
	out := Outcome{Before: map[string]string{}}
	for _, c := range changes {
		v, err := c.Setting.Read(ctx)
		if err != nil {
			return Outcome{Status: executors.Failed, Message: fmt.Sprintf("snapshot: %v", err), Before: out.Before}
		}
		out.Before[c.Setting.Name()] = v
	}
	var pending []Change
	for _, c := range changes {
		if out.Before[c.Setting.Name()] != c.Want {
			pending = append(pending, c)
		}
	}
	if len(pending) == 0 {
		out.Status, out.After = executors.Succeeded, out.Before
		if dryRun {
			out.Status = executors.DryRun
		}
		out.Message = fmt.Sprintf("no change: %d setting(s) already hold the wanted values", len(changes))
		return out
	}
	if dryRun {
		out.Status, out.After = executors.DryRun, map[string]string{}
		for _, c := range changes {
			out.After[c.Setting.Name()] = c.Want
		}
		out.Message = "would set " + describe(pending, out.Before)
		return out
	}

	// Rollback must run even when the caller's context is cancelled mid-way.
	rbctx := context.WithoutCancel(ctx)
	var done []Change
	fail := func(cause error) Outcome {
		out.After = map[string]string{}
		var rerrs []error
		for i := len(done) - 1; i >= 0; i-- {
			c := done[i]
			if err := c.Setting.Write(rbctx, out.Before[c.Setting.Name()]); err != nil {
				rerrs = append(rerrs, err)
			}
		}
		for _, c := range changes {
			if v, err := c.Setting.Read(rbctx); err == nil {
				out.After[c.Setting.Name()] = v
			}
		}
		if len(rerrs) > 0 {
			out.Status = executors.Failed
			out.Message = fmt.Sprintf("%v; rollback failed: %v", cause, errors.Join(rerrs...))
			return out
		}
		if len(done) == 0 {
			out.Status, out.Message = executors.Failed, fmt.Sprintf("%v; nothing was changed", cause)
			return out
		}
		out.Status = executors.RolledBack
		out.Message = fmt.Sprintf("%v; restored %d setting(s)", cause, len(done))
		return out
	}
	for _, c := range pending {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("aborted: %w", err))
		}
		if err := c.Setting.Write(ctx, c.Want); err != nil {
			if c.Skip != nil && c.Skip(err) {
				out.Skipped = append(out.Skipped, fmt.Sprintf("%s (%v)", c.Setting.Name(), err))
				continue
			}
			return fail(err)
		}
		done = append(done, c)
	}
	for _, c := range done {
		got, err := c.Setting.Read(ctx)
		if err != nil {
			return fail(fmt.Errorf("verify: %w", err))
		}
		if got != c.Want {
			return fail(fmt.Errorf("verify %s: read back %s, want %s", c.Setting.Name(), got, c.Want))
		}
	}
	out.Status, out.After = executors.Succeeded, map[string]string{}
	for _, c := range changes {
		out.After[c.Setting.Name()] = out.Before[c.Setting.Name()]
	}
	for _, c := range done {
		out.After[c.Setting.Name()] = c.Want
	}
	out.Message = "set " + describe(done, out.Before)
	if len(out.Skipped) > 0 {
		out.Message += "; skipped " + strings.Join(out.Skipped, ", ")
	}
	return out
}

func describe(cs []Change, before map[string]string) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s %s->%s", c.Setting.Name(), before[c.Setting.Name()], c.Want))
	}
	return strings.Join(parts, ", ")
}

// File is a Setting backed by a procfs or sysfs file.
type File struct {
	Key  string // the name in results
	Path string
	// Canon turns what the file holds (or what is to be written) into the canonical form;
	// nil means trimmed text.
	Canon func(string) (string, error)
}

// Name implements Setting.
func (f File) Name() string { return f.Key }

// Read implements Setting.
func (f File) Read(context.Context) (string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.Key, bare(err))
	}
	s := strings.TrimSpace(string(b))
	if f.Canon == nil {
		return s, nil
	}
	c, err := f.Canon(s)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.Key, err)
	}
	return c, nil
}

// Write implements Setting. It never creates the file: a missing file is an error.
func (f File) Write(_ context.Context, v string) error {
	fh, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Key, bare(err))
	}
	_, err = fh.WriteString(v + "\n")
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Key, bare(err))
	}
	return nil
}

// bare drops the path from an *os.PathError: the key already names the file, and results
// read better without host-root prefixes.
func bare(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// refusal marks an error as a reason not to run (the node cannot do what was asked), as
// opposed to a failure while running.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// Refuse returns an error that makes Execute refuse the action.
func Refuse(format string, args ...any) error { return refusal{fmt.Errorf(format, args...)} }

// Plan builds an action's changes: it re-checks the parameters and probes the node. It
// returns an error made by Refuse (or wrapping executors.ErrBadParams) when the action must
// not run, any other error when the node could not be read.
type Plan func(ctx context.Context) ([]Change, error)

// Execute is the body every node executor shares: plan, then Apply, then the result.
func Execute(ctx context.Context, req executors.Request, plan Plan) executors.Result {
	start := time.Now().UTC()
	if err := ctx.Err(); err != nil {
		return executors.Failure(req, start, executors.Failed, err)
	}
	changes, err := plan(ctx)
	if err != nil {
		var r refusal
		if errors.As(err, &r) || errors.Is(err, executors.ErrBadParams) {
			return executors.Failure(req, start, executors.Refused, err)
		}
		return executors.Failure(req, start, executors.Failed, err)
	}
	return Apply(ctx, changes, req.DryRun).Result(req, start)
}

// Action is an executor made of typed parameters and a plan: CheckParams decodes and
// validates the parameters, Execute does it again and runs the plan's changes through
// Apply. Notes from the plan (parts left out) are appended to the result's message.
type Action[P any, PP interface {
	*P
	executors.Validator
}] struct {
	Name string
	Plan func(ctx context.Context, p P) (changes []Change, notes []string, err error)
}

// Action implements executors.Executor.
func (a *Action[P, PP]) Action() string { return a.Name }

// CheckParams implements executors.Executor.
func (a *Action[P, PP]) CheckParams(raw json.RawMessage) error {
	_, err := executors.DecodeParams[P, PP](raw)
	return err
}

// Execute implements executors.Executor.
func (a *Action[P, PP]) Execute(ctx context.Context, req executors.Request) executors.Result {
	var notes []string
	res := Execute(ctx, req, func(ctx context.Context) ([]Change, error) {
		p, err := executors.DecodeParams[P, PP](req.Params)
		if err != nil {
			return nil, err
		}
		var cs []Change
		cs, notes, err = a.Plan(ctx, p)
		return cs, err
	})
	if len(notes) > 0 {
		res.Message += "; left out: " + strings.Join(notes, ", ")
	}
	return res
}

// NewAction returns the executor of a typed action: txn.NewAction[Params]("nic.ring", plan).
func NewAction[P any, PP interface {
	*P
	executors.Validator
}](name string, plan func(ctx context.Context, p P) ([]Change, []string, error)) *Action[P, PP] {
	return &Action[P, PP]{Name: name, Plan: plan}
}
