// Package migrate implements workload.migrate: it moves a node's pods elsewhere through
// the Eviction API, as `kubectl drain` does, so that every PodDisruptionBudget is
// respected. An eviction a budget refuses (429) is retried until the action's deadline;
// DaemonSet pods and mirror (static) pods are never evicted; a label selector or an
// explicit pod list moves only some pods (e.g. those with the highest PSI, in that order).
//
// Like kubectl drain, it refuses up front — evicting nothing — when a selected pod has no
// controller (it would not come back; allow with force) or uses emptyDir storage (its
// data would be lost; allow with deleteEmptyDirData).
//
// It talks to the Eviction API itself rather than through k8s.io/kubectl/pkg/drain: the
// engine does not take on kubectl's and cli-runtime's dependencies, each pod's outcome
// (evicted, blocked by a budget, still terminating) reaches the audit log, a budget's
// Retry-After is honoured but never past the deadline (client-go's own silent 429 retries
// are turned off), and dry-run asks the API server (dryRun=All) whether each eviction
// would be admitted now.
//
// RBAC: pods list, get; pods/eviction create; events create.
//
// Example decision:
//
//	{"action": "workload.migrate", "params": {"selector": "app=ingest", "maxPods": 2, "timeout": "5m"}}
package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
)

// Action name.
const Action = "workload.migrate"

// Event reasons.
const (
	ReasonEvicted         = "RemedyEvicted"
	ReasonEvictionBlocked = "RemedyEvictionBlocked"
	ReasonMigrated        = "RemedyMigrated"
	ReasonMigrateFailed   = "RemedyMigrateIncomplete"
)

// MirrorPodAnnotation marks a static pod's mirror, which the API cannot evict.
const MirrorPodAnnotation = "kubernetes.io/config.mirror"

// Params of workload.migrate (and of node.drain, without Selector, Pods and MaxPods).
type Params struct {
	// Selector is a label selector: only matching pods move.
	Selector string `json:"selector,omitempty"`
	// Pods names the pods to move ("namespace/name"), in priority order.
	Pods []string `json:"pods,omitempty"`
	// MaxPods caps how many pods move (0: all selected).
	MaxPods int `json:"maxPods,omitempty"`
	// Timeout bounds retries and waiting for the pods to go (default 5m); the request's
	// deadline, when sooner, wins.
	Timeout string `json:"timeout,omitempty"`
	// GracePeriodSeconds overrides the pods' termination grace period.
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
	// Force evicts pods that no controller manages.
	Force bool `json:"force,omitempty"`
	// DeleteEmptyDirData evicts pods using emptyDir volumes, losing that data.
	DeleteEmptyDirData bool `json:"deleteEmptyDirData,omitempty"`

	timeout  time.Duration
	selector labels.Selector
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	var err error
	if p.selector, err = labels.Parse(p.Selector); err != nil {
		return fmt.Errorf("selector: %w", err)
	}
	if p.Timeout != "" {
		if p.timeout, err = time.ParseDuration(p.Timeout); err != nil || p.timeout <= 0 {
			return fmt.Errorf("timeout %q: want a positive duration such as 5m", p.Timeout)
		}
	}
	if p.MaxPods < 0 {
		return fmt.Errorf("maxPods must not be negative")
	}
	if p.GracePeriodSeconds != nil && *p.GracePeriodSeconds < 0 {
		return fmt.Errorf("gracePeriodSeconds must not be negative")
	}
	for _, n := range p.Pods {
		if ns, name, ok := strings.Cut(n, "/"); !ok || ns == "" || name == "" {
			return fmt.Errorf("pod %q: want namespace/name", n)
		}
	}
	return nil
}

// Options tune the executor.
type Options struct {
	// DefaultTimeout applies when the params set none; default 5m.
	DefaultTimeout time.Duration
	// RetryInterval is the wait after a 429 that suggests no delay; default 5s, as kubectl.
	RetryInterval time.Duration
	// PollInterval is how often evicted pods are checked for being gone; default 1s.
	PollInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 5 * time.Minute
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 5 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	return o
}

// Migrator is workload.migrate.
type Migrator struct {
	kubeaction.Deps
	Options Options
}

// New returns workload.migrate.
func New(d kubeaction.Deps, o Options) *Migrator {
	return &Migrator{Deps: d.WithDefaults(), Options: o.withDefaults()}
}

// Action implements executors.Executor.
func (*Migrator) Action() string { return Action }

// CheckParams implements executors.Executor.
func (*Migrator) CheckParams(raw json.RawMessage) error { return kubeaction.Check[Params](raw) }

// Execute implements executors.Executor.
func (m *Migrator) Execute(ctx context.Context, req executors.Request) executors.Result {
	return kubeaction.Run(ctx, req, func(ctx context.Context, p Params, start time.Time) executors.Result {
		return m.Migrate(ctx, req, p, start)
	})
}

// outcome of one pod.
type outcome struct {
	pod      *corev1.Pod
	state    string // evicted, gone, blocked, terminating, failed, would-evict, would-block
	detail   string
	attempts int
}

// Migrate evicts the selected pods of req.Node; node.drain shares it.
func (m *Migrator) Migrate(ctx context.Context, req executors.Request, p Params, start time.Time) executors.Result {
	timeout := p.timeout
	if timeout == 0 {
		timeout = m.Options.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	pods, skipped, err := m.selectPods(ctx, req.Node, p)
	if err != nil {
		return executors.Failure(req, start, executors.Failed, fmt.Errorf("migrate: %w", err))
	}
	before := map[string]string{"pods": names(pods), "skipped": strings.Join(skipped, ",")}
	if blockers := refusals(pods, p); len(blockers) > 0 {
		return executors.Finish(req, start, executors.Result{Status: executors.Refused, Before: before,
			Message: "migrate: nothing evicted: " + strings.Join(blockers, "; ")})
	}
	if len(pods) == 0 {
		return executors.Finish(req, start, executors.Result{Status: executors.Succeeded, Before: before, After: before,
			Message: fmt.Sprintf("no pods to migrate from node %s", req.Node)})
	}

	outs := make([]outcome, len(pods))
	var wg sync.WaitGroup
	for i, pod := range pods {
		wg.Go(func() {
			outs[i] = m.evictOne(ctx, req, p, pod)
			if outs[i].state == "evicted" {
				m.awaitGone(ctx, &outs[i])
			}
		})
	}
	wg.Wait()
	if req.DryRun {
		return executors.Finish(req, start, executors.Result{Status: executors.DryRun, Before: before,
			After: summary(outs), Message: fmt.Sprintf("would evict from node %s: %s", req.Node, describe(outs))})
	}

	after := summary(outs)
	status, evType, reason := executors.Succeeded, kubeaction.Normal, ReasonMigrated
	msg := fmt.Sprintf("migrated from node %s: %s", req.Node, describe(outs))
	for _, o := range outs {
		if o.state != "gone" {
			status, evType, reason = executors.Failed, kubeaction.Warning, ReasonMigrateFailed
			msg = fmt.Sprintf("migration from node %s incomplete after %s: %s", req.Node, time.Since(start).Round(time.Millisecond), describe(outs))
			break
		}
	}
	if n, err := m.GetNode(context.WithoutCancel(ctx), req.Node); err == nil {
		m.Event(context.WithoutCancel(ctx), kubeaction.NodeRef(n), evType, reason, "Migrate", req, msg)
	}
	m.Logger.Info("migrate", "node", req.Node, "status", status, "result", describe(outs), "correlation", req.CorrelationID)
	return executors.Finish(req, start, executors.Result{Status: status, Before: before, After: after, Message: msg})
}

// selectPods lists the node's pods and keeps those the params select, in priority
// order; skipped names the pods that are never evicted and why.
func (m *Migrator) selectPods(ctx context.Context, node string, p Params) ([]*corev1.Pod, []string, error) {
	list, err := m.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
		LabelSelector: p.Selector,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list pods on %s: %w", node, err)
	}
	rank := map[string]int{}
	for i, n := range p.Pods {
		if _, ok := rank[n]; !ok {
			rank[n] = i
		}
	}
	var pods []*corev1.Pod
	var skipped []string
	for i := range list.Items {
		pod := &list.Items[i]
		key := pod.Namespace + "/" + pod.Name
		if len(rank) > 0 {
			if _, ok := rank[key]; !ok {
				continue
			}
		}
		switch {
		case pod.Annotations[MirrorPodAnnotation] != "":
			skipped = append(skipped, key+" (mirror pod)")
		case controllerKind(pod) == "DaemonSet":
			skipped = append(skipped, key+" (DaemonSet)")
		default:
			pods = append(pods, pod)
		}
	}
	sort.Slice(pods, func(i, j int) bool {
		a, b := pods[i].Namespace+"/"+pods[i].Name, pods[j].Namespace+"/"+pods[j].Name
		if len(rank) > 0 {
			return rank[a] < rank[b]
		}
		return a < b
	})
	if p.MaxPods > 0 && len(pods) > p.MaxPods {
		pods = pods[:p.MaxPods]
	}
	sort.Strings(skipped)
	return pods, skipped, nil
}

func controllerKind(p *corev1.Pod) string {
	if ref := metav1.GetControllerOf(p); ref != nil {
		return ref.Kind
	}
	return ""
}

// refusals are kubectl drain's up-front checks.
func refusals(pods []*corev1.Pod, p Params) []string {
	var unmanaged, local []string
	for _, pod := range pods {
		key := pod.Namespace + "/" + pod.Name
		finished := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
		if !p.Force && !finished && controllerKind(pod) == "" {
			unmanaged = append(unmanaged, key)
		}
		if !p.DeleteEmptyDirData && !finished && slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.EmptyDir != nil }) {
			local = append(local, key)
		}
	}
	var out []string
	if len(unmanaged) > 0 {
		out = append(out, "pods without a controller (set force): "+strings.Join(unmanaged, ", "))
	}
	if len(local) > 0 {
		out = append(out, "pods with emptyDir data (set deleteEmptyDirData): "+strings.Join(local, ", "))
	}
	return out
}

// evictOne evicts one pod, retrying refusals by a disruption budget (429) until ctx ends.
func (m *Migrator) evictOne(ctx context.Context, req executors.Request, p Params, pod *corev1.Pod) outcome {
	o := outcome{pod: pod}
	if pod.DeletionTimestamp != nil && !req.DryRun {
		o.state = "evicted"
		o.detail = "already terminating"
		return o
	}
	ev := &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: &metav1.DeleteOptions{
			GracePeriodSeconds: p.GracePeriodSeconds,
			// Evict the pod that was selected, not a namesake created since.
			Preconditions: &metav1.Preconditions{UID: &pod.UID},
		},
	}
	if req.DryRun {
		ev.DeleteOptions.DryRun = []string{metav1.DryRunAll}
	}
	for {
		o.attempts++
		err := m.evict(ctx, ev)
		switch {
		case err == nil && req.DryRun:
			o.state = "would-evict"
			return o
		case err == nil:
			o.state = "evicted"
			m.Event(context.WithoutCancel(ctx), kubeaction.PodRef(pod), kubeaction.Normal, ReasonEvicted, "Evict", req,
				fmt.Sprintf("Evicted from node %s by %s: %s", req.Node, m.Identity, req.Reason))
			return o
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Gone already, or replaced by a pod of the same name (UID precondition).
			o.state = "gone"
			return o
		case apierrors.IsTooManyRequests(err) && req.DryRun:
			o.state, o.detail = "would-block", err.Error()
			return o
		case apierrors.IsTooManyRequests(err):
			o.detail = err.Error()
			wait := m.Options.RetryInterval
			if s, ok := apierrors.SuggestsClientDelay(err); ok && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return m.blocked(ctx, pod, req, o)
			case <-time.After(wait):
			}
		case ctx.Err() != nil && o.detail != "":
			// The deadline cut a retry short: the budget's refusal is still the reason.
			return m.blocked(ctx, pod, req, o)
		case ctx.Err() != nil:
			o.state, o.detail = "blocked", fmt.Sprintf("deadline reached: %v", err)
			return o
		default:
			o.state, o.detail = "failed", err.Error()
			return o
		}
	}
}

// blocked ends a pod's eviction at the deadline after the API refused it (a budget):
// the last refusal is the reason, recorded on the pod as an Event.
func (m *Migrator) blocked(ctx context.Context, pod *corev1.Pod, req executors.Request, o outcome) outcome {
	o.state = "blocked"
	m.Event(context.WithoutCancel(ctx), kubeaction.PodRef(pod), kubeaction.Warning, ReasonEvictionBlocked, "Evict", req,
		fmt.Sprintf("Eviction from node %s still refused after %d attempts: %s", req.Node, o.attempts, o.detail))
	return o
}

// evict posts an eviction without client-go's built-in retries: a 429 with Retry-After
// would otherwise be retried silently, up to ten times, past the action's deadline.
func (m *Migrator) evict(ctx context.Context, ev *policyv1.Eviction) error {
	if rc, ok := m.Client.PolicyV1().RESTClient().(*rest.RESTClient); ok && rc != nil {
		return rc.Post().AbsPath("/api/v1").Namespace(ev.Namespace).Resource("pods").Name(ev.Name).
			SubResource("eviction").Body(ev).MaxRetries(0).Do(ctx).Error()
	}
	return m.Client.PolicyV1().Evictions(ev.Namespace).Evict(ctx, ev) // fake clientsets
}

// awaitGone waits until an evicted pod has disappeared (or been replaced by a new pod of
// the same name), or ctx ends; then it is "terminating".
func (m *Migrator) awaitGone(ctx context.Context, o *outcome) {
	for {
		// The last look after the deadline gets a moment of its own.
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		}
		cur, err := m.Client.CoreV1().Pods(o.pod.Namespace).Get(cctx, o.pod.Name, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != o.pod.UID) {
			o.state = "gone"
			return
		}
		if ctx.Err() != nil {
			o.state, o.detail = "terminating", "evicted, still terminating at the deadline"
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(m.Options.PollInterval):
		}
	}
}

func names(pods []*corev1.Pod) string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return strings.Join(out, ",")
}

// summary maps each outcome state to the pods in it.
func summary(outs []outcome) map[string]string {
	by := map[string][]string{}
	for _, o := range outs {
		by[o.state] = append(by[o.state], o.pod.Namespace+"/"+o.pod.Name)
	}
	out := map[string]string{}
	for s, ps := range by {
		out[s] = strings.Join(ps, ",")
	}
	return out
}

func describe(outs []outcome) string {
	parts := make([]string, 0, len(outs))
	for _, o := range outs {
		s := fmt.Sprintf("%s/%s %s", o.pod.Namespace, o.pod.Name, o.state)
		if o.attempts > 1 {
			s += fmt.Sprintf(" after %d attempts", o.attempts)
		}
		if o.detail != "" && o.state != "gone" {
			s += " (" + o.detail + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
