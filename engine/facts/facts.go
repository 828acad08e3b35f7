// Package facts describes what the engine knows about a node and the cluster when it
// asks a policy for a decision. Providers fill it: Static for the embedded default (no
// cluster), a Kubernetes informer cache when the engine runs in a cluster.
package facts

import "context"

// Node is what a policy may know about one node.
type Node struct {
	Name          string            `json:"name"`
	Known         bool              `json:"known"` // false when no provider knows the node
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Conditions    []Condition       `json:"conditions,omitempty"`
	Unschedulable bool              `json:"unschedulable"`
	// CordonedBy is "remedy" when remedy cordoned the node, "other" when someone else
	// did, "" when it is schedulable.
	CordonedBy     string `json:"cordonedBy,omitempty"`
	AllocatableCPU int64  `json:"allocatableCPU,omitempty"`
	// CPUs is the node's CPU capacity (whole CPUs): what NIC queues and RPS masks are
	// sized from. The policy library reads it as node.cpus.
	CPUs     int64 `json:"cpus,omitempty"`
	PodCount int   `json:"podCount,omitempty"`
	// NICs holds per-interface maxima when an agent reported them (ring, channels).
	NICs map[string]NIC `json:"nics,omitempty"`
}

// Condition is a node condition (Kubernetes NodeCondition, reduced).
type Condition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// NIC is what is known of one network interface's limits.
type NIC struct {
	RxRingMax       int `json:"rxRingMax,omitempty"`
	TxRingMax       int `json:"txRingMax,omitempty"`
	CombinedMax     int `json:"combinedMax,omitempty"`
	CombinedCurrent int `json:"combinedCurrent,omitempty"`
}

// Cluster is the cluster-wide picture policies and guards use for blast radius.
type Cluster struct {
	Nodes    int `json:"nodes"`
	Cordoned int `json:"cordoned"`
	// CordonedBy counts cordoned nodes per value of each configured grouping label
	// (e.g. "topology.kubernetes.io/zone" -> "eu-1a" -> 2).
	CordonedBy map[string]map[string]int `json:"cordonedBy,omitempty"`
}

// Provider answers from a cache; it must not make a network call per alert.
type Provider interface {
	Node(ctx context.Context, name string) (Node, error)
	Cluster(ctx context.Context) (Cluster, error)
}

// Static serves fixed facts: the embedded default, where there is no cluster.
type Static struct {
	Nodes map[string]Node
}

// Node implements Provider.
func (s Static) Node(_ context.Context, name string) (Node, error) {
	if n, ok := s.Nodes[name]; ok {
		n.Name, n.Known = name, true
		return n, nil
	}
	return Node{Name: name}, nil
}

// Cluster implements Provider.
func (s Static) Cluster(context.Context) (Cluster, error) {
	c := Cluster{Nodes: len(s.Nodes)}
	for _, n := range s.Nodes {
		if n.Unschedulable {
			c.Cordoned++
		}
	}
	return c, nil
}
