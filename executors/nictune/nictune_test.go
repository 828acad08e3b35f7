package nictune_test

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/nettest"
	"github.com/remedyhq/remedy/executors/nictune"
	"github.com/remedyhq/remedy/executors/sysctl"
)

func TestCheckParams(t *testing.T) {
	tests := map[string]string{
		`{"interface": "eth0"}`: "",
		`{"interface": "eth0", "ringCap": 4096, "backlogPerCPU": 2048, "budgetPerCPU": 100, "skip": ["rps", "ring"]}`: "",
		`{}`:                                  "invalid parameters: interface is required",
		`{"interface": "eth0", "ringCap": 0}`: "invalid parameters: ringCap 0 out of range [1, 65536]",
		`{"interface": "eth0", "backlogPerCPU": 100000}`: "invalid parameters: backlogPerCPU 100000 out of range [1, 65536]",
		`{"interface": "eth0", "skip": ["xps"]}`:         `invalid parameters: skip "xps": not one of ring, channels, rps, rfs, backlog`,
	}
	e := nictune.New("/nonexistent", &nettest.FakeNIC{})
	nettest.CheckParams(t, e, tests)
}

func fakeNIC() *nettest.FakeNIC {
	return &nettest.FakeNIC{R: nic.Ring{RxMax: 4096, TxMax: 4096, Rx: 512, Tx: 512}, C: nic.Channels{MaxCombined: 4, Combined: 2}}
}

func exec(t *testing.T, e executors.Executor, params string, dry bool) executors.Result {
	t.Helper()
	return e.Execute(t.Context(), executors.Request{ID: "t", Action: nictune.Action, Params: json.RawMessage(params), DryRun: dry})
}

// An 8-CPU node whose NIC has 4 combined channels at most: everything is sized from the
// CPU count and the maxima.
func TestProfileFake(t *testing.T) {
	root := nettest.NodeTree(t, "0-7", "eth0", 4)
	dev := fakeNIC()
	e := nictune.New(root, dev)
	want := map[string]string{
		"eth0/channels/combined":         "4",
		"eth0/ring/rx":                   "4096",
		"eth0/ring/tx":                   "4096",
		"eth0/rx-0/rps_cpus":             "ff",
		"eth0/rx-3/rps_cpus":             "ff",
		"eth0/rx-3/rps_flow_cnt":         "8192",
		"net.core.rps_sock_flow_entries": "32768",
		"net.core.netdev_max_backlog":    "8192",
		"net.core.netdev_budget":         "512",
	}
	res := exec(t, e, `{"interface": "eth0"}`, true)
	if res.Status != executors.DryRun || dev.Sets != 0 || nettest.Read(t, sysctl.Path(root, "net.core.netdev_budget")) != "300" {
		t.Fatalf("dry run: %s %q, %d device sets", res.Status, res.Message, dev.Sets)
	}
	res = exec(t, e, `{"interface": "eth0"}`, false)
	if res.Status != executors.Succeeded {
		t.Fatalf("apply: %s %q", res.Status, res.Message)
	}
	for k, v := range want {
		if res.After[k] != v {
			t.Errorf("after %s = %q, want %q", k, res.After[k], v)
		}
	}
	if dev.R.Rx != 4096 || dev.C.Combined != 4 || nettest.Read(t, nic.QueueFile(root, "eth0", 2, "rps_cpus")) != "ff" {
		t.Errorf("node not tuned: ring %d, combined %d", dev.R.Rx, dev.C.Combined)
	}
	res = exec(t, e, `{"interface": "eth0"}`, false)
	if res.Status != executors.Succeeded || res.Message != "no change: 14 setting(s) already hold the wanted values" {
		t.Errorf("re-apply: %s %q", res.Status, res.Message)
	}

	res = exec(t, nictune.New(root, fakeNIC()), `{"interface": "eth0", "ringCap": 1024, "skip": ["channels", "rps", "rfs", "backlog"]}`, false)
	if res.Status != executors.Succeeded || res.Message != "set eth0/ring/rx 512->1024, eth0/ring/tx 512->1024" {
		t.Errorf("ring only: %s %q", res.Status, res.Message)
	}
}

// All or nothing: the last write (the budget sysctl, read-only here) fails, and the ring,
// channels, RPS, RFS and backlog already written are all put back.
func TestAllOrNothingFake(t *testing.T) {
	root := nettest.NodeTree(t, "0-7", "eth0", 4)
	nettest.ReadOnly(t, sysctl.Path(root, "net.core.netdev_budget"))
	dev := fakeNIC()
	res := exec(t, nictune.New(root, dev), `{"interface": "eth0"}`, false)
	if res.Status != executors.RolledBack || res.Message != "write net.core.netdev_budget: read-only file system; restored 13 setting(s)" {
		t.Fatalf("got %s %q", res.Status, res.Message)
	}
	if dev.R != fakeNIC().R || dev.C != fakeNIC().C {
		t.Errorf("device not restored: %+v %+v", dev.R, dev.C)
	}
	for k, v := range res.Before {
		if res.After[k] != v {
			t.Errorf("%s: after %q, before %q", k, res.After[k], v)
		}
	}
	if got := nettest.Read(t, sysctl.Path(root, "net.core.netdev_max_backlog")); got != "1000" {
		t.Errorf("backlog left at %s", got)
	}
}

// The real kernel: a veth with 4 queues in a namespace on this 2-CPU machine. Channels
// go to 2 through real ethtool ioctls, ring sizes are left out (veth has none), RPS is
// left out (2 queues cover 2 CPUs), RFS and the backlog are set in the root namespace and
// restored when the test ends.
func TestKernel(t *testing.T) {
	v := nettest.NewVeth(t, 4)
	// netdev_max_backlog is not written here (backlogPerCPU 1 sizes it below its minimum,
	// and it is never lowered): the spine's end-to-end test reads it from the live kernel
	// while other packages' tests run.
	nettest.RootSysctls(t, "net.core.rps_sock_flow_entries", "net.core.netdev_budget")
	dev := nic.Kernel{NetNS: v.NSPath}
	res := exec(t, nictune.New(v.Root, dev), `{"interface": "`+v.If+`", "backlogPerCPU": 1, "budgetPerCPU": 200}`, false)
	if res.Status != executors.Succeeded {
		t.Fatalf("apply: %s %q", res.Status, res.Message)
	}
	t.Logf("%s (took %s)", res.Message, res.FinishedAt.Sub(res.StartedAt))
	ch, err := dev.Channels(t.Context(), v.If)
	if err != nil || ch.Rx != 2 || ch.Tx != 2 {
		t.Errorf("kernel channels %+v, %v", ch, err)
	}
	if res.Before["net.core.netdev_max_backlog"] != res.After["net.core.netdev_max_backlog"] {
		t.Errorf("backlog changed: %+v", res)
	}
	// 200 per CPU on 2 CPUs, unless the node already had more (never lowered).
	before, _ := strconv.Atoi(res.Before["net.core.netdev_budget"])
	if got := nettest.Read(t, "/proc/sys/net/core/netdev_budget"); got != strconv.Itoa(max(400, before)) || res.After["net.core.netdev_budget"] != got {
		t.Errorf("budget %s, result %q", got, res.After["net.core.netdev_budget"])
	}
	if got := nettest.Read(t, nic.QueueFile(v.Root, v.If, 1, "rps_flow_cnt")); got != res.After[v.If+"/rx-1/rps_flow_cnt"] || got == "0" {
		t.Errorf("rx-1 rps_flow_cnt %s", got)
	}
	for _, note := range []string{"ring (not supported by the device)", "rps (2 rx queues already cover 2 CPUs)"} {
		if !strings.Contains(res.Message, note) {
			t.Errorf("message %q does not say %q", res.Message, note)
		}
	}
}

// All or nothing against the real kernel: the veth's channels are changed through ethtool,
// then a sysctl write fails (a read-only fixture stands in for /proc/sys), and the
// channels are put back in the kernel.
func TestKernelAllOrNothing(t *testing.T) {
	v := nettest.NewVeth(t, 4)
	root := t.TempDir()
	nettest.Tree(t, root, map[string]string{
		"sys":                                     "->" + filepath.Join(v.Root, "sys"),
		"proc/sys/net/core/netdev_max_backlog":    "1000\n",
		"proc/sys/net/core/netdev_budget":         "300\n",
		"proc/sys/net/core/rps_sock_flow_entries": "0\n",
	})
	nettest.ReadOnly(t, sysctl.Path(root, "net.core.netdev_max_backlog"))
	dev := nic.Kernel{NetNS: v.NSPath}
	res := exec(t, nictune.New(root, dev), `{"interface": "`+v.If+`"}`, false)
	if res.Status != executors.RolledBack || res.Message != "write net.core.netdev_max_backlog: read-only file system; restored 5 setting(s); left out: ring (not supported by the device), rps (2 rx queues already cover 2 CPUs)" {
		t.Fatalf("got %s %q", res.Status, res.Message)
	}
	ch, err := dev.Channels(t.Context(), v.If)
	if err != nil || ch.Rx != 4 || ch.Tx != 4 {
		t.Errorf("kernel channels after rollback %+v, %v; want 4 and 4", ch, err)
	}
	if got := nettest.Read(t, sysctl.Path(root, "net.core.rps_sock_flow_entries")); got != "0" {
		t.Errorf("rps_sock_flow_entries left at %s", got)
	}
}

func FuzzCheckParams(f *testing.F) {
	nettest.FuzzParams(f, nictune.New("/nonexistent", &nettest.FakeNIC{}), `{"interface": "eth0"}`, `{"interface": "eth0", "skip": ["ring"]}`, `{"ringCap": -1}`)
}
