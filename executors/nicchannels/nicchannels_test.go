package nicchannels_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/nettest"
	"github.com/remedyhq/remedy/executors/nicchannels"
)

func TestCheckParams(t *testing.T) {
	tests := map[string]string{
		`{"interface": "eth0", "combined": 8}`:    "",
		`{"interface": "eth0", "rx": 2, "tx": 2}`: "",
		`{"interface": "eth0"}`:                   "invalid parameters: combined, rx or tx is required",
		`{"interface": "eth0", "combined": 0}`:    "invalid parameters: combined channels 0 out of range [1, 4096]",
		`{"interface": "eth0", "rx": 5000}`:       "invalid parameters: rx channels 5000 out of range [1, 4096]",
		`{"interface": "", "combined": 2}`:        "invalid parameters: interface is required",
		`{"interface": "eth0", "combined": 2.5}`:  "invalid parameters: json: cannot unmarshal number 2.5 into Go struct field Params.combined of type int64",
	}
	e := nicchannels.New("/nonexistent", &nettest.FakeNIC{})
	nettest.CheckParams(t, e, tests)
}

func TestExecuteFake(t *testing.T) {
	root := nettest.NodeTree(t, "0-7", "eth0", 4)
	tests := []struct {
		name, params string
		status       executors.Status
		msg          string
		combined     uint32
	}{
		{"raises to the CPU count", `{"interface": "eth0", "combined": 8}`, executors.Succeeded, "set eth0/channels/combined 4->8", 8},
		{"above the CPU count", `{"interface": "eth0", "combined": 9}`, executors.Refused, "combined channels 9 above the 8 online CPUs", 4},
		{"above the device maximum", `{"interface": "eth0", "combined": 32}`, executors.Refused, "combined channels 32 above the device maximum 16 of eth0", 4},
		{"unknown interface", `{"interface": "eth1", "combined": 2}`, executors.Refused, "interface eth1: no such interface", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := &nettest.FakeNIC{C: nic.Channels{MaxCombined: 16, Combined: 4}}
			res := nicchannels.New(root, dev).Execute(t.Context(), executors.Request{ID: "c", Action: nicchannels.Action, Params: json.RawMessage(tc.params)})
			if res.Status != tc.status || res.Message != tc.msg {
				t.Errorf("got %s %q\nwant %s %q", res.Status, res.Message, tc.status, tc.msg)
			}
			if dev.C.Combined != tc.combined {
				t.Errorf("device holds %d combined, want %d", dev.C.Combined, tc.combined)
			}
		})
	}
	dev := &nettest.FakeNIC{C: nic.Channels{MaxCombined: 16, Combined: 4}, ChanErr: nic.ErrNotSupported}
	res := nicchannels.New(root, dev).Execute(t.Context(), executors.Request{ID: "c", Action: nicchannels.Action, Params: json.RawMessage(`{"interface": "eth0", "combined": 2}`)})
	if res.Status != executors.Refused || res.Message != "not supported by the device" {
		t.Errorf("unsupported: %s %q", res.Status, res.Message)
	}
}

func rxQueues(t *testing.T, v *nettest.Veth) int {
	ents, err := filepath.Glob(filepath.Join(nic.Dir(v.Root, v.If), "queues", "rx-*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// The real kernel: a veth with 4 rx/tx queues in a network namespace, driven through the
// real ethtool ioctls. The change shows in the namespace's sysfs (fewer rx queues), is a
// no-op when repeated, and the old value is put back by the same action.
func TestExecuteKernel(t *testing.T) {
	v := nettest.NewVeth(t, 4)
	dev := nic.Kernel{NetNS: v.NSPath}
	e := nicchannels.New(v.Root, dev)
	run := func(params string, dry bool) executors.Result {
		return e.Execute(t.Context(), executors.Request{ID: "c", Action: nicchannels.Action, Params: json.RawMessage(params), DryRun: dry})
	}
	params := `{"interface": "` + v.If + `", "rx": 1, "tx": 2}`
	res := run(params, true)
	if res.Status != executors.DryRun || res.Message != "would set "+v.If+"/channels/rx 4->1, "+v.If+"/channels/tx 4->2" || rxQueues(t, v) != 4 {
		t.Fatalf("dry run: %s %q, %d rx queues", res.Status, res.Message, rxQueues(t, v))
	}
	res = run(params, false)
	if res.Status != executors.Succeeded || res.After[v.If+"/channels/rx"] != "1" || res.Before[v.If+"/channels/rx"] != "4" {
		t.Fatalf("apply: %+v", res)
	}
	ch, err := dev.Channels(t.Context(), v.If)
	if err != nil || ch.Rx != 1 || ch.Tx != 2 {
		t.Fatalf("kernel holds %+v, %v", ch, err)
	}
	if n := rxQueues(t, v); n != 1 {
		t.Errorf("sysfs shows %d rx queues, want 1", n)
	}
	if res := run(params, false); res.Status != executors.Succeeded || res.Message != "no change: 2 setting(s) already hold the wanted values" {
		t.Errorf("re-apply: %s %q", res.Status, res.Message)
	}

	// Bad requests change nothing.
	for _, tc := range []struct{ params, msg string }{
		{`{"interface": "` + v.If + `", "rx": 3}`, "rx channels 3 above the 2 online CPUs"},
		{`{"interface": "` + v.If + `", "combined": 1}`, "combined channels 1 above the device maximum 0 of " + v.If},
		{`{"interface": "nosuch0", "rx": 1}`, "interface nosuch0: no such interface"},
	} {
		if res := run(tc.params, false); res.Status != executors.Refused || res.Message != tc.msg {
			t.Errorf("%s: got %s %q, want refused %q", tc.params, res.Status, res.Message, tc.msg)
		}
	}
	if ch2, _ := dev.Channels(t.Context(), v.If); ch2 != ch {
		t.Errorf("a refused action changed the device: %+v -> %+v", ch, ch2)
	}

	// Changing it again, within the CPU count (the snapshot's 4 is above it: only the
	// executor's own rollback may write that back).
	back, _ := json.Marshal(map[string]any{"interface": v.If, "rx": 2, "tx": 2})
	if res := run(string(back), false); res.Status != executors.Succeeded {
		t.Errorf("second change: %s %q", res.Status, res.Message)
	}
	if n := rxQueues(t, v); n != 2 {
		t.Errorf("sysfs shows %d rx queues after the second change, want 2", n)
	}
}

// A device whose maximum is below the CPU count refuses by its maximum (veth with 1 queue).
func TestExecuteKernelAboveMax(t *testing.T) {
	v := nettest.NewVeth(t, 1)
	res := nicchannels.New(v.Root, nic.Kernel{NetNS: v.NSPath}).Execute(t.Context(), executors.Request{ID: "c", Action: nicchannels.Action,
		Params: json.RawMessage(`{"interface": "` + v.If + `", "rx": 2}`)})
	if want := "rx channels 2 above the device maximum 1 of " + v.If; res.Status != executors.Refused || res.Message != want {
		t.Errorf("got %s %q, want refused %q", res.Status, res.Message, want)
	}
}

func FuzzCheckParams(f *testing.F) {
	nettest.FuzzParams(f, nicchannels.New("/nonexistent", &nettest.FakeNIC{}), `{"interface": "eth0", "combined": 8}`, `{"interface": "eth0", "rx": -1}`, `{}`)
}
