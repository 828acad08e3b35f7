// Package kube assembles remedy's Kubernetes parts for the engine from one set of options:
// the client, the shared informer cache behind the node facts, the cluster executors, the
// node-condition signal source and, optionally, leader election around the consumers.
//
// engine/app uses it when the engine is given a kubeconfig or runs in a cluster; every
// part can also be built on its own from its package.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/remedyhq/remedy/engine/kube/conditions"
	"github.com/remedyhq/remedy/engine/kube/facts"
	"github.com/remedyhq/remedy/engine/kube/leader"
	"github.com/remedyhq/remedy/executors"
	kubeexec "github.com/remedyhq/remedy/executors/kube"
	"github.com/remedyhq/remedy/executors/kube/migrate"
	"github.com/remedyhq/remedy/wire/signal"
)

// Options configure the engine's Kubernetes parts.
// Rule turns one node condition type into signals (conditions.Rule).
type Rule = conditions.Rule

type Options struct {
	// Config reaches the API server; see RESTConfig.
	Config *rest.Config
	// Identity names this replica in annotations, Events and the Lease (the pod name).
	Identity string
	// GroupLabels group cordoned-node counts (facts); nil means the zone label.
	GroupLabels []string
	// Conditions are the node condition types turned into signals; nil means
	// conditions.DefaultRules, an empty non-nil list turns the source off.
	Conditions []conditions.Rule
	// LeaderElection, when set, runs the consumers only on the replica holding the Lease.
	LeaderElection *leader.Config
	// Migrate tunes workload.migrate and node.drain.
	Migrate migrate.Options
	// SyncTimeout bounds the wait for the informer caches at start; default 1m.
	SyncTimeout time.Duration
	Logger      *slog.Logger
}

// Cluster is the engine's view of the cluster.
type Cluster struct {
	Client    kubernetes.Interface
	Facts     *facts.Provider
	Executors []executors.Executor

	o       Options
	factory informers.SharedInformerFactory
	cancel  context.CancelFunc
}

// RESTConfig loads a kubeconfig file, or the pod's ServiceAccount when path is empty
// and inCluster is set.
func RESTConfig(path string, inCluster bool) (*rest.Config, error) {
	switch {
	case path != "":
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	case inCluster:
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	}
	return nil, errors.New("kubernetes: no kubeconfig and not in a cluster")
}

// DefaultIdentity is $POD_NAME, else the host name.
func DefaultIdentity() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "remedy"
}

// New builds the parts; Start starts the informers.
func New(o Options) (*Cluster, error) {
	if o.Config == nil {
		return nil, errors.New("kubernetes: no rest config")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Identity == "" {
		o.Identity = DefaultIdentity()
	}
	if o.LeaderElection != nil && (o.LeaderElection.Namespace == "" || o.LeaderElection.Name == "") {
		return nil, errors.New("kubernetes: leader election needs the Lease's namespace and name")
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = time.Minute
	}
	cfg := rest.CopyConfig(o.Config)
	cfg.UserAgent = "remedy-engine/" + o.Identity
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	fp, err := facts.New(factory, facts.Options{Logger: o.Logger, GroupLabels: o.GroupLabels})
	if err != nil {
		return nil, err
	}
	return &Cluster{
		Client: client,
		Facts:  fp,
		Executors: kubeexec.Cluster(client, kubeexec.Options{Logger: o.Logger, Identity: o.Identity,
			Migrate: o.Migrate}),
		o:       o,
		factory: factory,
	}, nil
}

// Start starts the informers and waits until their caches have synced.
func (c *Cluster) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.factory.Start(runCtx.Done())
	syncCtx, cancelSync := context.WithTimeout(ctx, c.o.SyncTimeout)
	defer cancelSync()
	return c.Facts.WaitForSync(syncCtx)
}

// Conditions returns the node-condition source submitting to sink, or nil when it is
// turned off. Call before Start.
func (c *Cluster) Conditions(sink signal.Sink) (*conditions.Watcher, error) {
	if c.o.Conditions != nil && len(c.o.Conditions) == 0 {
		return nil, nil
	}
	return conditions.New(c.factory, sink, conditions.Options{Logger: c.o.Logger, Rules: c.o.Conditions})
}

// Lead runs work while this replica holds the Lease, or straight away without leader
// election; it returns when ctx ends and work has returned.
func (c *Cluster) Lead(ctx context.Context, work func(ctx context.Context)) error {
	if c.o.LeaderElection == nil {
		work(ctx)
		return nil
	}
	cfg := *c.o.LeaderElection
	if cfg.Identity == "" {
		cfg.Identity = c.o.Identity
	}
	if cfg.Logger == nil {
		cfg.Logger = c.o.Logger
	}
	return leader.Run(ctx, c.Client, cfg, work)
}

// Stop stops the informers.
func (c *Cluster) Stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.factory.Shutdown()
}

// ParseConditions parses "Type[=kind],..." (e.g. "VMEventScheduled,KernelDeadlock=kernel_deadlock").
func ParseConditions(s string) ([]conditions.Rule, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []conditions.Rule
	for _, part := range strings.Split(s, ",") {
		typ, kind, _ := strings.Cut(strings.TrimSpace(part), "=")
		if typ == "" {
			return nil, fmt.Errorf("condition list %q: empty condition type", s)
		}
		out = append(out, conditions.Rule{Type: typ, Kind: signal.Kind(kind)})
	}
	return out, nil
}
