package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/wire/signal"
)

// Defaults of Options.
const (
	DefaultInterval  = time.Second
	DefaultFireAfter = 3
	DefaultSource    = "agent"
)

// Options configure a Runner.
type Options struct {
	// Node is the node's name, as in the signals' node field. Required.
	Node string
	// Source is the signals' source; "agent" when empty.
	Source string
	// Interval between scans in Run; one second when zero.
	Interval time.Duration
	// FireAfter is the number of consecutive scans a condition must hold before it
	// fires (DefaultFireAfter when zero). Event findings fire at once.
	FireAfter int
	// ResolveAfter is the number of consecutive scans a firing condition must be gone
	// before it resolves; FireAfter when zero.
	ResolveAfter int
	// Publisher receives the firing and resolved signals; nil only tracks them.
	Publisher Publisher
	// Logger logs scan errors and transitions; nil discards.
	Logger *slog.Logger
	// Registerer registers the runner's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// State is where a finding is in its hysteresis.
type State string

// Finding states.
const (
	Pending  State = "pending"  // seen, not yet for FireAfter scans
	Firing   State = "firing"   // fired; a firing signal was (or is being) published
	Clearing State = "clearing" // firing, but absent for fewer than ResolveAfter scans
	Resolved State = "resolved" // resolved in this scan
)

// Tracked is a finding with its hysteresis state.
type Tracked struct {
	Finding
	State State `json:"state"`
	// Detector names the detector that reported the finding.
	Detector string `json:"detector"`
	// Seen counts the consecutive scans the finding was present; Missing the
	// consecutive scans it was absent.
	Seen    int       `json:"seen"`
	Missing int       `json:"missing,omitempty"`
	Since   time.Time `json:"since"`
	// Published is the status last published for this finding ("" for none).
	Published signal.Status `json:"published,omitempty"`
	want      signal.Status
	endsAt    time.Time
}

// Report is the outcome of one scan.
type Report struct {
	Time time.Time `json:"time"`
	// Findings holds every finding that is pending, firing, clearing or resolved by
	// this scan, sorted by kind and subject.
	Findings []Tracked `json:"findings"`
	// Errors maps detector names to the error of their scan.
	Errors map[string]string `json:"errors,omitempty"`
}

// Runner scans with a set of detectors and applies the hysteresis.
type Runner struct {
	opts      Options
	detectors []Detector
	tracked   map[string]*Tracked
	m         runnerMetrics
}

// NewRunner checks opts and fills its defaults.
func NewRunner(opts Options, detectors ...Detector) (*Runner, error) {
	if len(detectors) == 0 {
		return nil, ErrNoDetectors
	}
	probe := signal.Signal{Node: opts.Node, Kind: signal.KindIRQSkew, Status: signal.Firing}
	if err := probe.Validate(); err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	if opts.FireAfter < 0 || opts.ResolveAfter < 0 || opts.Interval < 0 {
		return nil, errors.New("detect: negative fire-after, resolve-after or interval")
	}
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.FireAfter == 0 {
		opts.FireAfter = DefaultFireAfter
	}
	if opts.ResolveAfter == 0 {
		opts.ResolveAfter = opts.FireAfter
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newRunnerMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Runner{opts: opts, detectors: detectors, tracked: map[string]*Tracked{}, m: m}, nil
}

// Run scans every Interval until ctx ends; it returns nil then.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		r.Scan(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scan runs every detector once, advances the hysteresis and publishes the transitions.
// A detector that fails holds its findings where they were.
func (r *Runner) Scan(ctx context.Context) Report {
	now := r.opts.Now()
	rep := Report{Time: now}
	present := map[string]Tracked{}
	failed := map[string]bool{}
	for _, d := range r.detectors {
		start := time.Now()
		fs, err := d.Scan(ctx)
		r.m.duration.WithLabelValues(d.Name()).Observe(time.Since(start).Seconds())
		if err != nil {
			r.m.errors.WithLabelValues(d.Name()).Inc()
			r.opts.Logger.Warn("detector scan failed", "detector", d.Name(), "err", err)
			if rep.Errors == nil {
				rep.Errors = map[string]string{}
			}
			rep.Errors[d.Name()] = err.Error()
			failed[d.Name()] = true
		}
		for _, f := range fs {
			present[f.Key()] = Tracked{Finding: f, Detector: d.Name()}
		}
	}
	r.advance(now, present, failed)
	r.publish(ctx)
	for _, t := range r.tracked {
		rep.Findings = append(rep.Findings, *t)
	}
	sortTracked(rep.Findings)
	r.updateGauges()
	// Resolved findings are reported once, then forgotten.
	for k, t := range r.tracked {
		if t.State == Resolved && t.Published == t.want {
			delete(r.tracked, k)
		}
	}
	return rep
}

// advance moves every finding through pending → firing → clearing → resolved. When a
// detector failed, absent findings are held rather than counted missing.
func (r *Runner) advance(now time.Time, present map[string]Tracked, failed map[string]bool) {
	for k, p := range present {
		f := p.Finding
		t, ok := r.tracked[k]
		switch {
		case ok && t.State == Resolved && t.Published == signal.Firing:
			// Back before its resolved signal went out: it never ended.
			t.State, t.want = Firing, signal.Firing
		case !ok || t.State == Resolved:
			t = &Tracked{Since: now, State: Pending, Detector: p.Detector}
			r.tracked[k] = t
		}
		t.Finding = f
		t.Seen++
		t.Missing = 0
		if t.State == Clearing {
			t.State = Firing
		}
		if t.State == Pending && (f.Event || t.Seen >= r.opts.FireAfter) {
			t.State = Firing
			t.want = signal.Firing
			r.opts.Logger.Info("finding fires", "kind", f.Kind, "subject", f.Subject, "summary", f.Summary)
		}
	}
	for k, t := range r.tracked {
		if _, ok := present[k]; ok {
			continue
		}
		if failed[t.Detector] && !t.Event {
			continue
		}
		t.Seen = 0
		t.Missing++
		switch t.State {
		case Pending:
			delete(r.tracked, k)
		case Firing, Clearing:
			t.State = Clearing
			if t.Missing >= r.opts.ResolveAfter {
				t.State = Resolved
				t.endsAt = now
				if t.Published == signal.Firing {
					t.want = signal.Resolved
				} else {
					t.want = t.Published // never announced: nothing to resolve
				}
				r.opts.Logger.Info("finding resolved", "kind", t.Kind, "subject", t.Subject)
			}
		}
	}
}

// publish sends every transition not yet published; a failed one is retried next scan.
func (r *Runner) publish(ctx context.Context) {
	if r.opts.Publisher == nil {
		for _, t := range r.tracked {
			t.Published = t.want
		}
		return
	}
	for _, t := range r.tracked {
		if t.want == t.Published {
			continue
		}
		s := r.Signal(t)
		if err := r.opts.Publisher.Publish(ctx, s); err != nil {
			r.m.publishErrors.Inc()
			r.opts.Logger.Warn("publish signal failed", "kind", t.Kind, "subject", t.Subject, "status", s.Status, "err", err)
			continue
		}
		r.m.published.WithLabelValues(string(t.Kind), string(s.Status)).Inc()
		t.Published = t.want
	}
}

// Signal builds the signal of a tracked finding in its wanted state.
func (r *Runner) Signal(t *Tracked) signal.Signal {
	labels := map[string]string{"subject": t.Subject}
	maps.Copy(labels, t.Labels)
	ann := map[string]string{"summary": t.Summary}
	if len(t.Evidence) > 0 {
		ann["evidence"] = joinEvidence(t.Evidence)
	}
	h := sha256.Sum256([]byte(r.opts.Node + "\x00" + string(t.Kind) + "\x00" + t.Subject))
	s := signal.Signal{
		Source:      r.opts.Source,
		Kind:        t.Kind,
		Node:        r.opts.Node,
		Status:      t.want,
		Fingerprint: hex.EncodeToString(h[:8]),
		StartsAt:    t.Since,
		Labels:      labels,
		Annotations: ann,
		Values:      maps.Clone(t.Values),
	}
	if t.want == signal.Resolved {
		s.EndsAt = t.endsAt
	}
	return s
}

func (r *Runner) updateGauges() {
	r.m.findings.Reset()
	for _, t := range r.tracked {
		r.m.findings.WithLabelValues(string(t.Kind), string(t.State)).Inc()
	}
}

func sortTracked(ts []Tracked) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Kind != ts[j].Kind {
			return ts[i].Kind < ts[j].Kind
		}
		return ts[i].Subject < ts[j].Subject
	})
}
