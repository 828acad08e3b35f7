package drops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

func subjects(fs []detect.Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Subject)
	}
	return strings.Join(s, " ")
}

func TestSkewedNodeDrops(t *testing.T) {
	n, d := replay(t, "skewed8", Options{})
	var got []string
	var scan1 []detect.Finding
	for i := 0; n.Next(t); i++ {
		fs, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, subjects(fs))
		if i == 1 {
			scan1 = fs
		}
	}
	all := "eth0:ring_overflow eth0:dropped softnet:backlog_overflow softnet:budget_exhausted"
	want := []string{"", all, all, all, "", "", ""}
	if !slices.Equal(got, want) {
		t.Fatalf("subjects per scan:\n%q\nwant\n%q", got, want)
	}
	byCause := map[string]detect.Finding{}
	for _, f := range scan1 {
		byCause[f.Labels["cause"]] = f
	}
	for cause, rate := range map[string]float64{CauseRing: 300, CauseStack: 500, CauseBacklog: 50} {
		if v := byCause[cause].Values["drops_per_second"]; v != rate {
			t.Errorf("%s rate = %v, want %v", cause, v, rate)
		}
	}
	if v := byCause[CauseBudget].Values["squeezes_per_second"]; v != 300 {
		t.Errorf("squeeze rate = %v, want 300", v)
	}
	if ev := byCause[CauseRing].Evidence; !slices.Equal(ev, []string{"eth0 rx_missed_errors +300 (300 -> 600)"}) {
		t.Errorf("ring evidence = %q", ev)
	}
	if ev := byCause[CauseBudget].Evidence; !slices.Equal(ev, []string{"cpu 4 softnet time_squeeze +100", "cpu 5 softnet time_squeeze +200"}) {
		t.Errorf("squeeze evidence = %q", ev)
	}
	if v := testutil.ToFloat64(d.m.softnet.WithLabelValues(CauseBudget)); v != 0 {
		t.Errorf("squeeze metric after recovery = %v", v)
	}
}

func TestBalancedNodeQuiet(t *testing.T) {
	n, d := replay(t, "balanced8", Options{})
	for n.Next(t) {
		fs, err := d.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 0 {
			t.Fatalf("quiet node flagged: %s", subjects(fs))
		}
	}
	// One squeeze a second is below the default threshold but measured.
	if v := testutil.ToFloat64(d.m.softnet.WithLabelValues(CauseBudget)); v != 1 {
		t.Errorf("squeeze metric = %v, want 1", v)
	}
}

func TestDriverStats(t *testing.T) {
	calls := map[string]int{}
	var missed uint64
	stats := func(iface string) (map[string]uint64, error) {
		calls[iface]++
		if iface == "lo" {
			return nil, errors.New("operation not supported")
		}
		missed += 1000
		// rx_missed_errors repeats the generic sysfs counter: it must not be counted twice.
		return map[string]uint64{"rx_out_of_buffer": missed, "rx_packets_phy": 5e6, "rx_queue_3_drops": 7, "rx_missed_errors": missed * 7}, nil
	}
	n, d := replay(t, "balanced8", Options{Interfaces: []string{"eth0", "lo"}, DriverStats: stats})
	var last []detect.Finding
	for n.Next(t) {
		var err error
		if last, err = d.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if subjects(last) != "eth0:ring_overflow" {
		t.Fatalf("findings = %s", subjects(last))
	}
	if ev := last[0].Evidence; !slices.Equal(ev, []string{"eth0 driver:rx_out_of_buffer +1000 (3000 -> 4000)"}) {
		t.Errorf("evidence = %q", ev)
	}
	if calls["lo"] != 1 || calls["eth0"] != 4 {
		t.Errorf("driver stats calls = %v; an unsupported driver is asked once", calls)
	}
}

func TestDriverCause(t *testing.T) {
	for name, want := range map[string]string{
		"rx_missed_errors": CauseRing, "rx_fifo_errors": CauseRing, "rx_out_of_buffer": CauseRing,
		"rx_discards_phy": CauseRing, "rx_no_buffer_count": CauseRing, "rx_queue_0_drops": CauseStack,
		"tx_dropped": CauseStack, "rx_packets": "", "peer_ifindex": "",
	} {
		if got := driverCause(name); got != want {
			t.Errorf("driverCause(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nodefs.FS{}, Options{MinDropRate: -1}); err == nil || err.Error() != "drops: negative minimum rate" {
		t.Fatalf("err = %v", err)
	}
}

// TestLiveVeth provokes real drops: a veth pair whose peer, in its own network
// namespace, has a smaller MTU than the packets sent to it, so the kernel drops them on
// the way over and counts tx_dropped on our side.
func TestLiveVeth(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test: creates a network namespace and a veth pair")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace and a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to create a veth pair")
	}
	id := os.Getpid() % 100000
	ns, a, b := fmt.Sprintf("rdt-ns%d", id), fmt.Sprintf("rdtA%d", id), fmt.Sprintf("rdtB%d", id)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("link", "add", a, "type", "veth", "peer", "name", b)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", a).Run() })
	run("link", "set", b, "netns", ns)
	run("addr", "add", "10.213.7.1/30", "dev", a)
	run("link", "set", a, "up")
	run("-n", ns, "addr", "add", "10.213.7.2/30", "dev", b)
	run("-n", ns, "link", "set", b, "mtu", "1280", "up")

	fs, err := nodefs.New("/")
	if err != nil {
		t.Fatal(err)
	}
	stats, closeStats, err := EthtoolStats()
	if err != nil {
		t.Fatal(err)
	}
	defer closeStats()
	d, err := New(fs, Options{Interfaces: []string{a}, DriverStats: stats})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", "10.213.7.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Send until the kernel has dropped at least 100: the first packets wait for ARP,
	// which a loaded machine may take a while to answer.
	big := make([]byte, 1400)
	counter := fmt.Sprintf("/sys/class/net/%s/statistics/tx_dropped", a)
	for deadline := time.Now().Add(10 * time.Second); ; {
		for range 50 {
			_, _ = conn.Write(big) // a write refused while ARP resolves is retried by the loop
		}
		b, err := os.ReadFile(counter)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel dropped only %s packets in 10s", strings.TrimSpace(string(b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	fsgot, err := d.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := subjects(fsgot); got != a+":dropped" {
		t.Fatalf("findings = %q, want %s:dropped", got, a)
	}
	f := fsgot[0]
	if f.Values["drops"] < 100 || !strings.HasPrefix(f.Evidence[0], a+" tx_dropped +") {
		t.Fatalf("finding = %+v", f)
	}
	t.Logf("live: %s (%v)", f.Summary, f.Evidence)
}
