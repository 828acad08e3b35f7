package psi

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detecttest"
	"github.com/remedyhq/remedy/nodefs"
)

func replay(t *testing.T, name string, opts Options) (*detecttest.Node, *Detector) {
	return detecttest.Replay(t, name, func(fs nodefs.FS, now func() time.Time) (*Detector, error) {
		opts.Now = now
		return New(fs, opts)
	})
}

const (
	throttledPod = "11111111-2222-3333-4444-555555555555"
	contendedPod = "66666666-7777-8888-9999-000000000000"
)

func TestPressureShapes(t *testing.T) {
	n, d := replay(t, "psi", Options{PodEvery: 1, Registerer: prometheus.NewRegistry()})
	var last []detect.Finding
	for i := 0; n.Next(t); i++ {
		fs, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && len(fs) != 0 {
			t.Fatalf("baseline scan found %d", len(fs))
		}
		last = fs
	}
	got := map[string]detect.Finding{}
	var subjects []string
	for _, f := range last {
		got[f.Subject] = f
		subjects = append(subjects, f.Subject)
	}
	want := []string{"pod:" + throttledPod + ":cpu", "pod:" + contendedPod + ":cpu", "node:cpu", "node:io"}
	if !slices.Equal(subjects, want) {
		t.Fatalf("subjects = %q\nwant %q", subjects, want)
	}
	tests := []struct {
		subject, line, cause string
		values               map[string]float64
	}{
		{subject: "pod:" + throttledPod + ":cpu", line: "some", cause: CauseThrottling,
			values: map[string]float64{"some_percent": 30, "throttled_percent": 28, "nr_throttled": 8, "nr_periods": 10}},
		{subject: "pod:" + contendedPod + ":cpu", line: "some", cause: CauseContention,
			values: map[string]float64{"some_percent": 40, "throttled_percent": 0}},
		{subject: "node:cpu", line: "some", cause: CauseContention,
			values: map[string]float64{"some_percent": 35, "pods_throttled_percent": 28}},
		{subject: "node:io", line: "full", cause: CauseContention,
			values: map[string]float64{"some_percent": 40, "full_percent": 25}},
	}
	for _, tt := range tests {
		f := got[tt.subject]
		if f.Labels["line"] != tt.line || f.Labels["cause"] != tt.cause {
			t.Errorf("%s: labels %v, want line %s cause %s", tt.subject, f.Labels, tt.line, tt.cause)
		}
		for k, v := range tt.values {
			if math.Abs(f.Values[k]-v) > 1e-9 {
				t.Errorf("%s: %s = %v, want %v", tt.subject, k, f.Values[k], v)
			}
		}
	}
	if f := got["node:cpu"]; f.Summary != "node cpu pressure: some 35% (contention)" {
		t.Errorf("summary = %q", f.Summary)
	}
	// The node's cpu file has no full line (kernels before 5.13): no full measurement.
	if _, ok := got["node:cpu"].Values["full_percent"]; ok {
		t.Error("node cpu full measured without a full line")
	}
	if f := got["pod:"+throttledPod+":cpu"]; f.Labels["cgroup"] != "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice" ||
		!slices.Contains(f.Evidence, "cpu.stat: throttled in 8 of 10 periods, 28.0% of the interval") {
		t.Errorf("throttled pod finding = %+v", f)
	}
	if v := testutil.ToFloat64(d.m.throttled.Vec.WithLabelValues(throttledPod)); v != 28 {
		t.Errorf("remedy_psi_cpu_throttled_percent = %v", v)
	}
	if v := testutil.ToFloat64(d.m.stalled.Vec.WithLabelValues("", "memory", "some")); math.Abs(v-0.1) > 1e-9 {
		t.Errorf("node memory stall metric = %v, want 0.1", v)
	}
}

// TestPodEvery: pods are read every other scan and their findings stand in between;
// the node is judged every scan.
func TestPodEvery(t *testing.T) {
	n, d := replay(t, "psi", Options{PodEvery: 2})
	var got []string
	for n.Next(t) {
		fs, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pods, node := 0, 0
		for _, f := range fs {
			if f.Labels["scope"] == "pod" {
				pods++
			} else {
				node++
			}
		}
		got = append(got, fmt.Sprintf("%d+%d", pods, node))
	}
	if want := []string{"0+0", "0+2", "2+2", "2+2", "2+2"}; !slices.Equal(got, want) {
		t.Fatalf("pod+node findings per scan = %v, want %v", got, want)
	}
	// The pods' rates span the two scans between reads: still 30% throttled-pod stall.
	if v := testutil.ToFloat64(d.m.stalled.Vec.WithLabelValues(throttledPod, "cpu", "some")); v != 30 {
		t.Fatalf("throttled pod stall = %v", v)
	}
}

// TestHybridCgroupAndQuiet: the 96-CPU node mounts cgroup v2 at sys/fs/cgroup/unified
// (hybrid hierarchy); its pods are found and measured, none is under pressure.
func TestHybridCgroupAndQuiet(t *testing.T) {
	n, d := replay(t, "node96", Options{PodEvery: 1})
	if !strings.HasSuffix(d.cgroot, "sys/fs/cgroup/unified") {
		t.Fatalf("cgroup root = %q", d.cgroot)
	}
	for n.Next(t) {
		fs, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 0 {
			t.Fatalf("quiet node flagged: %+v", fs)
		}
	}
	// 3 pods x 3 resources x some and full, and the node's cpu some, memory and io some and full.
	if c := testutil.CollectAndCount(d.m.stalled.Vec); c != 3*3*2+5 {
		t.Errorf("stalled series = %d, want 23", c)
	}
	if len(d.prevPods.groups) != 3 {
		t.Fatalf("pod groups = %d, want 3", len(d.prevPods.groups))
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		th   map[string]Threshold
		want string
	}{
		{th: map[string]Threshold{"disk": {Some: 1}}, want: `psi: unknown resource "disk"`},
		{th: map[string]Threshold{"io": {Some: 101}}, want: "psi: io threshold not in [0,100]"},
	} {
		if _, err := New(nodefs.FS{}, Options{Thresholds: tt.th, CgroupRoot: "-"}); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}

func TestPodUID(t *testing.T) {
	for in, want := range map[string]string{
		"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_0000_4000_8000_000000000001.slice": "0a1b2c3d-0000-4000-8000-000000000001",
		"kubepods/besteffort/pod0a1b2c3d-0000-4000-8000-000000000002":                                              "0a1b2c3d-0000-4000-8000-000000000002",
		"system.slice/foo.service": "system.slice/foo.service",
	} {
		if got := podUID(in); got != want {
			t.Errorf("podUID(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLiveKernel reads this machine's /proc/pressure and cgroup v2 pressure files.
func TestLiveKernel(t *testing.T) {
	fs, err := nodefs.New("/")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(fs, Options{CgroupGlobs: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	node := d.prevNode.groups[""]
	if len(node.pressure) == 0 {
		t.Skip("this kernel has no /proc/pressure (CONFIG_PSI off or psi=0)")
	}
	for _, r := range Resources {
		if p, ok := node.pressure[r]; !ok || p.Some == nil {
			t.Errorf("no %s pressure read", r)
		}
	}
	if d.cgroot == "" {
		t.Log("no cgroup v2 mount: pod pressure not exercised live")
	} else {
		t.Logf("cgroup v2 at %s: %d cgroups read", d.cgroot, len(d.prevPods.groups))
	}
}

// TestLiveCgroupPressure puts three busy loops into a fresh cgroup v2 group on this
// 2-CPU machine, so they wait for CPU, and expects the group's CPU pressure to be seen.
func TestLiveCgroupPressure(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test: burns CPU for a second in a new cgroup")
	}
	fs, err := nodefs.New("/")
	if err != nil {
		t.Fatal(err)
	}
	probe, err := New(fs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if probe.cgroot == "" {
		t.Skip("no cgroup v2 mount on this machine")
	}
	name := fmt.Sprintf("remedy-psi-test-%d", os.Getpid())
	dir := filepath.Join(probe.cgroot, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup here (%v): needs root and a writable cgroup v2 mount", err)
	}
	var procs []*exec.Cmd
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
		_ = os.Remove(dir)
	})
	ncpu := runtime.NumCPU()
	for range ncpu + 1 {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := New(fs, Options{PodEvery: 1, CgroupGlobs: []string{name}, Thresholds: map[string]Threshold{"cpu": {Some: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	found, err := d.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if f.Subject == "pod:"+name+":cpu" {
			if f.Values["some_percent"] < 1 {
				t.Fatalf("cpu some = %v%%", f.Values["some_percent"])
			}
			t.Logf("live: %s; %v", f.Summary, f.Evidence)
			return
		}
	}
	t.Fatalf("%d busy loops on %d CPUs left no CPU pressure finding: %+v", ncpu+1, ncpu, found)
}

// TestNoPSI: a kernel without PSI (CONFIG_PSI off or psi=0) has no /proc/pressure;
// the detector measures nothing and reports no error.
func TestNoPSI(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"proc", "sys"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := nodefs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(fs, Options{Now: detecttest.NewClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		found, err := d.Scan(context.Background())
		if err != nil || len(found) != 0 {
			t.Fatalf("scan = %+v, %v", found, err)
		}
	}
	if d.cgroot != "" || len(d.prevNode.groups[""].pressure) != 0 {
		t.Fatalf("read something: cgroot %q, %+v", d.cgroot, d.prevNode.groups[""])
	}
}
