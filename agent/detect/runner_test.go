package detect

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/remedyhq/remedy/wire/signal"
)

// script is a detector that replays one scan's findings (or error) per call.
type script struct {
	scans [][]Finding
	errs  []error
	i     int
}

func (s *script) Name() string { return "script" }

func (s *script) Scan(context.Context) ([]Finding, error) {
	i := s.i
	s.i++
	var err error
	if i < len(s.errs) {
		err = s.errs[i]
	}
	if i < len(s.scans) {
		return s.scans[i], err
	}
	return nil, err
}

type recorder struct {
	got  []signal.Signal
	fail int // fail this many calls first
}

func (r *recorder) Publish(_ context.Context, s signal.Signal) error {
	if r.fail > 0 {
		r.fail--
		return errors.New("nats down")
	}
	if err := s.Validate(); err != nil {
		return err
	}
	r.got = append(r.got, s)
	return nil
}

var skew = Finding{Kind: signal.KindIRQSkew, Subject: "eth0", Summary: "9 queue irqs on 2 of 8 cpus",
	Values: map[string]float64{"spread_ratio": 0.25}, Evidence: []string{"irq 24 -> cpu 5"}}

// clock ticks one second per call.
func clock() func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func TestHysteresis(t *testing.T) {
	f := []Finding{skew}
	det := &script{scans: [][]Finding{f, f, f, f, nil, f, nil, nil, nil, nil}}
	pub := &recorder{}
	reg := prometheus.NewRegistry()
	r, err := NewRunner(Options{Node: "node-1", FireAfter: 3, ResolveAfter: 2, Publisher: pub, Registerer: reg, Now: clock()}, det)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for range det.scans {
		rep := r.Scan(context.Background())
		st := "-"
		if len(rep.Findings) == 1 {
			st = string(rep.Findings[0].State)
		}
		states = append(states, st)
	}
	want := "pending pending firing firing clearing firing clearing resolved - -"
	if got := strings.Join(states, " "); got != want {
		t.Fatalf("states = %s\nwant     %s", got, want)
	}
	if len(pub.got) != 2 {
		t.Fatalf("published %d signals, want 2: %+v", len(pub.got), pub.got)
	}
	fire, res := pub.got[0], pub.got[1]
	if fire.Status != signal.Firing || res.Status != signal.Resolved {
		t.Fatalf("statuses %s, %s", fire.Status, res.Status)
	}
	start := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	if !fire.StartsAt.Equal(start) || !res.StartsAt.Equal(start) || !res.EndsAt.Equal(start.Add(7*time.Second)) {
		t.Fatalf("times: fire %v, resolved %v..%v", fire.StartsAt, res.StartsAt, res.EndsAt)
	}
	if fire.Fingerprint != res.Fingerprint || fire.Key() == res.Key() {
		t.Fatal("firing and resolved must share a fingerprint and differ in key")
	}
	if fire.Labels["subject"] != "eth0" || fire.Annotations["evidence"] != "irq 24 -> cpu 5" || fire.Values["spread_ratio"] != 0.25 {
		t.Fatalf("signal content: %+v", fire)
	}
	if fire.Source != "agent" || fire.Node != "node-1" || fire.Subject() != "remedy.signals.node-1.irq_skew" {
		t.Fatalf("signal routing: %+v", fire)
	}
	if got := testutil.ToFloat64(r.m.published.WithLabelValues("irq_skew", "resolved")); got != 1 {
		t.Fatalf("published resolved metric = %v", got)
	}
}

func TestPendingNeverFiresNeverPublishes(t *testing.T) {
	f := []Finding{skew}
	pub := &recorder{}
	r, _ := NewRunner(Options{Node: "n", FireAfter: 3, Publisher: pub}, &script{scans: [][]Finding{f, f, nil, f, f, nil}})
	for range 6 {
		r.Scan(context.Background())
	}
	if len(pub.got) != 0 {
		t.Fatalf("a flapping finding published %v", pub.got)
	}
}

func TestEventFiresAtOnce(t *testing.T) {
	ev := Finding{Kind: signal.KindVMFreeze, Subject: "clock", Event: true, Summary: "wall clock jumped 6s"}
	pub := &recorder{}
	r, _ := NewRunner(Options{Node: "n", FireAfter: 3, ResolveAfter: 1, Publisher: pub}, &script{scans: [][]Finding{{ev}, nil}})
	r.Scan(context.Background())
	if len(pub.got) != 1 || pub.got[0].Status != signal.Firing {
		t.Fatalf("after the event scan: %+v", pub.got)
	}
	r.Scan(context.Background())
	if len(pub.got) != 2 || pub.got[1].Status != signal.Resolved {
		t.Fatalf("after the quiet scan: %+v", pub.got)
	}
}

func TestPublishRetried(t *testing.T) {
	f := []Finding{skew}
	pub := &recorder{fail: 2}
	r, _ := NewRunner(Options{Node: "n", FireAfter: 1, Publisher: pub}, &script{scans: [][]Finding{f, f, f}})
	r.Scan(context.Background())
	r.Scan(context.Background())
	if len(pub.got) != 0 || testutil.ToFloat64(r.m.publishErrors) != 2 {
		t.Fatalf("published %v with %v errors", pub.got, testutil.ToFloat64(r.m.publishErrors))
	}
	r.Scan(context.Background())
	if len(pub.got) != 1 {
		t.Fatalf("retry did not publish: %v", pub.got)
	}
	if !pub.got[0].StartsAt.Equal(r.tracked[skew.Key()].Since) {
		t.Fatal("retried signal must keep its start time (and so its key)")
	}
}

func TestFailedDetectorHoldsFindings(t *testing.T) {
	f := []Finding{skew}
	boom := errors.New("read /proc/interrupts: permission denied")
	det := &script{scans: [][]Finding{f, nil, f}, errs: []error{nil, boom, nil}}
	r, _ := NewRunner(Options{Node: "n", FireAfter: 2}, det)
	r.Scan(context.Background())
	rep := r.Scan(context.Background())
	if rep.Errors["script"] != boom.Error() || len(rep.Findings) != 1 || rep.Findings[0].Seen != 1 {
		t.Fatalf("failed scan report: %+v", rep)
	}
	rep = r.Scan(context.Background())
	if rep.Findings[0].State != Firing {
		t.Fatalf("state after hold = %s, want firing", rep.Findings[0].State)
	}
}

func TestNewRunnerErrors(t *testing.T) {
	d := &script{}
	tests := []struct {
		opts Options
		ds   []Detector
		want string
	}{
		{opts: Options{Node: "n"}, want: "detect: no detectors"},
		{opts: Options{}, ds: []Detector{d}, want: "detect: signal has no node"},
		{opts: Options{Node: "a b"}, ds: []Detector{d}, want: `detect: invalid node name "a b"`},
		{opts: Options{Node: "n", FireAfter: -1}, ds: []Detector{d}, want: "detect: negative fire-after, resolve-after or interval"},
	}
	for _, tt := range tests {
		_, err := NewRunner(tt.opts, tt.ds...)
		if err == nil || err.Error() != tt.want {
			t.Errorf("NewRunner(%+v) err = %v, want %q", tt.opts, err, tt.want)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := NewRunner(Options{Node: "n", Registerer: reg}, d); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRunner(Options{Node: "n", Registerer: reg}, d); err == nil || !strings.HasPrefix(err.Error(), "register metrics: ") {
		t.Fatalf("double registration err = %v", err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	det := &script{}
	r, _ := NewRunner(Options{Node: "n", Interval: time.Millisecond}, det)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if det.i < 1 {
		t.Fatal("Run never scanned")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run took %s to stop after a 30ms context", d)
	}
}

// TestReturnBeforeResolvedPublished: a finding that comes back while its resolved signal
// could not be published simply goes on firing; nothing is published twice.
func TestReturnBeforeResolvedPublished(t *testing.T) {
	f := []Finding{skew}
	pub := &recorder{}
	r, _ := NewRunner(Options{Node: "n", FireAfter: 1, ResolveAfter: 1, Publisher: pub}, &script{scans: [][]Finding{f, nil, f, nil}})
	r.Scan(context.Background())
	pub.fail = 1
	r.Scan(context.Background()) // resolved, publish fails
	rep := r.Scan(context.Background())
	if len(rep.Findings) != 1 || rep.Findings[0].State != Firing || len(pub.got) != 1 {
		t.Fatalf("after return: %+v, published %d", rep.Findings, len(pub.got))
	}
	r.Scan(context.Background())
	if len(pub.got) != 2 || pub.got[1].Status != signal.Resolved || !pub.got[1].StartsAt.Equal(pub.got[0].StartsAt) {
		t.Fatalf("published %+v", pub.got)
	}
}
