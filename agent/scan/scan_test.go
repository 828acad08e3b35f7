package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent/detect/detecttest"
)

// fixture lays a whole fixture node (base and every scan) into one root: a static tree
// whose counters do not move, which is all a run of scan over a fixed --host-root sees.
func fixture(t *testing.T, name string) string {
	t.Helper()
	n := detecttest.Load(t, name)
	for n.Next(t) {
	}
	return n.Root
}

func TestRunTableOnSkewedNode(t *testing.T) {
	root := fixture(t, "skewed8")
	// Rewind the affinities to the skewed state the last scans repaired.
	for i, irq := range []string{"24", "25", "26", "27", "28", "29", "30", "31", "32"} {
		m := []string{"20", "10"}[i%2]
		for _, f := range []string{"smp_affinity", "effective_affinity"} {
			if err := os.WriteFile(filepath.Join(root, "proc/irq", irq, f), []byte(m+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"--host-root", root, "--count", "2", "--interval", "1ms", "--driver-stats=false"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"KIND      SUBJECT  SEEN  SUMMARY\n",
		"irq_skew  eth0     1/1   eth0: 9 queue irqs on 2 of 8 cpus (4-5)\n",
		"  irq 24 mlx5_comp0@pci:0000:00:02.0: smp/effective affinity 20 (cpu 5), +0\n",
		"  irq 25 mlx5_comp1@pci:0000:00:02.0: smp/effective affinity 10 (cpu 4), +0\n",
		"  no interrupts on these queues over the interval: the skew costs nothing until traffic comes\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestRunJSONOnLiveHost(t *testing.T) {
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"--count", "2", "--interval", "100ms", "-o", "json"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.HostRoot != "/" || res.Scans != 2 || res.Interval != "100ms" || res.Findings == nil {
		t.Fatalf("result = %+v", res)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("live scan errors: %v", res.Errors)
	}
	t.Logf("live findings: %d", len(res.Findings))
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"--count", "1"}, want: "scan: bad usage: --count 1: at least 2 scans are needed, the first is a baseline"},
		{args: []string{"-o", "yaml"}, want: `scan: bad usage: -o "yaml": want table or json`},
		{args: []string{"--interval", "0s"}, want: "scan: bad usage: --interval must be positive"},
		{args: []string{"extra"}, want: `scan: bad usage: unexpected argument "extra"`},
		{args: []string{"--disable", "gpu"}, want: `detectors: unknown detector "gpu"`},
		{args: []string{"--host-root", "/nonexistent-root"}, want: `detectors: nodefs: could not read "/nonexistent-root/proc": stat /nonexistent-root/proc: no such file or directory`},
	}
	for _, tt := range tests {
		err := Run(context.Background(), tt.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("Run(%v) err = %v, want %q", tt.args, err, tt.want)
		}
	}
	if err := Run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h err = %v", err)
	}
}

func TestScanStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := fixture(t, "virtio1q")
	err := Run(ctx, []string{"--host-root", root, "--count", "3", "--interval", time.Hour.String()}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
