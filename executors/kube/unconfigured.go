package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/remedyhq/remedy/executors"
)

// NoClusterHint is what an engine without a cluster says a cluster action needs.
const NoClusterHint = "start the engine with --kubeconfig FILE or --in-cluster"

// Unconfigured returns the cluster actions of an engine that has no Kubernetes cluster:
// each checks its parameters like the real one, and Execute changes nothing and answers
// executors.Unavailable with what it would have done and what to configure. Registered
// in place of Cluster, a policy's cordon is recorded with its own outcome rather than
// refused as an unknown action. Only actions not in have are returned.
func Unconfigured(have ...string) []executors.Executor {
	skip := map[string]bool{}
	for _, a := range have {
		skip[a] = true
	}
	var out []executors.Executor
	for _, e := range Cluster(nil, Options{}) {
		if !skip[e.Action()] {
			out = append(out, unconfigured{e})
		}
	}
	return out
}

type unconfigured struct{ real executors.Executor }

func (u unconfigured) Action() string { return u.real.Action() }

func (u unconfigured) CheckParams(p json.RawMessage) error { return u.real.CheckParams(p) }

func (u unconfigured) Execute(_ context.Context, req executors.Request) executors.Result {
	start := time.Now().UTC()
	if err := u.real.CheckParams(req.Params); err != nil {
		return executors.Failure(req, start, executors.Refused, err)
	}
	what := "would run"
	if !req.DryRun {
		what = "did not run"
	}
	return executors.Finish(req, start, executors.Result{Status: executors.Unavailable,
		Message: fmt.Sprintf("no Kubernetes cluster: %s %s on node %s; %s", what, req.Action, req.Node, NoClusterHint)})
}
