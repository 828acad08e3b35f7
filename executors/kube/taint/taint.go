// Package taint implements node.taint and node.untaint. remedy records every taint it
// adds in the node's remedy.dev/taints annotation and node.untaint removes only those:
// a taint a person or another controller put on the node is never removed or changed.
//
// RBAC: nodes get, patch; events create.
//
// Example decisions:
//
//	{"action": "node.taint", "params": {"key": "remedy.dev/nic-degraded", "value": "true", "effect": "NoSchedule"}}
//	{"action": "node.untaint", "params": {"key": "remedy.dev/nic-degraded", "effect": "NoSchedule"}}
package taint

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
)

// Action names.
const (
	ActionTaint   = "node.taint"
	ActionUntaint = "node.untaint"
)

// Event reasons.
const (
	ReasonTainted   = "RemedyTainted"
	ReasonUntainted = "RemedyUntainted"
)

// Params of node.taint and node.untaint (which ignores Value).
type Params struct {
	Key    string             `json:"key"`
	Value  string             `json:"value,omitempty"`
	Effect corev1.TaintEffect `json:"effect"`
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	if errs := validation.IsQualifiedName(p.Key); len(errs) > 0 {
		return fmt.Errorf("key %q: %s", p.Key, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(p.Value); len(errs) > 0 {
		return fmt.Errorf("value %q: %s", p.Value, strings.Join(errs, "; "))
	}
	switch p.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		return nil
	}
	return fmt.Errorf("effect %q: must be NoSchedule, PreferNoSchedule or NoExecute", p.Effect)
}

func (p Params) id() string { return p.Key + ":" + string(p.Effect) }

// Tainter is node.taint.
type Tainter struct{ kubeaction.Deps }

// Untainter is node.untaint.
type Untainter struct{ kubeaction.Deps }

// NewTaint returns node.taint.
func NewTaint(d kubeaction.Deps) *Tainter { return &Tainter{d.WithDefaults()} }

// NewUntaint returns node.untaint.
func NewUntaint(d kubeaction.Deps) *Untainter { return &Untainter{d.WithDefaults()} }

// Action implements executors.Executor.
func (*Tainter) Action() string { return ActionTaint }

// Action implements executors.Executor.
func (*Untainter) Action() string { return ActionUntaint }

// CheckParams implements executors.Executor.
func (*Tainter) CheckParams(raw json.RawMessage) error { return kubeaction.Check[Params](raw) }

// CheckParams implements executors.Executor.
func (*Untainter) CheckParams(raw json.RawMessage) error { return kubeaction.Check[Params](raw) }

// State renders a node's taints and remedy's claim on them, for Result.Before/After.
func State(n *corev1.Node) map[string]string {
	ts := make([]string, 0, len(n.Spec.Taints))
	for _, t := range n.Spec.Taints {
		ts = append(ts, t.ToString())
	}
	return map[string]string{"taints": strings.Join(ts, ","), "ownedTaints": n.Annotations[kubeaction.AnnotationTaints]}
}

// Execute implements executors.Executor.
func (t *Tainter) Execute(ctx context.Context, req executors.Request) executors.Result {
	return run(ctx, t.Deps, req, true)
}

// Execute implements executors.Executor.
func (u *Untainter) Execute(ctx context.Context, req executors.Request) executors.Result {
	return run(ctx, u.Deps, req, false)
}

func run(ctx context.Context, d kubeaction.Deps, req executors.Request, add bool) executors.Result {
	return kubeaction.Run(ctx, req, func(ctx context.Context, p Params, start time.Time) executors.Result {
		return change(ctx, d, req, p, start, add)
	})
}

func change(ctx context.Context, d kubeaction.Deps, req executors.Request, p Params, start time.Time, add bool) executors.Result {
	return d.ChangeNode(ctx, req, start, req.Action, func(n *corev1.Node) (executors.Result, error) {
		if add {
			return taint(ctx, d, req, n, p)
		}
		return untaint(ctx, d, req, n, p)
	})
}

func taint(ctx context.Context, d kubeaction.Deps, req executors.Request, n *corev1.Node, p Params) (executors.Result, error) {
	before := State(n)
	owned := kubeaction.OwnedSet(n.Annotations, kubeaction.AnnotationTaints)
	ours := slices.Contains(owned, p.id())
	want := corev1.Taint{Key: p.Key, Value: p.Value, Effect: p.Effect}
	if want.Effect == corev1.TaintEffectNoExecute {
		now := metav1.NewTime(d.Now())
		want.TimeAdded = &now
	}
	taints := slices.Clone(n.Spec.Taints)
	i := slices.IndexFunc(taints, func(t corev1.Taint) bool { return t.MatchTaint(&want) })
	switch {
	case i >= 0 && taints[i].Value == p.Value:
		return executors.Result{Status: executors.Succeeded, Before: before, After: before,
			Message: fmt.Sprintf("node %s already has taint %s", n.Name, want.ToString())}, nil
	case i >= 0 && !ours:
		return executors.Result{Status: executors.Refused, Before: before, After: before,
			Message: fmt.Sprintf("node %s has taint %s set by someone else; remedy leaves it alone", n.Name, taints[i].ToString())}, nil
	case i >= 0:
		taints[i].Value = p.Value
	default:
		taints = append(taints, want)
	}
	after := map[string]string{"taints": renderTaints(taints), "ownedTaints": *kubeaction.FormatSet(append(owned, p.id()))}
	if req.DryRun {
		return executors.Result{Status: executors.DryRun, Before: before, After: after,
			Message: fmt.Sprintf("would taint node %s with %s", n.Name, want.ToString())}, nil
	}
	ann := d.Who(req)
	ann[kubeaction.AnnotationTaints] = kubeaction.FormatSet(append(owned, p.id()))
	out, err := d.PatchNode(ctx, n, kubeaction.NodePatch{Annotations: ann, Spec: map[string]any{"taints": taints}})
	if err != nil {
		return executors.Result{}, err
	}
	d.Event(ctx, kubeaction.NodeRef(out), kubeaction.Normal, ReasonTainted, "Taint", req,
		fmt.Sprintf("Tainted %s by %s: %s", want.ToString(), d.Identity, req.Reason))
	return executors.Result{Status: executors.Succeeded, Before: before, After: State(out),
		Message: fmt.Sprintf("tainted node %s with %s", n.Name, want.ToString())}, nil
}

func untaint(ctx context.Context, d kubeaction.Deps, req executors.Request, n *corev1.Node, p Params) (executors.Result, error) {
	before := State(n)
	owned := kubeaction.OwnedSet(n.Annotations, kubeaction.AnnotationTaints)
	ours := slices.Contains(owned, p.id())
	probe := corev1.Taint{Key: p.Key, Effect: p.Effect}
	taints := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool { return t.MatchTaint(&probe) })
	present := len(taints) != len(n.Spec.Taints)
	rest := slices.DeleteFunc(slices.Clone(owned), func(s string) bool { return s == p.id() })
	switch {
	case present && !ours:
		return executors.Result{Status: executors.Refused, Before: before, After: before,
			Message: fmt.Sprintf("node %s: taint %s was not added by remedy; it stays", n.Name, p.id())}, nil
	case !present && !ours:
		return executors.Result{Status: executors.Succeeded, Before: before, After: before,
			Message: fmt.Sprintf("node %s has no taint %s", n.Name, p.id())}, nil
	case req.DryRun:
		after := map[string]string{"taints": renderTaints(taints), "ownedTaints": deref(kubeaction.FormatSet(rest))}
		return executors.Result{Status: executors.DryRun, Before: before, After: after,
			Message: fmt.Sprintf("would remove taint %s from node %s", p.id(), n.Name)}, nil
	}
	ann := d.Who(req)
	ann[kubeaction.AnnotationTaints] = kubeaction.FormatSet(rest)
	patch := kubeaction.NodePatch{Annotations: ann}
	if present {
		patch.Spec = map[string]any{"taints": taints}
	}
	out, err := d.PatchNode(ctx, n, patch)
	if err != nil {
		return executors.Result{}, err
	}
	if present {
		d.Event(ctx, kubeaction.NodeRef(out), kubeaction.Normal, ReasonUntainted, "Untaint", req,
			fmt.Sprintf("Removed taint %s by %s: %s", p.id(), d.Identity, req.Reason))
	}
	return executors.Result{Status: executors.Succeeded, Before: before, After: State(out),
		Message: fmt.Sprintf("removed taint %s from node %s", p.id(), n.Name)}, nil
}

func renderTaints(ts []corev1.Taint) string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.ToString())
	}
	return strings.Join(out, ",")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
