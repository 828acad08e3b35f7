package nicring_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/nettest"
	"github.com/remedyhq/remedy/executors/nicring"
)

func TestCheckParams(t *testing.T) {
	tests := map[string]string{
		`{"interface": "eth0", "rx": 4096, "tx": 4096, "overMax": "clamp"}`: "",
		`{"interface": "eth0", "rx": 512}`:                                  "",
		`{"interface": "eth0", "rx": 0}`:                                    "invalid parameters: rx ring 0 out of range [1, 65536]",
		`{"interface": "eth0", "tx": 100000}`:                               "invalid parameters: tx ring 100000 out of range [1, 65536]",
		`{"interface": "eth0"}`:                                             "invalid parameters: rx or tx is required",
		`{"rx": 512}`:                                                       "invalid parameters: interface is required",
		`{"interface": "../eth0", "rx": 512}`:                               `invalid parameters: interface "../eth0": not a valid interface name`,
		`{"interface": "averyveryverylongname", "rx": 512}`:                 `invalid parameters: interface "averyveryverylongname": longer than 15 characters`,
		`{"interface": "eth0", "rx": 512, "overMax": "max"}`:                `invalid parameters: overMax "max": want "refuse" or "clamp"`,
		`{"interface": "eth0", "rx": 512, "mini": 1}`:                       `invalid parameters: json: unknown field "mini"`,
	}
	e := nicring.New("/nonexistent", &nettest.FakeNIC{})
	nettest.CheckParams(t, e, tests)
}

// The ring logic against a fake device with the maxima of the field report's VMs
// (1024 by default, 8192 at most).
func TestExecuteFake(t *testing.T) {
	dev := func() *nettest.FakeNIC {
		return &nettest.FakeNIC{R: nic.Ring{RxMax: 8192, TxMax: 8192, Rx: 1024, Tx: 1024}}
	}
	tests := []struct {
		name, params string
		dry          bool
		dev          *nettest.FakeNIC
		status       executors.Status
		msg          string
		rx, tx       uint32
	}{
		{name: "raises both", params: `{"interface": "eth0", "rx": 4096, "tx": 2048}`,
			status: executors.Succeeded, msg: "set eth0/ring/rx 1024->4096, eth0/ring/tx 1024->2048", rx: 4096, tx: 2048},
		{name: "dry run", params: `{"interface": "eth0", "rx": 4096}`, dry: true,
			status: executors.DryRun, msg: "would set eth0/ring/rx 1024->4096", rx: 1024, tx: 1024},
		{name: "same value", params: `{"interface": "eth0", "rx": 1024}`,
			status: executors.Succeeded, msg: "no change: 1 setting(s) already hold the wanted values", rx: 1024, tx: 1024},
		{name: "above max refused", params: `{"interface": "eth0", "rx": 16384}`,
			status: executors.Refused, msg: "rx ring 16384 above the device maximum 8192 of eth0", rx: 1024, tx: 1024},
		{name: "above max clamped", params: `{"interface": "eth0", "rx": 16384, "tx": 9000, "overMax": "clamp"}`,
			status: executors.Succeeded, msg: "set eth0/ring/rx 1024->8192, eth0/ring/tx 1024->8192", rx: 8192, tx: 8192},
		{name: "ring 0 refused before the device", params: `{"interface": "eth0", "rx": 0}`,
			status: executors.Refused, msg: "invalid parameters: rx ring 0 out of range [1, 65536]", rx: 1024, tx: 1024},
		{name: "unknown interface", params: `{"interface": "eth9", "rx": 2048}`,
			status: executors.Refused, msg: "interface eth9: no such interface", rx: 1024, tx: 1024},
		{name: "device rounds: verify fails and rolls back", params: `{"interface": "eth0", "rx": 2048, "tx": 1000}`,
			dev:    &nettest.FakeNIC{R: nic.Ring{RxMax: 8192, TxMax: 8192, Rx: 1024, Tx: 1024}, RoundRing: 512},
			status: executors.RolledBack, msg: "verify eth0/ring/tx: read back 1024, want 1000; restored 2 setting(s)", rx: 1024, tx: 1024},
	}
	root := nettest.NodeTree(t, "0-7", "eth0", 8)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.dev
			if d == nil {
				d = dev()
			}
			res := nicring.New(root, d).Execute(t.Context(), executors.Request{ID: "r1", Action: nicring.Action, Params: json.RawMessage(tc.params), DryRun: tc.dry})
			if res.Status != tc.status || res.Message != tc.msg {
				t.Errorf("got %s %q\nwant %s %q", res.Status, res.Message, tc.status, tc.msg)
			}
			if d.R.Rx != tc.rx || d.R.Tx != tc.tx {
				t.Errorf("device holds rx %d tx %d, want %d %d", d.R.Rx, d.R.Tx, tc.rx, tc.tx)
			}
		})
	}
}

// The real ethtool path on a veth in a network namespace: veth has no ring sizes
// (EOPNOTSUPP), so the action is refused with nothing changed. This is as far as the real
// implementation can be driven here: no device on this machine supports ring sizes.
func TestExecuteKernelNotSupported(t *testing.T) {
	v := nettest.NewVeth(t, 4)
	dev := nic.Kernel{NetNS: v.NSPath}
	res := nicring.New(v.Root, dev).Execute(t.Context(), executors.Request{ID: "r1", Action: nicring.Action,
		Params: json.RawMessage(`{"interface": "` + v.If + `", "rx": 512}`)})
	want := "get ring " + v.If + ": not supported by the device (operation not supported)"
	if res.Status != executors.Refused || res.Message != want {
		t.Errorf("got %s %q, want refused %q", res.Status, res.Message, want)
	}
	if err := dev.SetRing(t.Context(), v.If, nic.Ring{Rx: 512, Tx: 512}); !errors.Is(err, nic.ErrNotSupported) {
		t.Errorf("SetRing: %v", err)
	}
	if _, err := dev.Ring(t.Context(), "nosuch0"); !errors.Is(err, nic.ErrNoDevice) {
		t.Errorf("Ring of a missing interface: %v", err)
	}
	_, err := nic.Kernel{NetNS: "/run/netns/remedy-none"}.Ring(t.Context(), v.If)
	if err == nil || err.Error() != "get ring "+v.If+": ethtool: netns /run/netns/remedy-none: no such file or directory" {
		t.Errorf("Ring in a missing namespace: %v", err)
	}
	t.Log("not testable here: ring sizes of a real NIC (no device on this machine supports ETHTOOL_GRINGPARAM); covered by the fake")
}

func FuzzCheckParams(f *testing.F) {
	nettest.FuzzParams(f, nicring.New("/nonexistent", &nettest.FakeNIC{}), `{"interface": "eth0", "rx": 4096}`, `{"interface": "", "rx": -1}`, `{"overMax": "clamp"}`, `null`)
}
