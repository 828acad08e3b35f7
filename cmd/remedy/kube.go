package main

import (
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/remedyhq/remedy/engine/kube"
	"github.com/remedyhq/remedy/engine/kube/leader"
)

// kubeFlags registers the flags that connect `remedy serve` to a cluster (docs/kubernetes.md)
// and returns a function that turns them into app options: nil when neither --kubeconfig
// nor --in-cluster is given.
func kubeFlags(fs *pflag.FlagSet) func() (*kube.Options, error) {
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file: enables node facts, cluster actions and node-condition signals")
	inCluster := fs.Bool("in-cluster", false, "use the pod's ServiceAccount to reach the Kubernetes API (instead of --kubeconfig)")
	identity := fs.String("identity", "", "this replica's name in annotations, Events and the Lease (default $POD_NAME, else the host name)")
	conds := fs.String("node-conditions", "", "node condition types turned into signals, Type[=kind],... (default VMFreezeScheduled, FreezeScheduled, VMEventScheduled, MaintenanceScheduled as vm_freeze; \"none\" turns the source off)")
	groups := fs.String("node-group-labels", "topology.kubernetes.io/zone", "node labels that cordoned-node counts are grouped by, comma-separated")
	elect := fs.Bool("leader-elect", false, "run the consumers only on the replica holding the Lease (needs a cluster)")
	leaseNS := fs.String("leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease (default $POD_NAMESPACE)")
	leaseName := fs.String("leader-election-name", "remedy-engine", "name of the Lease")
	return func() (*kube.Options, error) {
		if *kubeconfig == "" && !*inCluster {
			return nil, nil
		}
		cfg, err := kube.RESTConfig(*kubeconfig, *inCluster)
		if err != nil {
			return nil, err
		}
		o := &kube.Options{Config: cfg, Identity: *identity}
		if *groups != "" {
			o.GroupLabels = strings.Split(*groups, ",")
		}
		switch *conds {
		case "none":
			o.Conditions = []kube.Rule{}
		default:
			if o.Conditions, err = kube.ParseConditions(*conds); err != nil {
				return nil, err
			}
		}
		if *elect {
			o.LeaderElection = &leader.Config{Namespace: *leaseNS, Name: *leaseName}
		}
		return o, nil
	}
}
