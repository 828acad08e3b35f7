// Package detect runs the node agent's detectors: each scan asks every Detector what it
// sees now, holds each finding to a hysteresis (it fires only after it held for a number
// of consecutive scans, and resolves after it stayed away as long), and publishes the
// transitions as signals.
//
// The detectors live in subpackages (irq, drops, psi, freeze). They work on deltas: a
// detector remembers its previous read, so its first scan only takes a baseline.
package detect

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/remedyhq/remedy/wire/signal"
)

// Detector looks at the node once per scan. Scan returns the conditions present now,
// judged on what changed since the previous scan; the first scan returns none. A
// detector is used by one goroutine at a time.
type Detector interface {
	// Name names the detector in logs and metrics ("irq", "drops", "psi", "freeze").
	Name() string
	Scan(ctx context.Context) ([]Finding, error)
}

// Finding is one condition a detector sees in one scan.
type Finding struct {
	Kind signal.Kind `json:"kind"`
	// Subject tells apart several conditions of one kind on a node: "eth0",
	// "eth0:ring_overflow", "cgroup:/kubepods.slice/...:cpu". It is part of the
	// signal's fingerprint.
	Subject string `json:"subject"`
	// Summary is one line for a human.
	Summary string `json:"summary"`
	// Event marks a finding that happened rather than holds (a clock jump seen after a
	// freeze, a scheduled freeze that started): it fires at once, without waiting for
	// consecutive scans.
	Event  bool               `json:"event,omitempty"`
	Labels map[string]string  `json:"labels,omitempty"`
	Values map[string]float64 `json:"values,omitempty"`
	// Evidence holds the lines an engineer would otherwise piece together by hand
	// ("irq 24 mlx5_comp0 -> cpu 5, +120000").
	Evidence []string `json:"evidence,omitempty"`
}

// Key identifies a finding across scans.
func (f Finding) Key() string { return string(f.Kind) + "/" + f.Subject }

// Publisher carries signals to the engine (NATS in the agent).
type Publisher interface {
	Publish(ctx context.Context, s signal.Signal) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, s signal.Signal) error

// Publish implements Publisher.
func (f PublisherFunc) Publish(ctx context.Context, s signal.Signal) error { return f(ctx, s) }

// ErrNoDetectors is returned by NewRunner without detectors.
var ErrNoDetectors = errors.New("detect: no detectors")

// SortFindings orders findings by kind and subject, for stable output.
func SortFindings(fs []Finding) {
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].Kind != fs[j].Kind {
			return fs[i].Kind < fs[j].Kind
		}
		return fs[i].Subject < fs[j].Subject
	})
}

// joinEvidence joins evidence into one annotation value.
func joinEvidence(ev []string) string { return strings.Join(ev, "\n") }
