package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Event is the outcome of one reload, for the caller to audit (policy.loaded,
// policy.rejected).
type Event struct {
	// Loaded is true when the new policy runs now; false when it was rejected and the
	// previous one stays.
	Loaded bool
	Source string
	// Revision is the new policy's revision; empty when it did not compile.
	Revision string
	// Previous is the revision running before.
	Previous string
	Files    []string
	Tests    TestSummary
	// Err says why the policy was rejected.
	Err error
}

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Load are the options every reload uses; they should be those of the first load.
	Load Options
	// Interval is how often the source is looked at (default 5s).
	Interval time.Duration
	// OnChange is called after every reload, loaded or rejected.
	OnChange func(Event)
	Logger   *slog.Logger
	// Registerer registers remedy_policy_* metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// Watcher reloads a policy source when it changes: it polls the files' names, sizes and
// modification times, and on a change loads the source (compile, tests, catalogue
// check) and swaps it in. A source that fails stays rejected until it changes again.
type Watcher struct {
	h    *Holder
	src  string
	o    WatchOptions
	seen string // stamp of the source last loaded or rejected
	m    watchMetrics
}

type watchMetrics struct {
	reloads  *prometheus.CounterVec
	rejected prometheus.Gauge
	info     *prometheus.GaugeVec
}

// NewWatcher returns a watcher of src for h, whose current policy was loaded from src.
func NewWatcher(h *Holder, src string, o WatchOptions) (*Watcher, error) {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{h: h, src: src, o: o, m: watchMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_policy_reloads_total",
			Help: "Policy reloads after a change of the source, by result (loaded, rejected).",
		}, []string{"result"}),
		rejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remedy_policy_rejected",
			Help: "1 while the policy source holds a change that was rejected (the previous policy runs).",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_policy_info",
			Help: "The running policy's revision (value 1).",
		}, []string{"revision"}),
	}}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{w.m.reloads, w.m.rejected, w.m.info} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("policy metrics: %w", err)
			}
		}
	}
	w.m.reloads.WithLabelValues("loaded")
	w.m.reloads.WithLabelValues("rejected")
	if p := h.Current(); p != nil {
		w.m.info.WithLabelValues(p.Revision).Set(1)
	}
	stamp, err := Stamp(src)
	if err != nil {
		return nil, err
	}
	w.seen = stamp
	return w, nil
}

// Run polls until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Poll(ctx)
		}
	}
}

// Poll looks at the source once and reloads it if it changed. It returns the reload's
// event, or nil when nothing changed.
func (w *Watcher) Poll(ctx context.Context) *Event {
	stamp, err := Stamp(w.src)
	if err != nil {
		w.o.Logger.Warn("policy source unreadable", "source", w.src, "err", err)
		return nil
	}
	if stamp == w.seen {
		return nil
	}
	w.seen = stamp
	prev := w.h.Current()
	ev := Event{Source: w.src}
	if prev != nil {
		ev.Previous = prev.Revision
	}
	p, err := LoadWith(ctx, w.src, w.o.Load)
	switch {
	case err != nil && ctx.Err() != nil:
		w.seen = "" // interrupted, not judged: try again
		return nil
	case err != nil:
		ev.Err = err
		w.m.reloads.WithLabelValues("rejected").Inc()
		w.m.rejected.Set(1)
		w.o.Logger.Error("policy rejected; the running policy stays", "source", w.src, "running_revision", ev.Previous, "err", err)
	case prev != nil && p.Revision == prev.Revision:
		w.m.rejected.Set(0)
		return nil // touched, not changed
	default:
		w.h.cur.Store(p)
		ev.Loaded, ev.Revision, ev.Files, ev.Tests = true, p.Revision, p.Files, p.Tests
		w.m.reloads.WithLabelValues("loaded").Inc()
		w.m.rejected.Set(0)
		w.m.info.Reset()
		w.m.info.WithLabelValues(p.Revision).Set(1)
		w.o.Logger.Info("policy loaded", "source", w.src, "revision", p.Revision, "previous", ev.Previous,
			"files", len(p.Files), "tests_passed", p.Tests.Passed)
	}
	if w.o.OnChange != nil {
		w.o.OnChange(ev)
	}
	return &ev
}

// Stamp is a cheap fingerprint of a policy source: the names, sizes and modification
// times of its files. It changes when a file is written, added or removed.
func Stamp(src string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", path, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("stat policy source: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
