// Package nodee2e drives a node executor end to end against the real kernel: an alert
// pushed to a real Alertmanager reaches remedy's webhook, the policy decides nic.rps for
// the device the alert names, the action travels over JetStream to the node agent, and
// the agent changes rps_cpus of a veth in a network namespace — then puts it back, once
// because the alert resolves and once because a write fails half way and the executor
// rolls back what it had changed.
package nodee2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/executors/nettest"
	"github.com/remedyhq/remedy/test/testenv"
)

const node = "e2e-netns-node"

type stack struct {
	app  *app.App
	ctx  context.Context
	am   *testenv.Alertmanager
	seen map[string]bool
}

// start runs the engine (not a dry run), one agent whose executors act on the veth's
// namespace, and Alertmanager.
func start(t *testing.T, v *nettest.Veth) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	a, err := app.Start(ctx, app.Options{
		DataDir: filepath.Join(dir, "engine"), PolicyDir: "testdata/policies", Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", SweepInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: v.Root, NetNS: v.NSPath})...); err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := agent.Run(actx, agent.Options{Node: node, NATSURL: a.NATSURL(), StateDir: filepath.Join(dir, "agent"), Registry: reg}); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { stopAgent(); <-done })
	return &stack{app: a, ctx: ctx, am: testenv.StartAlertmanager(t, a.URL()+"/webhooks/alertmanager"), seen: map[string]bool{}}
}

// results returns the node's action results in the order they were recorded.
func (s *stack) results(t *testing.T) []executors.Result {
	t.Helper()
	evs, err := s.app.Store.Query(s.ctx, audit.Filter{Node: node, Type: audit.ActionResult, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]executors.Result, 0, len(evs))
	for _, e := range evs {
		var r executors.Result
		if err := json.Unmarshal(e.Detail, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// waitResults waits for the n-th action result and returns it: the one whose action id
// was not among the results seen so far.
func (s *stack) waitResults(t *testing.T, n int) executors.Result {
	t.Helper()
	var rs []executors.Result
	testenv.Eventually(t, 30*time.Second, "action result", func() bool {
		rs = s.results(t)
		return len(rs) >= n
	})
	for _, r := range rs {
		if !s.seen[r.ID] {
			s.seen[r.ID] = true
			return r
		}
	}
	t.Fatalf("no new result among %d", len(rs))
	return executors.Result{}
}

func rps(t *testing.T, v *nettest.Veth) []string {
	out := make([]string, 4)
	for q := range out {
		out[q] = nettest.Read(t, rpsFile(v, q))
	}
	return out
}

func TestAlertToNetnsAndBack(t *testing.T) {
	testenv.Heavy(t)
	v := nettest.NewVeth(t, 4)
	s := start(t, v)
	off := []string{"0", "0", "0", "0"}
	if got := rps(t, v); !slices.Equal(got, off) {
		t.Fatalf("fresh veth rps_cpus %v", got)
	}

	// 1. Firing: the policy turns RPS on for the alert's device.
	alert := testenv.Alert{
		Labels:   map[string]string{"alertname": "NodePacketDrops", "node": node, "device": v.If, "cause": "softirq"},
		StartsAt: time.Now().Add(-time.Minute).UTC().Truncate(time.Second),
	}
	sent := time.Now()
	if err := s.am.Push(s.ctx, alert); err != nil {
		t.Fatal(err)
	}
	r := s.waitResults(t, 1)
	t.Logf("alert to changed kernel value: %s", time.Since(sent).Round(time.Millisecond))
	if r.Action != "nic.rps" || r.Status != executors.Succeeded || r.Before[v.If+"/rx-0/rps_cpus"] != "0" || r.After[v.If+"/rx-3/rps_cpus"] != "3" {
		t.Fatalf("firing result %+v", r)
	}
	if got := rps(t, v); !slices.Equal(got, []string{"3", "3", "3", "3"}) {
		t.Fatalf("kernel rps_cpus after the action %v", got)
	}

	// 2. Resolved: the policy puts RPS back off.
	alert.EndsAt = time.Now().UTC()
	if err := s.am.Push(s.ctx, alert); err != nil {
		t.Fatal(err)
	}
	r = s.waitResults(t, 2)
	if r.Status != executors.Succeeded || r.After[v.If+"/rx-0/rps_cpus"] != "0" {
		t.Fatalf("resolved result %+v", r)
	}
	if got := rps(t, v); !slices.Equal(got, off) {
		t.Fatalf("kernel rps_cpus after resolve %v", got)
	}

	// 3. A new incident whose action fails half way: rx-3's rps_cpus is made read-only,
	// so rx-0..2 are written, the fourth write fails, and the executor restores them.
	nettest.ReadOnly(t, rpsFile(v, 3))
	again := testenv.Alert{
		Labels:   map[string]string{"alertname": "NodePacketDrops", "node": node, "device": v.If, "cause": "softirq", "burst": "2"},
		StartsAt: time.Now().UTC().Truncate(time.Second),
	}
	if err := s.am.Push(s.ctx, again); err != nil {
		t.Fatal(err)
	}
	r = s.waitResults(t, 3)
	want := "write " + v.If + "/rx-3/rps_cpus: read-only file system; restored 3 setting(s)"
	if r.Status != executors.RolledBack || r.Message != want {
		t.Fatalf("half-way result %s %q, want rolled_back %q", r.Status, r.Message, want)
	}
	if got := rps(t, v); !slices.Equal(got, off) {
		t.Fatalf("kernel rps_cpus after the rollback %v", got)
	}
}

func rpsFile(v *nettest.Veth, q int) string {
	return filepath.Join(v.Root, "sys", "class", "net", v.If, "queues", "rx-"+strconv.Itoa(q), "rps_cpus")
}
