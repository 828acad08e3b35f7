package incident

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// Figures are how one action (or all actions on one kind of signal) did. An attempt is
// one action id that came back with a result; dry runs are not attempts.
type Figures struct {
	Tried      int `json:"tried"`
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`
	RolledBack int `json:"rolledBack"`
	// Fixed: verified, the signal resolved within the action's window; NotFixed: it
	// did not.
	Fixed    int `json:"fixed"`
	NotFixed int `json:"notFixed"`
	// FixP50 and FixP90 are the time from the incident's first signal to its fix (the
	// resolved signal that verified it), over the fixed attempts.
	FixP50 Seconds `json:"fixP50Seconds"`
	FixP90 Seconds `json:"fixP90Seconds"`

	fix []time.Duration
}

// Seconds is a duration that JSON carries as seconds.
type Seconds float64

// Duration is s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// Row is the figures of one action or one kind.
type Row struct {
	Name string `json:"name"`
	Figures
}

// Bucket is one bar of the chart: the attempts whose first result fell in
// [Start, Start+Report.Bucket).
type Bucket struct {
	Start time.Time `json:"start"`
	Figures
}

// Report is the effectiveness of remedy's actions over a time range: the attempts whose
// first result is in [Since, Until).
type Report struct {
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Total    Figures   `json:"total"`
	ByAction []Row     `json:"byAction"`
	ByKind   []Row     `json:"byKind"`
	// BucketSeconds is the width of each of Buckets.
	BucketSeconds Seconds  `json:"bucketSeconds"`
	Buckets       []Bucket `json:"buckets"`
}

// ErrRange: a report needs since before until.
var ErrRange = errors.New("report range: since must be before until")

// resultPage is how many results one Heads query reads.
const resultPage = 5000

// Effectiveness computes the report for [since, until): the results in the range
// through the (type, at) index, then the events of their incidents through the
// correlation index.
func Effectiveness(ctx context.Context, r audit.IncidentReader, since, until time.Time) (Report, error) {
	if since.IsZero() || until.IsZero() || !since.Before(until) {
		return Report{}, ErrRange
	}
	since, until = since.UTC(), until.UTC()
	rep := Report{Since: since, Until: until, ByAction: []Row{}, ByKind: []Row{}}
	width := bucketWidth(until.Sub(since))
	rep.BucketSeconds = Seconds(width.Seconds())
	start := since.Truncate(width)
	for t := start; t.Before(until); t = t.Add(width) {
		rep.Buckets = append(rep.Buckets, Bucket{Start: t})
	}

	// The attempts: action ids with a result in the range.
	type attempt struct {
		action, kind, corr string
		first              time.Time // the first result
		firstSeq           int64
	}
	attempts := map[string]*attempt{}
	var corrs []string
	seenCorr := map[string]bool{}
	hf := audit.HeadFilter{Type: audit.ActionResult, Since: since, Until: until, Limit: resultPage}
	for {
		heads, err := r.Heads(ctx, hf)
		if err != nil {
			return Report{}, err
		}
		for _, h := range heads {
			if h.ActionID == "" {
				continue
			}
			a := attempts[h.ActionID]
			if a == nil {
				a = &attempt{action: h.Action, kind: h.Kind, corr: h.CorrelationID}
				attempts[h.ActionID] = a
			}
			a.first, a.firstSeq = h.Time, h.Seq // newest first: the last one seen is the first
			if !seenCorr[h.CorrelationID] {
				seenCorr[h.CorrelationID] = true
				corrs = append(corrs, h.CorrelationID)
			}
		}
		if len(heads) < hf.Limit {
			break
		}
		hf.Before, hf.BeforeSeq = heads[len(heads)-1].Time, heads[len(heads)-1].Seq
	}
	evs, err := r.ByCorrelation(ctx, corrs, audit.SignalReceived, audit.ActionResult, audit.Verification)
	if err != nil {
		return Report{}, err
	}
	type incidentTimes struct {
		kind        string // the signal's: results carry no kind
		firstSignal time.Time
		resolved    []audit.Event // resolved signals, oldest first
	}
	incs := map[string]*incidentTimes{}
	type outcome struct {
		succeeded, failed, rolledBack, dryOnly bool
		verification                           string
		verifiedAt                             time.Time
	}
	outs := map[string]*outcome{}
	for _, e := range evs {
		it := incs[e.CorrelationID]
		if it == nil {
			it = &incidentTimes{}
			incs[e.CorrelationID] = it
		}
		if it.kind == "" {
			it.kind = e.Kind
		}
		switch e.Type {
		case audit.SignalReceived:
			if it.firstSignal.IsZero() || e.Time.Before(it.firstSignal) {
				it.firstSignal = e.Time
			}
			if e.Outcome == "resolved" {
				it.resolved = append(it.resolved, e)
			}
		case audit.ActionResult, audit.Verification:
			if attempts[e.ActionID] == nil {
				continue
			}
			o := outs[e.ActionID]
			if o == nil {
				o = &outcome{dryOnly: true}
				outs[e.ActionID] = o
			}
			if e.Type == audit.Verification {
				o.verification, o.verifiedAt = e.Outcome, e.Time
				if e.Outcome == RolledBack {
					o.rolledBack = true
				}
				continue
			}
			if e.Outcome != "dry_run" {
				o.dryOnly = false
			}
			switch e.Outcome {
			case "succeeded":
				o.succeeded = true
			case "rolled_back":
				o.rolledBack = true
			case "dry_run":
			default:
				o.failed = true
			}
		}
	}

	byAction, byKind := map[string]*Row{}, map[string]*Row{}
	row := func(m map[string]*Row, name string) *Figures {
		r := m[name]
		if r == nil {
			r = &Row{Name: name}
			m[name] = r
		}
		return &r.Figures
	}
	for id, a := range attempts {
		o := outs[id]
		if o == nil || o.dryOnly {
			continue
		}
		kind := a.kind
		if it := incs[a.corr]; kind == "" && it != nil {
			kind = it.kind
		}
		figs := []*Figures{&rep.Total, row(byAction, a.action), row(byKind, kind)}
		if i := int(a.first.Sub(start) / width); i >= 0 && i < len(rep.Buckets) {
			figs = append(figs, &rep.Buckets[i].Figures)
		}
		var fix time.Duration
		fixed := o.verification == Fixed
		if fixed {
			at := o.verifiedAt
			if it := incs[a.corr]; it != nil {
				for _, res := range it.resolved {
					if res.Seq > a.firstSeq {
						at = res.Time
						break
					}
				}
				if !it.firstSignal.IsZero() {
					fix = at.Sub(it.firstSignal)
				}
			}
		}
		for _, f := range figs {
			f.Tried++
			f.Succeeded += b2i(o.succeeded && !o.rolledBack)
			f.Failed += b2i(o.failed && !o.succeeded && !o.rolledBack)
			f.RolledBack += b2i(o.rolledBack)
			f.NotFixed += b2i(o.verification == NotFixed)
			if fixed {
				f.Fixed++
				f.fix = append(f.fix, fix)
			}
		}
	}
	finish := func(f *Figures) {
		slices.Sort(f.fix)
		f.FixP50, f.FixP90 = percentile(f.fix, 50), percentile(f.fix, 90)
	}
	finish(&rep.Total)
	for i := range rep.Buckets {
		finish(&rep.Buckets[i].Figures)
	}
	for _, m := range []struct {
		in  map[string]*Row
		out *[]Row
	}{{byAction, &rep.ByAction}, {byKind, &rep.ByKind}} {
		for _, r := range m.in {
			finish(&r.Figures)
			*m.out = append(*m.out, *r)
		}
		slices.SortFunc(*m.out, func(a, b Row) int { return cmp.Or(cmp.Compare(b.Tried, a.Tried), cmp.Compare(a.Name, b.Name)) })
	}
	return rep, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// percentile is the nearest-rank percentile of sorted durations, in seconds (0 when
// there are none).
func percentile(sorted []time.Duration, p float64) Seconds {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return Seconds(sorted[i].Seconds())
}

// bucketWidth picks a round width giving at most about 48 bars over d.
func bucketWidth(d time.Duration) time.Duration {
	for _, w := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour,
		6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour} {
		if d/w <= 48 {
			return w
		}
	}
	return 30 * 24 * time.Hour
}
