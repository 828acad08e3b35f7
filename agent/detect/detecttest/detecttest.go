// Package detecttest replays the fixture nodes under agent/detect/testdata/nodes into a
// temporary host root, one scan at a time, for the detectors' tests and benchmarks.
package detecttest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/remedyhq/remedy/nodefs"
)

// Node is a fixture node being replayed. Root is the host root to give nodefs.New.
type Node struct {
	Root  string
	dir   string
	scans int
	next  int
}

// NodesDir is the directory holding the fixture nodes.
func NodesDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "nodes")
}

// Load copies the base tree of fixture node name into a temporary root. No scan is
// applied yet: call Next before the first scan.
func Load(tb testing.TB, name string) *Node {
	tb.Helper()
	dir := filepath.Join(NodesDir(), name)
	n := &Node{Root: tb.TempDir(), dir: dir}
	if err := copyTree(filepath.Join(dir, "base"), n.Root); err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("scan%d", n.scans))); err != nil {
			break
		}
		n.scans++
	}
	if n.scans == 0 {
		tb.Fatalf("fixture %s has no scans", name)
	}
	return n
}

// Scans is the number of scans the fixture holds.
func (n *Node) Scans() int { return n.scans }

// Next lays the next scan's files over the root; it returns false after the last scan.
func (n *Node) Next(tb testing.TB) bool {
	tb.Helper()
	if n.next >= n.scans {
		return false
	}
	if err := copyTree(filepath.Join(n.dir, fmt.Sprintf("scan%d", n.next)), n.Root); err != nil {
		tb.Fatal(err)
	}
	n.next++
	return true
}

// copyTree copies src over dst, keeping symlinks and following those already in dst
// (so an overlay's sys/class/net/eth0/... lands in the device directory).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			_ = os.Remove(target)
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
	})
}

// Clock is a fake clock that moves one Step per call.
type Clock struct {
	T    time.Time
	Step time.Duration
}

// NewClock starts at a fixed time and steps one second per call.
func NewClock() *Clock {
	return &Clock{T: time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC), Step: time.Second}
}

// Now advances the clock by Step and returns it.
func (c *Clock) Now() time.Time {
	c.T = c.T.Add(c.Step)
	return c.T
}

// CPUTime is the process's user and system CPU time so far.
func CPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU reports the process CPU time per benchmark op since c0 as cpu-ns/op: on a
// shared machine wall time includes waiting for a core, CPU time does not.
func ReportCPU(b *testing.B, c0 time.Duration) {
	b.ReportMetric(float64((CPUTime(b)-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// Replay loads fixture node name and builds a detector over its root with build, which
// gets the fixture's FS and a fake clock stepping one second per call.
func Replay[D any](tb testing.TB, name string, build func(fs nodefs.FS, now func() time.Time) (D, error)) (*Node, D) {
	tb.Helper()
	n := Load(tb, name)
	fs, err := nodefs.New(n.Root)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := build(fs, NewClock().Now)
	if err != nil {
		tb.Fatal(err)
	}
	return n, d
}
