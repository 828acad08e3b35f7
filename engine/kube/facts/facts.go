// Package facts answers the engine's facts.Provider from a shared informer cache of the
// cluster's Nodes and Pods: a policy asking about a node costs a map lookup, never an API
// call, however many alerts arrive.
//
// Pods are cached stripped down to what the facts need (name, namespace, node, phase) and
// without finished pods, so the cache stays small on large clusters.
//
// RBAC: nodes list, watch; pods list, watch.
package facts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	core "github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
)

// CordonedBy values.
const (
	ByRemedy = "remedy"
	ByOther  = "other"
)

// DefaultGroupLabels group the cluster's cordoned nodes when Options.GroupLabels is nil.
var DefaultGroupLabels = []string{"topology.kubernetes.io/zone"}

// ErrNotSynced is returned until the informer caches have synced.
var ErrNotSynced = errors.New("kubernetes facts: informer cache not synced yet")

const podNodeIndex = "spec.nodeName"

// Options configure a Provider.
type Options struct {
	Logger *slog.Logger
	// GroupLabels are the node labels (zone, node pool, ...) that Cluster counts cordoned
	// nodes by; nil means DefaultGroupLabels.
	GroupLabels []string
}

// Provider implements facts.Provider over informers; build it with New before the
// factory starts.
type Provider struct {
	log    *slog.Logger
	groups []string
	nodes  listersv1.NodeLister
	pods   cache.Indexer
	synced []cache.InformerSynced
}

var _ core.Provider = (*Provider)(nil)

// New registers the Node and Pod informers on factory. Start the factory afterwards
// (factory.Start) and wait for WaitForSync.
func New(factory informers.SharedInformerFactory, o Options) (*Provider, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.GroupLabels == nil {
		o.GroupLabels = DefaultGroupLabels
	}
	nodeInf := factory.Core().V1().Nodes()
	podInf := factory.InformerFor(&corev1.Pod{}, newPodInformer)
	if err := podInf.AddIndexers(cache.Indexers{podNodeIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("kubernetes facts: pod index: %w", err)
	}
	return &Provider{
		log:    o.Logger,
		groups: o.GroupLabels,
		nodes:  nodeInf.Lister(),
		pods:   podInf.GetIndexer(),
		synced: []cache.InformerSynced{nodeInf.Informer().HasSynced, podInf.HasSynced},
	}, nil
}

// newPodInformer watches the pods that occupy a node (not finished ones) and keeps only
// the fields the facts read.
func newPodInformer(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
	inf := coreinformers.NewFilteredPodInformer(c, metav1.NamespaceAll, resync, cache.Indexers{},
		func(o *metav1.ListOptions) {
			o.FieldSelector = "status.phase!=" + string(corev1.PodSucceeded) + ",status.phase!=" + string(corev1.PodFailed)
		})
	_ = inf.SetTransform(func(obj any) (any, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil // a DeletedFinalStateUnknown tombstone
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
			Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName},
			Status:     corev1.PodStatus{Phase: p.Status.Phase},
		}, nil
	})
	return inf
}

// HasSynced reports whether both caches have synced.
func (p *Provider) HasSynced() bool {
	for _, s := range p.synced {
		if !s() {
			return false
		}
	}
	return true
}

// WaitForSync blocks until the caches have synced or ctx ends.
func (p *Provider) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), p.synced...) {
		return fmt.Errorf("kubernetes facts: %w", ErrNotSynced)
	}
	return nil
}

// Node implements facts.Provider. A node the cache does not know is reported with
// Known false and no error.
func (p *Provider) Node(_ context.Context, name string) (core.Node, error) {
	if !p.HasSynced() {
		return core.Node{Name: name}, ErrNotSynced
	}
	n, err := p.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return core.Node{Name: name}, nil
	}
	if err != nil {
		return core.Node{Name: name}, fmt.Errorf("kubernetes facts: node %s: %w", name, err)
	}
	out := core.Node{
		Name:          n.Name,
		Known:         true,
		Labels:        n.Labels,
		Annotations:   n.Annotations,
		Unschedulable: n.Spec.Unschedulable,
		CordonedBy:    CordonedBy(n),
	}
	for _, c := range n.Status.Conditions {
		out.Conditions = append(out.Conditions, core.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason})
	}
	if q, ok := n.Status.Allocatable[corev1.ResourceCPU]; ok {
		out.AllocatableCPU = q.MilliValue() / 1000 // whole CPUs, rounded down
	}
	if q, ok := n.Status.Capacity[corev1.ResourceCPU]; ok {
		out.CPUs = q.MilliValue() / 1000
	}
	pods, err := p.pods.ByIndex(podNodeIndex, name)
	if err != nil {
		return out, fmt.Errorf("kubernetes facts: pods of %s: %w", name, err)
	}
	out.PodCount = len(pods)
	return out, nil
}

// Cluster implements facts.Provider.
func (p *Provider) Cluster(context.Context) (core.Cluster, error) {
	if !p.HasSynced() {
		return core.Cluster{}, ErrNotSynced
	}
	nodes, err := p.nodes.List(labels.Everything())
	if err != nil {
		return core.Cluster{}, fmt.Errorf("kubernetes facts: list nodes: %w", err)
	}
	c := core.Cluster{Nodes: len(nodes), CordonedBy: map[string]map[string]int{}}
	for _, g := range p.groups {
		c.CordonedBy[g] = map[string]int{}
	}
	for _, n := range nodes {
		if !n.Spec.Unschedulable {
			continue
		}
		c.Cordoned++
		for _, g := range p.groups {
			if v, ok := n.Labels[g]; ok {
				c.CordonedBy[g][v]++
			}
		}
	}
	return c, nil
}

// CordonedBy says who cordoned a node: ByRemedy, ByOther, or "" when it is schedulable.
func CordonedBy(n *corev1.Node) string {
	switch {
	case !n.Spec.Unschedulable:
		return ""
	case n.Annotations[kubeaction.AnnotationCordonedBy] != "":
		return ByRemedy
	default:
		return ByOther
	}
}
