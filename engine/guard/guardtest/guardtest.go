// Package guardtest holds test doubles for the guards' end-to-end tests: a node.cordon
// executor that only counts, standing in for executors/kube's.
package guardtest

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/remedyhq/remedy/executors"
)

// Cordon is an in-cluster node.cordon executor that records the nodes it was asked to
// cordon and always succeeds.
type Cordon struct {
	mu    sync.Mutex
	nodes map[string]int
	calls int
}

// Action implements executors.Executor.
func (*Cordon) Action() string { return "node.cordon" }

// CheckParams implements executors.Executor.
func (*Cordon) CheckParams(json.RawMessage) error { return nil }

// Execute implements executors.Executor.
func (c *Cordon) Execute(_ context.Context, req executors.Request) executors.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes == nil {
		c.nodes = map[string]int{}
	}
	c.nodes[req.Node]++
	c.calls++
	return executors.Finish(req, time.Now(), executors.Result{Status: executors.Succeeded})
}

// Calls is the number of executions.
func (c *Cordon) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Nodes returns how often each node was cordoned.
func (c *Cordon) Nodes() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.nodes))
	for k, v := range c.nodes {
		out[k] = v
	}
	return out
}
