package sysctl_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/nettest"
	"github.com/remedyhq/remedy/executors/sysctl"
)

const allowList = "net.core.netdev_budget, net.core.netdev_budget_usecs, net.core.netdev_max_backlog, net.core.rps_sock_flow_entries"

func TestCheckParams(t *testing.T) {
	tests := map[string]string{
		`{"key": "net.core.netdev_max_backlog", "value": 8192}`:                                      "",
		`{"values": {"net.core.netdev_budget": 600, "net.core.netdev_budget_usecs": 8000}}`:          "",
		`{"key": "net.core.rps_sock_flow_entries", "value": 0}`:                                      "",
		`{"key": "kernel.panic", "value": 1}`:                                                        `invalid parameters: key "kernel.panic" is not in the allow-list (` + allowList + `)`,
		`{"key": "net.core.netdev_max_backlog", "value": 10}`:                                        "invalid parameters: net.core.netdev_max_backlog=10 out of range [1000, 1048576]",
		`{"key": "net.core.netdev_budget", "value": 100000}`:                                         "invalid parameters: net.core.netdev_budget=100000 out of range [300, 65536]",
		`{"key": "net.core.rps_sock_flow_entries", "value": 100}`:                                    "invalid parameters: net.core.rps_sock_flow_entries=100 is not a power of two (the kernel would round it up)",
		`{"values": {"net.core.netdev_budget": 600, "vm.swappiness": 1}}`:                            `invalid parameters: key "vm.swappiness" is not in the allow-list (` + allowList + `)`,
		`{"key": "net.core.netdev_budget"}`:                                                          "invalid parameters: value is required",
		`{}`:                                                                                         "invalid parameters: key is required",
		`{"key": "net.core.netdev_budget", "value": 600, "values": {"net.core.netdev_budget": 600}}`: "invalid parameters: give either key and value or values, not both",
		`{"key": "net.core.netdev_budget", "value": "600"}`:                                          "invalid parameters: json: cannot unmarshal string into Go struct field Params.value of type int64",
		`{"key": "net.core.netdev_budget", "value": 600, "force": true}`:                             `invalid parameters: json: unknown field "force"`,
	}
	e := sysctl.New("/nonexistent")
	nettest.CheckParams(t, e, tests)
}

func fixture(t *testing.T) string {
	root := t.TempDir()
	nettest.Tree(t, root, map[string]string{
		"proc/sys/net/core/netdev_max_backlog":    "1000\n",
		"proc/sys/net/core/netdev_budget":         "300\n",
		"proc/sys/net/core/netdev_budget_usecs":   "8000\n",
		"proc/sys/net/core/rps_sock_flow_entries": "0\n",
	})
	return root
}

func read(t *testing.T, root, key string) string {
	return nettest.Read(t, sysctl.Path(root, key))
}

func TestExecuteFixture(t *testing.T) {
	root := fixture(t)
	e := sysctl.New(root)
	run := func(params string, dry bool) executors.Result {
		return e.Execute(t.Context(), executors.Request{ID: "a", Action: sysctl.Action, Params: json.RawMessage(params), DryRun: dry})
	}
	both := `{"values": {"net.core.netdev_max_backlog": 4096, "net.core.netdev_budget": 600}}`

	res := run(both, true)
	if res.Status != executors.DryRun || res.Message != "would set net.core.netdev_budget 300->600, net.core.netdev_max_backlog 1000->4096" {
		t.Errorf("dry run: %s %q", res.Status, res.Message)
	}
	if got := read(t, root, "net.core.netdev_max_backlog"); got != "1000" {
		t.Errorf("dry run wrote %s", got)
	}

	res = run(both, false)
	if res.Status != executors.Succeeded || res.Before["net.core.netdev_budget"] != "300" || res.After["net.core.netdev_budget"] != "600" {
		t.Errorf("apply: %+v", res)
	}
	if got := read(t, root, "net.core.netdev_max_backlog"); got != "4096" {
		t.Errorf("backlog %s", got)
	}
	res = run(both, false)
	if res.Status != executors.Succeeded || res.Message != "no change: 2 setting(s) already hold the wanted values" {
		t.Errorf("re-apply: %s %q", res.Status, res.Message)
	}

	res = run(`{"key": "kernel.panic", "value": 1}`, false)
	if res.Status != executors.Refused {
		t.Errorf("outside the allow-list: %s %q", res.Status, res.Message)
	}
}

// A write that fails half way (the second key's file is read-only) restores the first.
func TestExecuteFixtureHalfWayRollback(t *testing.T) {
	root := fixture(t)
	nettest.ReadOnly(t, sysctl.Path(root, "net.core.netdev_max_backlog"))
	res := sysctl.New(root).Execute(t.Context(), executors.Request{ID: "a", Action: sysctl.Action,
		Params: json.RawMessage(`{"values": {"net.core.netdev_max_backlog": 4096, "net.core.netdev_budget": 600}}`)})
	want := "write net.core.netdev_max_backlog: read-only file system; restored 1 setting(s)"
	if res.Status != executors.RolledBack || res.Message != want {
		t.Errorf("got %s %q\nwant %q", res.Status, res.Message, want)
	}
	if got := read(t, root, "net.core.netdev_budget"); got != "300" {
		t.Errorf("budget left at %s", got)
	}
}

// The real kernel: root-namespace sysctls are set, re-set as a no-op, and a value the
// kernel rounds (rps_sock_flow_entries=100 reads back 128) fails the verify and is rolled back.
func TestExecuteKernel(t *testing.T) {
	nettest.Need(t)
	old := nettest.RootSysctls(t, "net.core.netdev_budget", "net.core.rps_sock_flow_entries")
	oldBudget, oldFlow := old["net.core.netdev_budget"], old["net.core.rps_sock_flow_entries"]
	e := sysctl.New("/")
	res := e.Execute(t.Context(), executors.Request{ID: "k1", Action: sysctl.Action, Params: json.RawMessage(`{"key": "net.core.netdev_budget", "value": 611}`)})
	if res.Status != executors.Succeeded || res.Before["net.core.netdev_budget"] != oldBudget || res.After["net.core.netdev_budget"] != "611" {
		t.Errorf("set: %+v", res)
	}
	if got := nettest.Read(t, filepath.Join("/proc/sys/net/core/netdev_budget")); got != "611" {
		t.Errorf("kernel holds %s", got)
	}

	// Without the power-of-two rule, the kernel's rounding makes the verify fail.
	loose := &sysctl.Executor{Root: "/", Allowed: map[string]sysctl.Bounds{"net.core.rps_sock_flow_entries": {Min: 0, Max: 1 << 20}}}
	res = loose.Execute(t.Context(), executors.Request{ID: "k2", Action: sysctl.Action, Params: json.RawMessage(`{"key": "net.core.rps_sock_flow_entries", "value": 100}`)})
	if res.Status != executors.RolledBack || res.Message != "verify net.core.rps_sock_flow_entries: read back 128, want 100; restored 1 setting(s)" {
		t.Errorf("rounded: %s %q", res.Status, res.Message)
	}
	if got := nettest.Read(t, "/proc/sys/net/core/rps_sock_flow_entries"); got != oldFlow {
		t.Errorf("rps_sock_flow_entries left at %s, want %s", got, oldFlow)
	}
}

func FuzzCheckParams(f *testing.F) {
	nettest.FuzzParams(f, sysctl.New("/nonexistent"), `{"key": "net.core.netdev_budget", "value": 600}`, `{"values": {"a": 1}}`, `{}`, `[]`, `null`)
}
