package nic_test

import (
	"errors"
	"path/filepath"
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

// FuzzCheckName: a name CheckName accepts stays one entry below /sys/class/net.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"eth0", "enp0s31f6", "", "..", ".", "a/b", "eth0:1", "sixteen-chars-xx", "a\x00b", "..a", `a\b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if nic.CheckName(name) != nil {
			return
		}
		root := "/host"
		dir := nic.Dir(root, name)
		if filepath.Dir(dir) != filepath.Join(root, "sys", "class", "net") || filepath.Base(dir) != name {
			t.Fatalf("accepted %q leads to %s", name, dir)
		}
	})
}

// FuzzCanonMask: the canonical form of a mask is a fixed point and the same CPU set.
func FuzzCanonMask(f *testing.F) {
	for _, s := range []string{"ff", "00000000,00000010\n", "0", "ff,ffffffff", ",", "", "1,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := nic.CanonMask(s)
		if err != nil {
			return
		}
		again, err := nic.CanonMask(c)
		if err != nil || again != c {
			t.Fatalf("CanonMask(%q) = %q, whose canonical form is %q (%v)", s, c, again, err)
		}
		a, _ := nodefs.ParseCPUMask(s)
		b, _ := nodefs.ParseCPUMask(c)
		if !a.Equal(b) {
			t.Fatalf("CanonMask(%q) = %q changed the set", s, c)
		}
	})
}
