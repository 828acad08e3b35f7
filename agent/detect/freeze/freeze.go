// Package freeze detects VM freezes: ahead of time from the cloud's scheduled
// maintenance events (Azure IMDS Scheduled Events of type Freeze), and after the fact
// from the clocks. A frozen guest's monotonic clock stands still while the wall clock
// is corrected afterwards, so between two scans the wall clock moves further than the
// monotonic one; a suspended guest shows the same between the boot-time and monotonic
// clocks; and a guest paused with all its clocks running shows a scan interval far
// longer than asked for.
//
// Kubernetes node conditions reporting freezes are read by the engine, not here.
package freeze

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/wire/signal"
)

// DefaultAzureEndpoint is Azure's Scheduled Events endpoint on the instance metadata service.
const DefaultAzureEndpoint = "http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01"

// Defaults of Options.
const (
	DefaultJumpThreshold = 2 * time.Second
	DefaultIMDSInterval  = 10 * time.Second
	DefaultIMDSTimeout   = 2 * time.Second
)

// DefaultEventTypes are the scheduled event types reported.
var DefaultEventTypes = []string{"Freeze"}

// Causes of a clock finding.
const (
	CauseWallJump = "wall_clock_jump"
	CauseSuspend  = "suspend"
	CauseScanGap  = "scan_gap"
)

// Reading is the three clocks read at one instant.
type Reading struct {
	Wall       time.Time
	Mono, Boot time.Duration
}

// Clock reads the clocks.
type Clock interface {
	Read() Reading
}

// SystemClock reads CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME.
type SystemClock struct{}

// Read implements Clock.
func (SystemClock) Read() Reading {
	var mono, boot unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	return Reading{Wall: time.Now(), Mono: time.Duration(mono.Nano()), Boot: time.Duration(boot.Nano())}
}

// Options configure the detector.
type Options struct {
	// IMDSEndpoint is the Scheduled Events URL; empty disables them
	// (DefaultAzureEndpoint on Azure).
	IMDSEndpoint string
	// IMDSInterval is the least time between two IMDS polls (DefaultIMDSInterval when
	// zero); scans in between reuse the last answer.
	IMDSInterval time.Duration
	// EventTypes are the event types reported; DefaultEventTypes when empty.
	EventTypes []string
	// VMName keeps only events naming this VM among their resources; empty keeps all.
	VMName string
	// HTTPClient polls IMDS; one with DefaultIMDSTimeout when nil.
	HTTPClient *http.Client
	// JumpThreshold is the clock drift between two scans that counts as a freeze
	// (DefaultJumpThreshold when zero).
	JumpThreshold time.Duration
	// Interval is the scan interval the runner asked for; when set, a scan that came
	// JumpThreshold later than that is a finding too.
	Interval time.Duration
	// Clock reads the clocks; SystemClock when nil.
	Clock Clock
	// Registerer registers the remedy_vm_freeze_* metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// Detector is the VM freeze detector.
type Detector struct {
	opts       Options
	prev       *Reading
	polled     time.Duration // monotonic time of the last poll
	events     []Event
	busy       time.Duration // spent polling IMDS in the previous scan
	m          metrics
	polledOnce bool
}

// New builds the detector.
func New(opts Options) (*Detector, error) {
	if opts.JumpThreshold < 0 || opts.IMDSInterval < 0 || opts.Interval < 0 {
		return nil, errors.New("freeze: negative threshold or interval")
	}
	if opts.JumpThreshold == 0 {
		opts.JumpThreshold = DefaultJumpThreshold
	}
	if opts.IMDSInterval == 0 {
		opts.IMDSInterval = DefaultIMDSInterval
	}
	if len(opts.EventTypes) == 0 {
		opts.EventTypes = DefaultEventTypes
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: DefaultIMDSTimeout}
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Detector{opts: opts, m: m}, nil
}

// Name implements detect.Detector.
func (d *Detector) Name() string { return "freeze" }

// Scan implements detect.Detector. On an IMDS failure it returns the clock findings
// with the error, and keeps the last events it knew.
func (d *Detector) Scan(ctx context.Context) ([]detect.Finding, error) {
	now := d.opts.Clock.Read()
	var out []detect.Finding
	if d.prev != nil {
		if f := d.judgeClocks(*d.prev, now); f != nil {
			out = append(out, *f)
		}
	}
	d.prev = &now
	if d.opts.IMDSEndpoint == "" {
		return out, nil
	}
	var err error
	d.busy = 0
	if !d.polledOnce || now.Mono-d.polled >= d.opts.IMDSInterval {
		// A failed poll waits for the next interval too: an unreachable IMDS must not
		// hold up every scan for its timeout.
		d.polled, d.polledOnce = now.Mono, true
		start := time.Now()
		var evs []Event
		evs, err = d.poll(ctx)
		d.busy = time.Since(start)
		if err == nil {
			d.events = evs
		} else {
			d.m.imdsErrors.Inc()
		}
	}
	d.m.events.Reset()
	for _, ev := range d.events {
		d.m.events.WithLabelValues(ev.EventType, ev.EventStatus).Inc()
		out = append(out, ev.finding())
	}
	return out, err
}

func (d *Detector) judgeClocks(prev, cur Reading) *detect.Finding {
	dWall := cur.Wall.Sub(prev.Wall)
	dMono := cur.Mono - prev.Mono
	dBoot := cur.Boot - prev.Boot
	jump, suspend := dWall-dMono, dBoot-dMono
	gap := time.Duration(0)
	if d.opts.Interval > 0 {
		// The time this detector spent polling IMDS last scan delayed this one.
		gap = dMono - d.opts.Interval - d.busy
	}
	d.m.jump.Set(jump.Seconds())
	d.m.suspend.Set(suspend.Seconds())
	var cause string
	var lost time.Duration
	switch th := d.opts.JumpThreshold; {
	case suspend >= th:
		cause, lost = CauseSuspend, suspend
	case jump >= th:
		cause, lost = CauseWallJump, jump
	case d.opts.Interval > 0 && gap >= th:
		cause, lost = CauseScanGap, gap
	default:
		return nil
	}
	d.m.detected.WithLabelValues(cause).Inc()
	vals := map[string]float64{
		"wall_jump_seconds": jump.Seconds(), "suspend_seconds": suspend.Seconds(),
		"monotonic_seconds": dMono.Seconds(), "wall_seconds": dWall.Seconds(),
	}
	if d.opts.Interval > 0 {
		vals["scan_gap_seconds"] = gap.Seconds()
	}
	return &detect.Finding{
		Kind:    signal.KindVMFreeze,
		Subject: "clock",
		Event:   true,
		Summary: fmt.Sprintf("the VM lost about %s between two scans (%s)", lost.Round(time.Millisecond), cause),
		Labels:  map[string]string{"cause": cause, "source": "clock"},
		Values:  vals,
		Evidence: []string{
			fmt.Sprintf("wall clock advanced %s, monotonic %s, boot time %s", dWall.Round(time.Millisecond), dMono.Round(time.Millisecond), dBoot.Round(time.Millisecond)),
			fmt.Sprintf("previous scan at %s, this one at %s", prev.Wall.UTC().Format(time.RFC3339Nano), cur.Wall.UTC().Format(time.RFC3339Nano)),
		},
	}
}

// Event is one Azure scheduled event.
type Event struct {
	EventID           string   `json:"EventId"`
	EventType         string   `json:"EventType"`
	ResourceType      string   `json:"ResourceType"`
	Resources         []string `json:"Resources"`
	EventStatus       string   `json:"EventStatus"`
	NotBefore         string   `json:"NotBefore"`
	Description       string   `json:"Description"`
	EventSource       string   `json:"EventSource"`
	DurationInSeconds int      `json:"DurationInSeconds"`
}

// Document is the Scheduled Events answer.
type Document struct {
	DocumentIncarnation int     `json:"DocumentIncarnation"`
	Events              []Event `json:"Events"`
}

// MaxDocumentSize bounds an IMDS answer.
const MaxDocumentSize = 1 << 20

// ErrBadDocument is wrapped by every Scheduled Events decoding error.
var ErrBadDocument = errors.New("invalid scheduled events document")

// ParseDocument decodes a Scheduled Events answer and checks every event has an id and
// a type.
func ParseDocument(b []byte) (Document, error) {
	var doc Document
	if err := json.Unmarshal(b, &doc); err != nil {
		return Document{}, fmt.Errorf("%w: %w", ErrBadDocument, err)
	}
	for i, ev := range doc.Events {
		if ev.EventID == "" || ev.EventType == "" {
			return Document{}, fmt.Errorf("%w: event %d has no EventId or EventType", ErrBadDocument, i)
		}
		if ev.NotBefore != "" {
			if _, err := time.Parse(time.RFC1123, ev.NotBefore); err != nil {
				return Document{}, fmt.Errorf("%w: event %s NotBefore %q", ErrBadDocument, ev.EventID, ev.NotBefore)
			}
		}
	}
	return doc, nil
}

func (d *Detector) poll(ctx context.Context) ([]Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.opts.IMDSEndpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("freeze: imds: %w", err)
	}
	req.Header.Set("Metadata", "true")
	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("freeze: imds: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("freeze: imds: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("freeze: imds: status %d: %s", resp.StatusCode, strings.TrimSpace(string(b[:min(len(b), 200)])))
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("freeze: imds: %w: larger than %d bytes", ErrBadDocument, MaxDocumentSize)
	}
	doc, err := ParseDocument(b)
	if err != nil {
		return nil, fmt.Errorf("freeze: imds: %w", err)
	}
	var out []Event
	for _, ev := range doc.Events {
		if !slices.Contains(d.opts.EventTypes, ev.EventType) {
			continue
		}
		if d.opts.VMName != "" && len(ev.Resources) > 0 && !slices.Contains(ev.Resources, d.opts.VMName) {
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

func (ev Event) finding() detect.Finding {
	vals := map[string]float64{"duration_seconds": float64(ev.DurationInSeconds)}
	if t, err := time.Parse(time.RFC1123, ev.NotBefore); err == nil {
		vals["not_before_unix"] = float64(t.Unix())
	}
	when := ev.NotBefore
	if when == "" {
		when = "now"
	}
	return detect.Finding{
		Kind:    signal.KindVMFreeze,
		Subject: "imds:" + ev.EventID,
		Summary: fmt.Sprintf("scheduled %s (%s), not before %s, %ds", ev.EventType, ev.EventStatus, when, ev.DurationInSeconds),
		Labels: map[string]string{"source": "imds", "event_id": ev.EventID, "event_type": ev.EventType,
			"event_status": ev.EventStatus, "event_source": ev.EventSource},
		Values: vals,
		Evidence: []string{fmt.Sprintf("IMDS scheduled event %s: %s %s on %s: %s", ev.EventID, ev.EventType, ev.EventStatus,
			strings.Join(ev.Resources, ","), ev.Description)},
	}
}

type metrics struct {
	jump, suspend prometheus.Gauge
	detected      *prometheus.CounterVec
	events        *prometheus.GaugeVec
	imdsErrors    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		jump: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remedy_vm_freeze_wall_jump_seconds",
			Help: "How much further the wall clock moved than the monotonic clock between the last two scans.",
		}),
		suspend: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remedy_vm_freeze_suspend_seconds",
			Help: "How much further the boot-time clock moved than the monotonic clock between the last two scans.",
		}),
		detected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_vm_freeze_detected_total",
			Help: "Freezes seen after the fact from the clocks, by cause.",
		}, []string{"cause"}),
		events: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_vm_freeze_scheduled_events",
			Help: "Scheduled maintenance events listed by IMDS, by type and status.",
		}, []string{"type", "status"}),
		imdsErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remedy_vm_freeze_imds_errors_total",
			Help: "Failed IMDS Scheduled Events polls.",
		}),
	}
	return m, detect.Register(reg, m.jump, m.suspend, m.detected, m.events, m.imdsErrors)
}
