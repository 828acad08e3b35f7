// Package kube lists remedy's cluster actions — the executors the engine runs itself
// against the Kubernetes API (executors.InCluster), never dispatched to a node agent:
//
//	node.cordon, node.uncordon    executors/kube/cordon
//	node.taint, node.untaint      executors/kube/taint
//	node.label                    executors/kube/label
//	workload.migrate              executors/kube/migrate
//	node.drain                    executors/kube/drain
//
// docs/kubernetes.md documents their parameters; deploy/rbac holds the ClusterRole they
// need. Nothing under executors/kube may be imported by the node agent.
package kube

import (
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube/cordon"
	"github.com/remedyhq/remedy/executors/kube/drain"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
	"github.com/remedyhq/remedy/executors/kube/label"
	"github.com/remedyhq/remedy/executors/kube/migrate"
	"github.com/remedyhq/remedy/executors/kube/taint"
)

// Options configure the cluster executors.
type Options struct {
	Logger *slog.Logger
	// Identity names this engine instance in annotations and Events (default "remedy";
	// the pod name is a good choice).
	Identity string
	// Migrate tunes workload.migrate and node.drain.
	Migrate migrate.Options
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Cluster returns every cluster executor, to be registered with executors.InCluster.
func Cluster(client kubernetes.Interface, o Options) []executors.Executor {
	d := kubeaction.Deps{Client: client, Logger: o.Logger, Identity: o.Identity, Now: o.Now}.WithDefaults()
	return []executors.Executor{
		cordon.NewCordon(d),
		cordon.NewUncordon(d),
		taint.NewTaint(d),
		taint.NewUntaint(d),
		label.New(d),
		migrate.New(d, o.Migrate),
		drain.New(d, o.Migrate),
	}
}

// Register adds the cluster executors to a registry as executors.InCluster.
func Register(r *executors.Registry, client kubernetes.Interface, o Options) error {
	return r.Add(executors.InCluster, Cluster(client, o)...)
}
