package nicrps_test

import (
	"encoding/json"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/nettest"
	"github.com/remedyhq/remedy/executors/nicrps"
)

func TestCheckParams(t *testing.T) {
	nettest.CheckParams(t, nicrps.NewRPS("/nonexistent"), map[string]string{
		`{"interface": "eth0", "cpus": "ff"}`:                            "",
		`{"interface": "eth0", "cpus": "ff,ffffffff", "queues": [0, 1]}`: "",
		`{"interface": "eth0", "cpus": "0"}`:                             "",
		`{"interface": "eth0"}`:                                          "invalid parameters: cpus is required",
		`{"interface": "eth0", "cpus": "0-3"}`:                           `invalid parameters: cpus: invalid cpu mask: group "0-3"`,
		`{"interface": "eth0", "cpus": "xyz"}`:                           `invalid parameters: cpus: invalid cpu mask: group "xyz"`,
		`{"interface": "eth0", "cpus": "ff,"}`:                           `invalid parameters: cpus: invalid cpu mask: group ""`,
		`{"interface": "eth0", "cpus": "ff", "queues": [1, 1]}`:          "invalid parameters: queue 1 listed twice",
		`{"interface": "eth0", "cpus": "ff", "queues": [-1]}`:            "invalid parameters: queue -1 out of range [0, 4095]",
		`{"interface": "eth 0", "cpus": "ff"}`:                           `invalid parameters: interface "eth 0": not a valid interface name`,
	})
	nettest.CheckParams(t, nicrps.NewRFS("/nonexistent"), map[string]string{
		`{"interface": "eth0", "flowEntries": 32768}`:                        "",
		`{"interface": "eth0", "flowEntries": 0, "queueFlowCount": 0}`:       "",
		`{"interface": "eth0"}`:                                              "invalid parameters: flowEntries is required",
		`{"interface": "eth0", "flowEntries": 30000}`:                        "invalid parameters: net.core.rps_sock_flow_entries=30000 is not a power of two (the kernel would round it up)",
		`{"interface": "eth0", "flowEntries": 4194304}`:                      "invalid parameters: net.core.rps_sock_flow_entries=4194304 out of range [0, 1048576]",
		`{"interface": "eth0", "flowEntries": 32768, "queueFlowCount": 100}`: "invalid parameters: queueFlowCount=100 must be 0 or a power of two up to 1048576",
	})
}

func exec(t *testing.T, e executors.Executor, params string, dry bool) executors.Result {
	t.Helper()
	return e.Execute(t.Context(), executors.Request{ID: "p", Action: e.Action(), Params: json.RawMessage(params), DryRun: dry})
}

// Fixture tree: the mask is written to every queue; a write that fails on the third
// queue (a read-only file) restores the two already written.
func TestRPSFixture(t *testing.T) {
	root := nettest.NodeTree(t, "0-7", "eth0", 4)
	e := nicrps.NewRPS(root)
	res := exec(t, e, `{"interface": "eth0", "cpus": "f0", "queues": [1, 3]}`, false)
	if res.Status != executors.Succeeded || res.Message != "set eth0/rx-1/rps_cpus 0->f0, eth0/rx-3/rps_cpus 0->f0" {
		t.Errorf("queues: %s %q", res.Status, res.Message)
	}
	if got := nettest.Read(t, nic.QueueFile(root, "eth0", 0, "rps_cpus")); got != "00" {
		t.Errorf("queue 0 changed to %s", got)
	}
	res = exec(t, e, `{"interface": "eth0", "cpus": "ff00"}`, false)
	if res.Status != executors.Refused || res.Message != "cpus ff00 names CPUs 8-15 that are not online (online: 0-7)" {
		t.Errorf("offline cpus: %s %q", res.Status, res.Message)
	}
	res = exec(t, e, `{"interface": "eth0", "cpus": "ff", "queues": [7]}`, false)
	if res.Status != executors.Refused || res.Message != "interface eth0 has no rx queue 7 (it has 4)" {
		t.Errorf("missing queue: %s %q", res.Status, res.Message)
	}

	nettest.ReadOnly(t, nic.QueueFile(root, "eth0", 2, "rps_cpus"))
	res = exec(t, e, `{"interface": "eth0", "cpus": "3"}`, false)
	if res.Status != executors.RolledBack || res.Message != "write eth0/rx-2/rps_cpus: read-only file system; restored 2 setting(s)" {
		t.Errorf("half way: %s %q", res.Status, res.Message)
	}
	// rx-0 is written back in canonical form, rx-2 was never written.
	for q, want := range []string{"0", "f0", "00", "f0"} {
		if got := nettest.Read(t, nic.QueueFile(root, "eth0", q, "rps_cpus")); got != want {
			t.Errorf("rx-%d rps_cpus %s after rollback, want %s", q, got, want)
		}
	}
}

// The real kernel: rps_cpus and rps_flow_cnt of a veth's 4 rx queues in a network
// namespace, and the root namespace's rps_sock_flow_entries (restored after).
func TestKernel(t *testing.T) {
	v := nettest.NewVeth(t, 4)
	nettest.RootSysctls(t, "net.core.rps_sock_flow_entries")
	rps, rfs := nicrps.NewRPS(v.Root), nicrps.NewRFS(v.Root)
	params := `{"interface": "` + v.If + `", "cpus": "3"}`
	if res := exec(t, rps, params, true); res.Status != executors.DryRun || res.After[v.If+"/rx-3/rps_cpus"] != "3" {
		t.Errorf("dry run: %+v", res)
	}
	if got := nettest.Read(t, nic.QueueFile(v.Root, v.If, 3, "rps_cpus")); got != "0" {
		t.Errorf("dry run wrote %s", got)
	}
	res := exec(t, rps, params, false)
	if res.Status != executors.Succeeded || res.Before[v.If+"/rx-0/rps_cpus"] != "0" {
		t.Errorf("rps: %s %q", res.Status, res.Message)
	}
	for q := range 4 {
		if got := nettest.Read(t, nic.QueueFile(v.Root, v.If, q, "rps_cpus")); got != "3" {
			t.Errorf("kernel rx-%d rps_cpus = %s", q, got)
		}
	}
	if res := exec(t, rps, params, false); res.Message != "no change: 4 setting(s) already hold the wanted values" {
		t.Errorf("re-apply: %s %q", res.Status, res.Message)
	}
	res = exec(t, rps, `{"interface": "`+v.If+`", "cpus": "f"}`, false)
	if res.Status != executors.Refused || res.Message != "cpus f names CPUs 2-3 that are not online (online: 0-1)" {
		t.Errorf("offline: %s %q", res.Status, res.Message)
	}
	res = exec(t, rps, `{"interface": "nosuch0", "cpus": "1"}`, false)
	if res.Status != executors.Refused || res.Message != "interface nosuch0: no such interface" {
		t.Errorf("unknown interface: %s %q", res.Status, res.Message)
	}

	res = exec(t, rfs, `{"interface": "`+v.If+`", "flowEntries": 32768}`, false)
	if res.Status != executors.Succeeded || res.After["net.core.rps_sock_flow_entries"] != "32768" || res.After[v.If+"/rx-2/rps_flow_cnt"] != "8192" {
		t.Errorf("rfs: %+v", res)
	}
	if got := nettest.Read(t, nic.QueueFile(v.Root, v.If, 2, "rps_flow_cnt")); got != "8192" {
		t.Errorf("kernel rx-2 rps_flow_cnt = %s", got)
	}
	if got := nettest.Read(t, "/proc/sys/net/core/rps_sock_flow_entries"); got != "32768" {
		t.Errorf("kernel rps_sock_flow_entries = %s", got)
	}
	// Off again: the previous state.
	if res := exec(t, rfs, `{"interface": "`+v.If+`", "flowEntries": 0}`, false); res.Status != executors.Succeeded {
		t.Errorf("rfs off: %s %q", res.Status, res.Message)
	}
	if got := nettest.Read(t, nic.QueueFile(v.Root, v.If, 2, "rps_flow_cnt")); got != "0" {
		t.Errorf("kernel rx-2 rps_flow_cnt = %s after turning RFS off", got)
	}
}

func FuzzCheckParamsRPS(f *testing.F) {
	nettest.FuzzParams(f, nicrps.NewRPS("/nonexistent"), `{"interface": "eth0", "cpus": "ff,ffffffff"}`, `{"interface": "eth0", "cpus": ","}`, `{"queues": [1]}`)
}

func FuzzCheckParamsRFS(f *testing.F) {
	nettest.FuzzParams(f, nicrps.NewRFS("/nonexistent"), `{"interface": "eth0", "flowEntries": 32768}`, `{"interface": "eth0", "flowEntries": -1}`)
}
