// Package drain implements node.drain: node.cordon followed by workload.migrate of every
// pod on the node (but DaemonSet and mirror pods), as `kubectl drain` does. A node whose
// migration is incomplete stays cordoned, also as kubectl leaves it.
//
// RBAC: the union of node.cordon's and workload.migrate's.
//
// Example decision:
//
//	{"action": "node.drain", "params": {"timeout": "10m", "deleteEmptyDirData": true}}
package drain

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube/cordon"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
	"github.com/remedyhq/remedy/executors/kube/migrate"
)

// Action name.
const Action = "node.drain"

// Params of node.drain: workload.migrate's, without the pod selection.
type Params struct {
	Timeout            string `json:"timeout,omitempty"`
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
	Force              bool   `json:"force,omitempty"`
	DeleteEmptyDirData bool   `json:"deleteEmptyDirData,omitempty"`

	migrate migrate.Params
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	p.migrate = migrate.Params{Timeout: p.Timeout, GracePeriodSeconds: p.GracePeriodSeconds,
		Force: p.Force, DeleteEmptyDirData: p.DeleteEmptyDirData}
	return p.migrate.Validate()
}

// Drainer is node.drain.
type Drainer struct {
	kubeaction.Deps
	migrator *migrate.Migrator
}

// New returns node.drain.
func New(d kubeaction.Deps, o migrate.Options) *Drainer {
	m := migrate.New(d, o)
	return &Drainer{Deps: m.Deps, migrator: m}
}

// Action implements executors.Executor.
func (*Drainer) Action() string { return Action }

// CheckParams implements executors.Executor.
func (*Drainer) CheckParams(raw json.RawMessage) error { return kubeaction.Check[Params](raw) }

// Execute implements executors.Executor.
func (d *Drainer) Execute(ctx context.Context, req executors.Request) executors.Result {
	return kubeaction.Run(ctx, req, func(ctx context.Context, p Params, start time.Time) executors.Result {
		return d.drain(ctx, req, p, start)
	})
}

func (d *Drainer) drain(ctx context.Context, req executors.Request, p Params, start time.Time) executors.Result {
	c := cordon.Cordon(ctx, d.Deps, req, start)
	if c.Status != executors.Succeeded && c.Status != executors.DryRun {
		c.Message = "drain: " + c.Message
		return c
	}
	m := d.migrator.Migrate(ctx, req, p.migrate, start)
	res := executors.Result{Status: m.Status, Before: map[string]string{}, After: map[string]string{},
		Message: c.Message + "; " + m.Message}
	maps.Copy(res.Before, c.Before)
	maps.Copy(res.Before, m.Before)
	maps.Copy(res.After, c.After)
	maps.Copy(res.After, m.After)
	return executors.Finish(req, start, res)
}
