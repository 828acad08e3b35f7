package psi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/remedyhq/remedy/agent/detect/detecttest"
	"github.com/remedyhq/remedy/nodefs"
)

// BenchmarkScan110Pods is one PSI scan reading every pod of a node running 110 pods
// (the kubelet's default maximum), each with its three pressure files and cpu.stat.
// With the default PodEvery of 10, one scan in ten costs this.
func BenchmarkScan110Pods(b *testing.B) {
	root := b.TempDir()
	write := func(path, s string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	line := "some avg10=1.00 avg60=0.50 avg300=0.10 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
	for _, r := range Resources {
		write(filepath.Join(root, "proc/pressure", r), line)
	}
	write(filepath.Join(root, "sys/fs/cgroup/cgroup.controllers"), "cpu io memory\n")
	for i := range 110 {
		dir := filepath.Join(root, "sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice",
			fmt.Sprintf("kubepods-burstable-pod%08x_0000_4000_8000_000000000000.slice", i))
		for _, r := range Resources {
			write(filepath.Join(dir, r+".pressure"), line)
		}
		write(filepath.Join(dir, "cpu.stat"), "usage_usec 900\nnr_periods 10\nnr_throttled 8\nthrottled_usec 280000\n")
	}
	fs, err := nodefs.New(root)
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(fs, Options{PodEvery: 1})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	if len(d.prevPods.groups) != 110 {
		b.Fatalf("pod groups = %d", len(d.prevPods.groups))
	}
	b.ReportAllocs()
	c0 := detecttest.CPUTime(b)
	for b.Loop() {
		if _, err := d.Scan(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	detecttest.ReportCPU(b, c0)
}
