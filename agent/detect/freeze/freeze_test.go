package freeze

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/wire/signal"
)

// clocks replays readings built from per-scan steps of the three clocks.
type clocks struct {
	r     Reading
	steps [][3]time.Duration // wall, mono, boot
	i     int
}

func (c *clocks) Read() Reading {
	if c.i > 0 {
		s := c.steps[c.i-1]
		c.r.Wall = c.r.Wall.Add(s[0])
		c.r.Mono += s[1]
		c.r.Boot += s[2]
	}
	c.i++
	return c.r
}

func newClocks(steps ...[3]time.Duration) *clocks {
	return &clocks{r: Reading{Wall: time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC), Mono: time.Hour, Boot: time.Hour}, steps: steps}
}

const s = time.Second

func TestClockJumps(t *testing.T) {
	tests := []struct {
		name     string
		step     [3]time.Duration
		interval time.Duration
		cause    string
		lost     float64
	}{
		{name: "steady", step: [3]time.Duration{s, s, s}},
		{name: "frozen monotonic, wall corrected", step: [3]time.Duration{7 * s, s, s}, cause: CauseWallJump, lost: 6},
		{name: "suspended", step: [3]time.Duration{31 * s, s, 31 * s}, cause: CauseSuspend, lost: 30},
		{name: "paused with clocks running", step: [3]time.Duration{9 * s, 9 * s, 9 * s}, interval: s, cause: CauseScanGap, lost: 8},
		{name: "paused, interval unknown", step: [3]time.Duration{9 * s, 9 * s, 9 * s}},
		{name: "ntp stepped back", step: [3]time.Duration{-4 * s, s, s}},
		{name: "below threshold", step: [3]time.Duration{2*s - time.Millisecond, s, s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(Options{Clock: newClocks(tt.step), Interval: tt.interval})
			if err != nil {
				t.Fatal(err)
			}
			if fs, err := d.Scan(context.Background()); err != nil || len(fs) != 0 {
				t.Fatalf("baseline scan: %v, %v", fs, err)
			}
			fs, err := d.Scan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tt.cause == "" {
				if len(fs) != 0 {
					t.Fatalf("flagged: %+v", fs)
				}
				return
			}
			if len(fs) != 1 {
				t.Fatalf("findings = %+v", fs)
			}
			f := fs[0]
			if f.Kind != signal.KindVMFreeze || f.Subject != "clock" || !f.Event || f.Labels["cause"] != tt.cause {
				t.Fatalf("finding = %+v", f)
			}
			want := "the VM lost about " + (time.Duration(tt.lost) * s).String() + " between two scans (" + tt.cause + ")"
			if f.Summary != want {
				t.Fatalf("summary = %q, want %q", f.Summary, want)
			}
			if got := testutil.ToFloat64(d.m.detected.WithLabelValues(tt.cause)); got != 1 {
				t.Fatalf("detected metric = %v", got)
			}
		})
	}
}

const doc = `{"DocumentIncarnation": 3, "Events": [
 {"EventId": "602d9444-d2cd-49c7-8624-8643e7171297", "EventType": "Freeze", "ResourceType": "VirtualMachine",
  "Resources": ["aks-nodepool1-0"], "EventStatus": "Scheduled", "NotBefore": "Thu, 26 Nov 2026 01:15:00 GMT",
  "Description": "Host update", "EventSource": "Platform", "DurationInSeconds": 5},
 {"EventId": "B7E2F7A5-A0BA-4B29-8C5B-2F6F5B1F2A11", "EventType": "Reboot", "ResourceType": "VirtualMachine",
  "Resources": ["aks-nodepool1-0"], "EventStatus": "Scheduled", "NotBefore": "", "DurationInSeconds": -1},
 {"EventId": "C1", "EventType": "Freeze", "ResourceType": "VirtualMachine", "Resources": ["aks-nodepool1-7"],
  "EventStatus": "Scheduled", "NotBefore": "", "DurationInSeconds": 5}]}`

// imds serves a Scheduled Events document that the test can swap.
type imds struct {
	mu    sync.Mutex
	body  string
	code  int
	polls int
}

func (m *imds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls++
	if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("api-version") == "" {
		http.Error(w, "Bad request. Required metadata header not specified", http.StatusBadRequest)
		return
	}
	if m.code != 0 {
		http.Error(w, "boom", m.code)
		return
	}
	_, _ = w.Write([]byte(m.body))
}

func (m *imds) set(body string, code int) {
	m.mu.Lock()
	m.body, m.code = body, code
	m.mu.Unlock()
}

func TestScheduledFreeze(t *testing.T) {
	srv := &imds{body: doc}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	steady := [3]time.Duration{s, s, s}
	d, err := New(Options{IMDSEndpoint: ts.URL + "/metadata/scheduledevents?api-version=2020-07-01", VMName: "aks-nodepool1-0",
		IMDSInterval: 3 * s, Clock: newClocks(slices.Repeat([][3]time.Duration{steady}, 20)...)})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := d.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("findings = %+v", fs)
	}
	f := fs[0]
	if f.Subject != "imds:602d9444-d2cd-49c7-8624-8643e7171297" || f.Labels["event_status"] != "Scheduled" ||
		f.Values["duration_seconds"] != 5 || f.Values["not_before_unix"] != float64(time.Date(2026, 11, 26, 1, 15, 0, 0, time.UTC).Unix()) {
		t.Fatalf("finding = %+v", f)
	}
	if f.Summary != "scheduled Freeze (Scheduled), not before Thu, 26 Nov 2026 01:15:00 GMT, 5s" {
		t.Fatalf("summary = %q", f.Summary)
	}
	// Polls are spaced by IMDSInterval: scans 2 and 3 reuse the answer.
	d.Scan(context.Background())
	d.Scan(context.Background())
	if srv.polls != 1 {
		t.Fatalf("polls = %d after 3 scans 1s apart, want 1", srv.polls)
	}
	// IMDS fails: the error is returned, the known event is kept.
	srv.set("", http.StatusInternalServerError)
	fs, err = d.Scan(context.Background())
	if err == nil || err.Error() != "freeze: imds: status 500: boom" {
		t.Fatalf("err = %v", err)
	}
	if len(fs) != 1 || testutil.ToFloat64(d.m.imdsErrors) != 1 {
		t.Fatalf("after a failed poll: %+v", fs)
	}
}

// TestScheduledFreezeThroughRunner: the event fires after three scans and resolves
// once IMDS stops listing it.
func TestScheduledFreezeThroughRunner(t *testing.T) {
	srv := &imds{body: doc}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d, err := New(Options{IMDSEndpoint: ts.URL + "/?api-version=2020-07-01", VMName: "aks-nodepool1-0", IMDSInterval: time.Nanosecond,
		Clock: newClocks(slices.Repeat([][3]time.Duration{{s, s, s}}, 20)...)})
	if err != nil {
		t.Fatal(err)
	}
	var got []signal.Signal
	r, err := detect.NewRunner(detect.Options{Node: "aks-nodepool1-0", FireAfter: 3, ResolveAfter: 1,
		Publisher: detect.PublisherFunc(func(_ context.Context, s signal.Signal) error { got = append(got, s); return nil })}, d)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r.Scan(context.Background())
	}
	if len(got) != 1 || got[0].Status != signal.Firing || got[0].Labels["event_type"] != "Freeze" {
		t.Fatalf("after 3 scans: %+v", got)
	}
	srv.set(`{"DocumentIncarnation": 4, "Events": []}`, 0)
	r.Scan(context.Background())
	if len(got) != 2 || got[1].Status != signal.Resolved {
		t.Fatalf("after the event ended: %+v", got)
	}
}

func TestParseDocument(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: `{"Events": [{"EventType": "Freeze"}]}`, want: "invalid scheduled events document: event 0 has no EventId or EventType"},
		{in: `{"Events": [{"EventId": "a", "EventType": "Freeze", "NotBefore": "tomorrow"}]}`, want: `invalid scheduled events document: event a NotBefore "tomorrow"`},
		{in: `[`, want: "invalid scheduled events document: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		if _, err := ParseDocument([]byte(tt.in)); err == nil || err.Error() != tt.want {
			t.Errorf("ParseDocument(%s) err = %v, want %q", tt.in, err, tt.want)
		}
	}
	d, err := ParseDocument([]byte(doc))
	if err != nil || d.DocumentIncarnation != 3 || len(d.Events) != 3 {
		t.Fatalf("doc = %+v, %v", d, err)
	}
}

func FuzzParseDocument(f *testing.F) {
	f.Add([]byte(doc))
	f.Add([]byte(`{"Events":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDocument(b)
		if err != nil {
			return
		}
		// What is accepted re-encodes and parses back to the same events.
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseDocument(out)
		if err != nil || len(back.Events) != len(d.Events) {
			t.Fatalf("round trip of %q: %v", b, err)
		}
		for _, ev := range d.Events {
			if ev.EventID == "" || ev.EventType == "" {
				t.Fatalf("accepted an event without id or type: %+v", ev)
			}
		}
	})
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{JumpThreshold: -1}); err == nil || err.Error() != "freeze: negative threshold or interval" {
		t.Fatalf("err = %v", err)
	}
}

// TestLiveClocks reads this machine's clocks: two scans a moment apart agree.
func TestLiveClocks(t *testing.T) {
	// A generous threshold: on a loaded machine the sleep may overrun.
	d, err := New(Options{Interval: 50 * time.Millisecond, JumpThreshold: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d.Scan(context.Background())
	a := *d.prev
	time.Sleep(50 * time.Millisecond)
	fs, err := d.Scan(context.Background())
	if err != nil || len(fs) != 0 {
		t.Fatalf("live clocks flagged: %+v, %v", fs, err)
	}
	b := *d.prev
	if b.Mono <= a.Mono || b.Boot < b.Mono || !b.Wall.After(a.Wall) {
		t.Fatalf("clock readings %+v then %+v", a, b)
	}
}

// TestSlowIMDSIsNotAFreeze: a poll that takes its whole timeout delays the next scan;
// that delay is the detector's own, not a freeze. A failed poll waits for the interval.
func TestSlowIMDSIsNotAFreeze(t *testing.T) {
	var polls int
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls++
		time.Sleep(300 * time.Millisecond)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	// The clocks say this scan came 300ms late, as it would after the slow poll.
	c := newClocks([3]time.Duration{s + 300*time.Millisecond, s + 300*time.Millisecond, s + 300*time.Millisecond},
		[3]time.Duration{s, s, s})
	d, err := New(Options{IMDSEndpoint: ts.URL + "/?api-version=2020-07-01", IMDSInterval: 10 * s, Interval: s,
		JumpThreshold: 250 * time.Millisecond, Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Scan(context.Background()); err == nil || err.Error() != "freeze: imds: status 503: busy" {
		t.Fatalf("err = %v", err)
	}
	fs, err := d.Scan(context.Background())
	if err != nil || len(fs) != 0 {
		t.Fatalf("after a slow poll: %+v, %v", fs, err)
	}
	d.Scan(context.Background())
	if polls != 1 {
		t.Fatalf("polls = %d in 3 scans 1s apart with a 10s interval, want 1", polls)
	}
}
