package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent/detect/detecttest"
	"github.com/remedyhq/remedy/nodefs"
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
	res, err := Run(context.Background(), Options{HostRoot: root, Count: 2, Interval: time.Millisecond}, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	if err := PrintTable(&out, res); err != nil {
		t.Fatal(err)
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
	var errb bytes.Buffer
	res, err := Run(context.Background(), Options{Count: 2, Interval: 100 * time.Millisecond, DriverStats: true}, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%v: %s", err, b)
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
		o    Options
		want string
	}{
		{o: Options{Count: 1, Interval: time.Second}, want: "scan: bad usage: --count 1: at least 2 scans are needed, the first is a baseline"},
		{o: Options{Count: 2}, want: "scan: bad usage: --interval must be positive"},
		{o: Options{Count: 2, Interval: time.Millisecond, Disable: []string{"gpu"}}, want: `detectors: unknown detector "gpu"`},
		{o: Options{Count: 2, Interval: time.Millisecond, HostRoot: "/nonexistent-root"}, want: `detectors: nodefs: could not read "/nonexistent-root/proc": stat /nonexistent-root/proc: no such file or directory`},
	}
	for _, tt := range tests {
		_, err := Run(context.Background(), tt.o, &bytes.Buffer{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("Run(%+v) err = %v, want %q", tt.o, err, tt.want)
		}
	}
	if _, err := Run(context.Background(), Options{Count: 1}, &bytes.Buffer{}); !errors.Is(err, ErrUsage) {
		t.Errorf("--count 1 err = %v, want ErrUsage", err)
	}
}

func TestScanStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := fixture(t, "virtio1q")
	_, err := Run(ctx, Options{HostRoot: root, Count: 3, Interval: time.Hour}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestRunShowsLayoutOnHealthyNode: on a node with nothing wrong, scan still prints the
// IRQ → CPU layout it promises: each queue IRQ, where it may go, who served it.
func TestRunShowsLayoutOnHealthyNode(t *testing.T) {
	root := fixture(t, "balanced8")
	var out, errb bytes.Buffer
	res, err := Run(context.Background(), Options{HostRoot: root, Count: 2, Interval: time.Millisecond}, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	if len(res.Findings) != 0 {
		t.Fatalf("findings on a balanced node: %+v", res.Findings)
	}
	if err := PrintTable(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"no findings in 2 scans 1ms apart\n",
		"IRQ layout (interrupts during the 2 scans, 1ms apart):\n  eth0: 9 queue IRQs\n",
		"    irq 24 mlx5_comp0@pci:0000:00:02.0: affinity cpus 6, served by none, +0\n",
		"    irq 32 mlx5_comp8@pci:0000:00:02.0: affinity cpus 1, served by none, +0\n",
		"Counters (growth during the scans):\n  eth0: rx_dropped +0 rx_fifo_errors +0 rx_missed_errors +0 rx_packets +0 tx_dropped +0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestLayoutCountsWhatMoved: between two reads of a replayed node, the layout has the CPUs
// that served each queue IRQ and how much the counters grew.
func TestLayoutCountsWhatMoved(t *testing.T) {
	n := detecttest.Load(t, "balanced8")
	n.Next(t)
	fs, err := nodefs.New(n.Root)
	if err != nil {
		t.Fatal(err)
	}
	ifaces := []string{"eth0"}
	before, err := takeSnapshot(fs, ifaces)
	if err != nil {
		t.Fatal(err)
	}
	n.Next(t)
	after, err := takeSnapshot(fs, ifaces)
	if err != nil {
		t.Fatal(err)
	}
	l := layoutOf(fs, ifaces, before, after)
	if len(l.NICs) != 1 || len(l.NICs[0].IRQs) != 9 {
		t.Fatalf("layout = %+v", l)
	}
	var total uint64
	for _, q := range l.NICs[0].IRQs {
		total += q.Count
		if q.Count > 0 && q.Serving == "" {
			t.Errorf("irq %d: %d interrupts but no serving CPU", q.IRQ, q.Count)
		}
	}
	if total == 0 {
		t.Errorf("no interrupts counted between two scans of the fixture: %+v", l.NICs[0].IRQs)
	}
	t.Logf("layout: %+v", l)
}
