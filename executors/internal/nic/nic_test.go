package nic_test

import (
	"errors"
	"testing"

	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/nettest"
	"github.com/remedyhq/remedy/nodefs"
)

func TestCheckName(t *testing.T) {
	for name, want := range map[string]string{
		"eth0":             "",
		"enp0s31f6":        "",
		"":                 "interface is required",
		"..":               `interface "..": not a valid interface name`,
		"a/b":              `interface "a/b": not a valid interface name`,
		"eth0:1":           `interface "eth0:1": not a valid interface name`,
		"sixteen-chars-xx": `interface "sixteen-chars-xx": longer than 15 characters`,
	} {
		err := nic.CheckName(name)
		if (want == "" && err != nil) || (want != "" && (err == nil || err.Error() != want)) {
			t.Errorf("CheckName(%q) = %v, want %q", name, err, want)
		}
	}
}

func TestQueuesAndMasks(t *testing.T) {
	root := nettest.NodeTree(t, "0-3", "eth0", 3)
	qs, err := nic.RxQueues(root, "eth0")
	if err != nil || len(qs) != 3 || qs[2] != 2 {
		t.Errorf("RxQueues = %v, %v", qs, err)
	}
	if _, err := nic.RxQueues(root, "eth1"); !errors.Is(err, nic.ErrNoDevice) || err.Error() != "interface eth1: no such interface" {
		t.Errorf("missing interface: %v", err)
	}
	online, err := nic.OnlineCPUs(root)
	if err != nil || online.String() != "f" {
		t.Errorf("OnlineCPUs = %s, %v", online, err)
	}
	if off := nic.Offline(nodefs.MaskOf(2, 5, 9), online); nodefs.FormatCPUList(off.CPUs()) != "5,9" {
		t.Errorf("Offline = %v", off.CPUs())
	}
	for in, want := range map[string]string{"00000000,00000003": "3", "f0\n": "f0", "1,00000000": "1,00000000"} {
		if got, err := nic.CanonMask(in); err != nil || got != want {
			t.Errorf("CanonMask(%q) = %q, %v", in, got, err)
		}
	}
}
