// Package label implements node.label: it sets and removes node labels (e.g. to steer
// workloads away from a node with a degraded NIC). remedy records the keys it set in the
// node's remedy.dev/labels annotation; it removes or changes only those, and never
// touches the kubernetes.io and k8s.io label domains, which belong to the kubelet, the
// cloud provider and the cluster's administrators.
//
// RBAC: nodes get, patch; events create.
//
// Example decisions:
//
//	{"action": "node.label", "params": {"set": {"remedy.dev/nic-degraded": "true"}}}
//	{"action": "node.label", "params": {"remove": ["remedy.dev/nic-degraded"]}}
package label

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
)

// Action name.
const Action = "node.label"

// ReasonLabeled is the Event reason.
const ReasonLabeled = "RemedyLabeled"

// Params of node.label.
type Params struct {
	Set    map[string]string `json:"set,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	if len(p.Set) == 0 && len(p.Remove) == 0 {
		return fmt.Errorf("set or remove is required")
	}
	for _, k := range slices.Sorted(maps.Keys(p.Set)) {
		if err := checkKey(k); err != nil {
			return err
		}
		if errs := validation.IsValidLabelValue(p.Set[k]); len(errs) > 0 {
			return fmt.Errorf("label %s value %q: %s", k, p.Set[k], strings.Join(errs, "; "))
		}
	}
	for _, k := range p.Remove {
		if err := checkKey(k); err != nil {
			return err
		}
		if _, ok := p.Set[k]; ok {
			return fmt.Errorf("label %s is both set and removed", k)
		}
	}
	return nil
}

func checkKey(k string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
	}
	if prefix, _, ok := strings.Cut(k, "/"); ok {
		for _, reserved := range []string{"kubernetes.io", "k8s.io"} {
			if prefix == reserved || strings.HasSuffix(prefix, "."+reserved) {
				return fmt.Errorf("label key %q: the %s domain is reserved", k, reserved)
			}
		}
	}
	return nil
}

// Labeler is node.label.
type Labeler struct{ kubeaction.Deps }

// New returns node.label.
func New(d kubeaction.Deps) *Labeler { return &Labeler{d.WithDefaults()} }

// Action implements executors.Executor.
func (*Labeler) Action() string { return Action }

// CheckParams implements executors.Executor.
func (*Labeler) CheckParams(raw json.RawMessage) error { return kubeaction.Check[Params](raw) }

// Execute implements executors.Executor.
func (l *Labeler) Execute(ctx context.Context, req executors.Request) executors.Result {
	return kubeaction.Run(ctx, req, func(ctx context.Context, p Params, start time.Time) executors.Result {
		return l.run(ctx, req, p, start)
	})
}

func (l *Labeler) run(ctx context.Context, req executors.Request, p Params, start time.Time) executors.Result {
	return l.ChangeNode(ctx, req, start, "label", func(n *corev1.Node) (executors.Result, error) {
		return l.apply(ctx, req, n, p)
	})
}

func (l *Labeler) apply(ctx context.Context, req executors.Request, n *corev1.Node, p Params) (executors.Result, error) {
	keys := slices.Concat(slices.Collect(maps.Keys(p.Set)), p.Remove)
	sort.Strings(keys)
	before := state(n, keys)
	owned := kubeaction.OwnedSet(n.Annotations, kubeaction.AnnotationLabels)
	changes := map[string]*string{}
	var foreign []string
	for _, k := range keys {
		cur, present := n.Labels[k]
		v, set := p.Set[k]
		mine := slices.Contains(owned, k)
		switch {
		case set && present && cur == v:
		case (present && !mine) || (!set && !present && !mine):
			if present {
				foreign = append(foreign, k)
			}
		case set:
			changes[k] = &v
			owned = append(owned, k)
		default: // remove one of ours
			changes[k] = nil
			owned = slices.DeleteFunc(owned, func(s string) bool { return s == k })
		}
	}
	if len(foreign) > 0 {
		return executors.Result{Status: executors.Refused, Before: before, After: before,
			Message: fmt.Sprintf("node %s: labels %s were not set by remedy; remedy leaves them alone", n.Name, strings.Join(foreign, ", "))}, nil
	}
	if len(changes) == 0 {
		return executors.Result{Status: executors.Succeeded, Before: before, After: before,
			Message: fmt.Sprintf("node %s labels already as requested", n.Name)}, nil
	}
	after := maps.Clone(before)
	for k, v := range changes {
		after[k] = deref(v)
	}
	if req.DryRun {
		return executors.Result{Status: executors.DryRun, Before: before, After: after,
			Message: fmt.Sprintf("would change labels %s on node %s", describe(changes), n.Name)}, nil
	}
	ann := l.Who(req)
	ann[kubeaction.AnnotationLabels] = kubeaction.FormatSet(owned)
	out, err := l.PatchNode(ctx, n, kubeaction.NodePatch{Annotations: ann, Labels: changes})
	if err != nil {
		return executors.Result{}, err
	}
	l.Event(ctx, kubeaction.NodeRef(out), kubeaction.Normal, ReasonLabeled, "Label", req,
		fmt.Sprintf("Labels %s changed by %s: %s", describe(changes), l.Identity, req.Reason))
	return executors.Result{Status: executors.Succeeded, Before: before, After: state(out, keys),
		Message: fmt.Sprintf("changed labels %s on node %s", describe(changes), n.Name)}, nil
}

func state(n *corev1.Node, keys []string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = n.Labels[k]
	}
	return out
}

func describe(changes map[string]*string) string {
	parts := make([]string, 0, len(changes))
	for _, k := range slices.Sorted(maps.Keys(changes)) {
		if v := changes[k]; v != nil {
			parts = append(parts, k+"="+*v)
		} else {
			parts = append(parts, k+"-")
		}
	}
	return strings.Join(parts, ",")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
