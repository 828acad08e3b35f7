// Package catalog lists the node actions remedy ships, built explicitly from options.
// The agent executes them; the engine uses the same list to check policy decisions.
package catalog

import (
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/sysctl"
)

// Options configure the node executors.
type Options struct {
	// HostRoot is where the host's / is mounted: "/" on a node, "/host" in a pod.
	HostRoot string
}

// Node returns every node-local executor.
func Node(o Options) []executors.Executor {
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	return []executors.Executor{
		sysctl.New(o.HostRoot),
	}
}
