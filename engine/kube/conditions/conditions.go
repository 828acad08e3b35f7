// Package conditions is remedy's Kubernetes signal source: it watches node conditions
// and turns the configured condition types — VM freeze and scheduled-maintenance
// conditions set by node-problem-detector or a cloud's own agent — into firing signals,
// and into resolved signals when the condition clears or the node goes away.
//
// It is level-triggered: each change to a node queues the node, and a worker compares
// the node's conditions with what it last submitted. A Submit that fails is retried with
// backoff, so a signal reaches the sink at least once; the signal's Key (fingerprint,
// status, condition start) lets the sink drop repeats. Run again (e.g. on a new leader),
// it submits every condition that is firing at the time, which the sink deduplicates.
//
// RBAC: nodes list, watch.
package conditions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/remedyhq/remedy/wire/signal"
)

// Source is the Signal.Source of the signals this package makes.
const Source = "kubernetes"

// DefaultRules watch the conditions the common agents set before a VM is paused or
// moved: node-problem-detector's custom plugin convention and the Azure, GCE and AWS
// scheduled-event conditions.
var DefaultRules = []Rule{
	{Type: "VMFreezeScheduled"},
	{Type: "FreezeScheduled"},
	{Type: "VMEventScheduled"},
	{Type: "MaintenanceScheduled"},
}

// Rule turns one node condition type into signals.
type Rule struct {
	// Type is the node condition type, e.g. "VMEventScheduled".
	Type string `json:"type" yaml:"type"`
	// Kind is the signal kind; default vm_freeze.
	Kind signal.Kind `json:"kind,omitempty" yaml:"kind,omitempty"`
	// Status is the condition status that means firing; default "True".
	Status corev1.ConditionStatus `json:"status,omitempty" yaml:"status,omitempty"`
}

// Options configure a Watcher.
type Options struct {
	Logger *slog.Logger
	// Rules are the condition types to watch; nil means DefaultRules.
	Rules []Rule
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Watcher turns node conditions into signals.
type Watcher struct {
	log   *slog.Logger
	rules []Rule
	now   func() time.Time
	sink  signal.Sink
	inf   cache.SharedIndexInformer
	nodes listersv1.NodeLister
}

// New registers the Node informer on factory; the caller starts the factory.
func New(factory informers.SharedInformerFactory, sink signal.Sink, o Options) (*Watcher, error) {
	if sink == nil {
		return nil, errors.New("conditions: no sink")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rules == nil {
		o.Rules = DefaultRules
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	rules := make([]Rule, 0, len(o.Rules))
	seen := map[string]bool{}
	for _, r := range o.Rules {
		if r.Type == "" {
			return nil, errors.New("conditions: rule without a condition type")
		}
		if seen[r.Type] {
			return nil, fmt.Errorf("conditions: condition type %s listed twice", r.Type)
		}
		seen[r.Type] = true
		if r.Kind == "" {
			r.Kind = signal.KindVMFreeze
		}
		if r.Status == "" {
			r.Status = corev1.ConditionTrue
		}
		rules = append(rules, r)
	}
	nodes := factory.Core().V1().Nodes()
	return &Watcher{log: o.Logger, rules: rules, now: o.Now, sink: sink, inf: nodes.Informer(), nodes: nodes.Lister()}, nil
}

// firing is what was last submitted as firing for one node and condition type.
type firing struct {
	since time.Time
}

// Run watches until ctx ends. The informer factory must be started (before or after).
func (w *Watcher) Run(ctx context.Context) error {
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "remedy-node-conditions"})
	defer q.ShutDown()
	reg, err := w.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { w.enqueue(q, obj) },
		UpdateFunc: func(old, cur any) {
			if w.changed(old, cur) {
				w.enqueue(q, cur)
			}
		},
		DeleteFunc: func(obj any) { w.enqueue(q, obj) },
	})
	if err != nil {
		return fmt.Errorf("conditions: watch nodes: %w", err)
	}
	defer func() { _ = w.inf.RemoveEventHandler(reg) }()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return ctx.Err()
	}
	w.log.Info("watching node conditions", "types", len(w.rules))

	state := map[string]firing{} // node + "/" + condition type
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for {
		node, shutdown := q.Get()
		if shutdown {
			return nil
		}
		if err := w.reconcile(ctx, node, state); err != nil {
			w.log.Warn("submit node condition signals", "node", node, "err", err, "retries", q.NumRequeues(node))
			q.AddRateLimited(node)
		} else {
			q.Forget(node)
		}
		q.Done(node)
	}
}

func (w *Watcher) enqueue(q workqueue.TypedRateLimitingInterface[string], obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		q.Add(key)
	}
}

// changed filters out the status heartbeats that change nothing a rule looks at.
func (w *Watcher) changed(old, cur any) bool {
	o, ok1 := old.(*corev1.Node)
	c, ok2 := cur.(*corev1.Node)
	if !ok1 || !ok2 {
		return true
	}
	for _, r := range w.rules {
		a, b := find(o, r.Type), find(c, r.Type)
		if (a == nil) != (b == nil) || (a != nil && (a.Status != b.Status || !a.LastTransitionTime.Equal(&b.LastTransitionTime))) {
			return true
		}
	}
	return false
}

// reconcile submits what changed on one node since the last successful Submit, and
// records it only once Submit succeeded.
func (w *Watcher) reconcile(ctx context.Context, name string, state map[string]firing) error {
	n, err := w.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		n = nil
	} else if err != nil {
		return fmt.Errorf("get node %s: %w", name, err)
	}
	var sigs []signal.Signal
	next := map[string]*firing{}
	for _, r := range w.rules {
		key := name + "/" + r.Type
		prev, was := state[key]
		var c *corev1.NodeCondition
		if n != nil {
			c = find(n, r.Type)
		}
		is := c != nil && c.Status == r.Status
		since := time.Time{}
		if c != nil {
			since = c.LastTransitionTime.UTC()
		}
		if was && (!is || !since.Equal(prev.since)) {
			// Cleared, or cleared and fired again while the watch was not looking.
			end := w.now().UTC()
			if c != nil && !is && since.After(prev.since) {
				end = since
			}
			sigs = append(sigs, w.signal(name, r, c, signal.Resolved, prev.since, end))
			next[key] = nil
		}
		if is && (!was || !since.Equal(prev.since)) {
			sigs = append(sigs, w.signal(name, r, c, signal.Firing, since, time.Time{}))
			next[key] = &firing{since: since}
		}
	}
	if len(sigs) == 0 {
		return nil
	}
	if err := w.sink.Submit(ctx, sigs); err != nil {
		return err
	}
	for k, f := range next {
		if f == nil {
			delete(state, k)
		} else {
			state[k] = *f
		}
	}
	for _, s := range sigs {
		w.log.Info("node condition signal", "node", s.Node, "condition", s.Labels["condition"], "status", s.Status, "kind", s.Kind)
	}
	return nil
}

func (w *Watcher) signal(node string, r Rule, c *corev1.NodeCondition, st signal.Status, start, end time.Time) signal.Signal {
	s := signal.Signal{
		Source:      Source,
		Kind:        r.Kind,
		Node:        node,
		Status:      st,
		Fingerprint: Fingerprint(node, r.Type),
		StartsAt:    start,
		EndsAt:      end,
		Labels:      map[string]string{"condition": r.Type},
	}
	if c != nil {
		s.Labels["reason"] = c.Reason
		if c.Message != "" {
			s.Annotations = map[string]string{"message": c.Message}
		}
		s.Raw, _ = json.Marshal(c)
	}
	return s
}

// Fingerprint identifies one condition type on one node across its signals.
func Fingerprint(node, conditionType string) string {
	h := sha256.Sum256([]byte(Source + "\x00" + node + "\x00" + conditionType))
	return hex.EncodeToString(h[:8])
}

func find(n *corev1.Node, t string) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if string(n.Status.Conditions[i].Type) == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}
