// Package nettest is the node executors' test kit, in the spirit of net/http/httptest.
// It gives tests real kernel parts where the machine has them — a veth pair with several
// queues inside a network namespace of its own, and a host root whose sys/ is that
// namespace's sysfs, so an executor writes the pair's rps_cpus and channels exactly as it
// would a node's NIC — and stand-ins where it has not: fixture host roots (NodeTree,
// Node8), a read-only bind mount to make one write fail (ReadOnly), and FakeNIC for ring
// sizes no virtual device supports. CheckParams and FuzzParams check executors'
// parameters. Everything created is deleted when the test ends. Only tests import it.
package nettest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Required reports whether a test that cannot run here must fail rather than skip:
// under make test (REMEDY_E2E=1) and in CI.
func Required() bool { return os.Getenv("REMEDY_E2E") == "1" || os.Getenv("CI") != "" }

// Need skips a kernel test under -short, and when the machine cannot run it says why:
// a skip with the reason locally, a failure under Required.
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel test: skipped with -short")
	}
	var why string
	if os.Geteuid() != 0 {
		why = "needs root (netns, veth, sysfs mounts)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs ip from iproute2 (hack/deps.d/20-node.sh)"
	}
	if why == "" {
		return
	}
	if Required() {
		t.Fatalf("cannot run here: %s", why)
	}
	t.Skipf("cannot run here: %s", why)
}

// Veth is one end of a veth pair living in its own network namespace.
type Veth struct {
	NS     string // namespace name (ip netns)
	NSPath string // /run/netns/NAME, for nic.Kernel.NetNS
	If     string // the end the executors act on
	Peer   string // the other end, in the same namespace
	Root   string // a host root: sys/ is the namespace's sysfs, proc/ the host's /proc
}

// NewVeth creates a namespace holding a veth pair with rxQueues rx and tx queues on each
// end, and a host root for it. It is deleted when the test ends.
func NewVeth(t testing.TB, rxQueues int) *Veth {
	t.Helper()
	Need(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	v := &Veth{NS: "rmx" + id, If: "rma" + id, Peer: "rmb" + id}
	v.NSPath = filepath.Join("/run/netns", v.NS)
	run(t, "ip", "netns", "add", v.NS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", v.NS).Run() })
	q := strconv.Itoa(rxQueues)
	run(t, "ip", "-n", v.NS, "link", "add", v.If, "numrxqueues", q, "numtxqueues", q, "type", "veth",
		"peer", "name", v.Peer, "numrxqueues", q, "numtxqueues", q)
	run(t, "ip", "-n", v.NS, "link", "set", v.If, "up")
	run(t, "ip", "-n", v.NS, "link", "set", v.Peer, "up")

	v.Root = t.TempDir()
	sys := filepath.Join(v.Root, "sys")
	if err := os.Mkdir(sys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc", filepath.Join(v.Root, "proc")); err != nil {
		t.Fatal(err)
	}
	mountSysfs(t, v.NSPath, sys)
	t.Cleanup(func() {
		if err := unix.Unmount(sys, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", sys, err)
		}
	})
	return v
}

// mountSysfs mounts a sysfs from inside the namespace: sysfs shows the network devices of
// the namespace of whoever mounts it, as `ip netns exec` relies on.
func mountSysfs(t testing.TB, nsPath, dir string) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatal(err)
	}
	merr := unix.Mount("sysfs", dir, "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err := netns.Set(orig); err != nil {
		panic("nettest: cannot leave netns: " + err.Error())
	}
	if merr != nil {
		t.Fatalf("mount sysfs in %s: %v", nsPath, merr)
	}
}

// Read returns a file's trimmed content.
func Read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// RootSysctls lets a test write root-namespace sysctls (keys like
// "net.core.netdev_budget"): it holds a machine-wide lock for the test's duration, so that
// the packages' tests, which run in parallel processes, do not write the same global
// values at once, and restores every key when the test ends. It returns the old values.
func RootSysctls(t testing.TB, keys ...string) map[string]string {
	t.Helper()
	Need(t)
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "remedy-root-sysctls.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // runs last: after the restores below
	old := map[string]string{}
	for _, key := range keys {
		p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
		v := Read(t, p)
		old[key] = v
		t.Cleanup(func() {
			if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
				t.Errorf("restore %s=%s: %v", key, v, err)
			}
		})
	}
	return old
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// Tree writes a fixture tree below root: path (slash-separated, relative) to content.
// Content starting with "->" makes a symlink to the rest.
func Tree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(c, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// ReadOnly bind-mounts a fixture file read-only onto itself, so that writing it fails
// with EROFS even for root: a real write failure at a chosen point of a transaction.
func ReadOnly(t testing.TB, path string) {
	t.Helper()
	Need(t)
	if err := unix.Mount(path, path, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", path, err)
		}
	})
	if err := unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", path, err)
	}
}
