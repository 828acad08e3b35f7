// Package cordon implements node.cordon and node.uncordon: they mark a node
// (un)schedulable exactly as `kubectl cordon` / `kubectl uncordon` do, and record on the
// node who cordoned it and why.
//
// remedy never fights a person: node.cordon leaves a node someone else cordoned as it is
// (without claiming it), and node.uncordon refuses every node that does not carry
// remedy's remedy.dev/cordoned-by annotation.
//
// RBAC: nodes get, patch; events create.
//
// Example decisions:
//
//	{"action": "node.cordon", "params": {}}
//	{"action": "node.uncordon", "params": {}}
package cordon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
)

// Action names.
const (
	ActionCordon   = "node.cordon"
	ActionUncordon = "node.uncordon"
)

// Event reasons.
const (
	ReasonCordoned   = "RemedyCordoned"
	ReasonUncordoned = "RemedyUncordoned"
)

// ErrNotOurs is the refusal to uncordon a node remedy did not cordon.
var ErrNotOurs = errors.New("node was cordoned by someone else, not remedy; it stays cordoned")

// Params of node.cordon and node.uncordon: there are none.
type Params struct{}

// Validate implements executors.Validator.
func (*Params) Validate() error { return nil }

// State is what a node's cordon looks like, for Result.Before/After.
func State(n *corev1.Node) map[string]string {
	return map[string]string{
		"unschedulable": strconv.FormatBool(n.Spec.Unschedulable),
		"cordonedBy":    n.Annotations[kubeaction.AnnotationCordonedBy],
	}
}

// Cordoner is node.cordon.
type Cordoner struct{ kubeaction.Deps }

// Uncordoner is node.uncordon.
type Uncordoner struct{ kubeaction.Deps }

// NewCordon returns node.cordon.
func NewCordon(d kubeaction.Deps) *Cordoner { return &Cordoner{d.WithDefaults()} }

// NewUncordon returns node.uncordon.
func NewUncordon(d kubeaction.Deps) *Uncordoner { return &Uncordoner{d.WithDefaults()} }

// Action implements executors.Executor.
func (*Cordoner) Action() string { return ActionCordon }

// Action implements executors.Executor.
func (*Uncordoner) Action() string { return ActionUncordon }

// CheckParams implements executors.Executor.
func (*Cordoner) CheckParams(raw json.RawMessage) error { return kubeaction.Check[Params](raw) }

// CheckParams implements executors.Executor.
func (*Uncordoner) CheckParams(raw json.RawMessage) error { return kubeaction.Check[Params](raw) }

// Execute implements executors.Executor.
func (c *Cordoner) Execute(ctx context.Context, req executors.Request) executors.Result {
	return kubeaction.Run(ctx, req, func(ctx context.Context, _ Params, start time.Time) executors.Result {
		return Cordon(ctx, c.Deps, req, start)
	})
}

// Cordon cordons req.Node; node.drain shares it.
func Cordon(ctx context.Context, d kubeaction.Deps, req executors.Request, start time.Time) executors.Result {
	return d.ChangeNode(ctx, req, start, "cordon", func(n *corev1.Node) (executors.Result, error) {
		before := State(n)
		switch {
		case n.Spec.Unschedulable && before["cordonedBy"] != "":
			return executors.Result{Status: executors.Succeeded, Before: before, After: before,
				Message: fmt.Sprintf("node %s already cordoned by %s", n.Name, before["cordonedBy"])}, nil
		case n.Spec.Unschedulable:
			// Someone else's cordon: leave it unclaimed, so that node.uncordon will never
			// lift it.
			return executors.Result{Status: executors.Succeeded, Before: before, After: before,
				Message: fmt.Sprintf("node %s already cordoned by someone else; left as it is", n.Name)}, nil
		case req.DryRun:
			return executors.Result{Status: executors.DryRun, Before: before,
				After:   map[string]string{"unschedulable": "true", "cordonedBy": d.Identity},
				Message: fmt.Sprintf("would cordon node %s", n.Name)}, nil
		}
		ann := d.Who(req)
		ann[kubeaction.AnnotationCordonedBy] = &d.Identity
		at := d.Now().UTC().Format(time.RFC3339)
		ann[kubeaction.AnnotationCordonedAt] = &at
		out, err := d.PatchNode(ctx, n, kubeaction.NodePatch{Annotations: ann, Spec: map[string]any{"unschedulable": true}})
		if err != nil {
			return executors.Result{}, err
		}
		d.Event(ctx, kubeaction.NodeRef(out), kubeaction.Normal, ReasonCordoned, "Cordon", req,
			fmt.Sprintf("Cordoned by %s: %s", d.Identity, orDash(req.Reason)))
		d.Logger.Info("cordoned node", "node", n.Name, "correlation", req.CorrelationID, "reason", req.Reason)
		return executors.Result{Status: executors.Succeeded, Before: before, After: State(out),
			Message: fmt.Sprintf("cordoned node %s", n.Name)}, nil
	})
}

// Execute implements executors.Executor.
func (u *Uncordoner) Execute(ctx context.Context, req executors.Request) executors.Result {
	return kubeaction.Run(ctx, req, func(ctx context.Context, _ Params, start time.Time) executors.Result {
		return uncordon(ctx, u.Deps, req, start)
	})
}

func uncordon(ctx context.Context, d kubeaction.Deps, req executors.Request, start time.Time) executors.Result {
	return d.ChangeNode(ctx, req, start, "uncordon", func(n *corev1.Node) (executors.Result, error) {
		before := State(n)
		ours := before["cordonedBy"] != ""
		claim := map[string]*string{kubeaction.AnnotationCordonedBy: nil, kubeaction.AnnotationCordonedAt: nil}
		switch {
		case !n.Spec.Unschedulable:
			res := executors.Result{Status: executors.Succeeded, Before: before, After: before,
				Message: fmt.Sprintf("node %s is not cordoned", n.Name)}
			if ours && !req.DryRun {
				// Someone uncordoned it already; drop remedy's stale claim.
				out, err := d.PatchNode(ctx, n, kubeaction.NodePatch{Annotations: claim})
				if err != nil {
					return executors.Result{}, err
				}
				res.After = State(out)
			}
			return res, nil
		case !ours:
			return executors.Result{Status: executors.Refused, Before: before, After: before,
				Message: fmt.Sprintf("node %s: %v", n.Name, ErrNotOurs)}, nil
		case req.DryRun:
			return executors.Result{Status: executors.DryRun, Before: before,
				After:   map[string]string{"unschedulable": "false", "cordonedBy": ""},
				Message: fmt.Sprintf("would uncordon node %s", n.Name)}, nil
		}
		ann := d.Who(req)
		maps.Copy(ann, claim)
		out, err := d.PatchNode(ctx, n, kubeaction.NodePatch{Annotations: ann, Spec: map[string]any{"unschedulable": nil}})
		if err != nil {
			return executors.Result{}, err
		}
		d.Event(ctx, kubeaction.NodeRef(out), kubeaction.Normal, ReasonUncordoned, "Uncordon", req,
			fmt.Sprintf("Uncordoned by %s: %s", d.Identity, orDash(req.Reason)))
		d.Logger.Info("uncordoned node", "node", n.Name, "correlation", req.CorrelationID)
		return executors.Result{Status: executors.Succeeded, Before: before, After: State(out),
			Message: fmt.Sprintf("uncordoned node %s", n.Name)}, nil
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
