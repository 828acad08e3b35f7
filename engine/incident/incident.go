// Package incident is what people look at after (and during) a storm: the incidents
// remedy handled, one correlation id each, with what was done on each and whether it
// helped; one incident's timeline from signal to verified fix; and the effectiveness of
// each action and signal kind. It serves the /incidents page and computes the figures
// the read API and `remedy report` print.
//
// Everything is read from the audit log through audit.IncidentReader's indexed queries:
// a page of incidents costs a page of index entries and the events of those incidents,
// never a scan of the whole log.
package incident

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// Outcomes of an incident, derived from its events: the last verification if any,
// else how far it got. The open ones are still in progress.
const (
	Fixed            = "fixed"
	NotFixed         = "not_fixed"
	RolledBack       = "rolled_back"
	Failed           = "failed"
	Refused          = "refused"
	Rejected         = "rejected"
	Expired          = "expired"
	DryRun           = "dry_run"
	NoAction         = "no_action"
	Resolved         = "resolved"
	Undecided        = "undecided"
	AwaitingApproval = "awaiting_approval"
	InProgress       = "in_progress"
	Verifying        = "verifying"
)

// Outcomes lists every incident outcome, the open ones first.
func Outcomes() []string {
	return []string{Undecided, AwaitingApproval, InProgress, Verifying, Fixed, NotFixed, RolledBack, Failed, Refused,
		Rejected, Expired, DryRun, NoAction, Resolved}
}

// IsOpen reports whether an incident with this outcome is still being worked on.
func IsOpen(outcome string) bool {
	switch outcome {
	case Undecided, AwaitingApproval, InProgress, Verifying:
		return true
	}
	return false
}

// Summary is one incident in a list.
type Summary struct {
	ID        string    `json:"id"`
	Node      string    `json:"node"`
	Kind      string    `json:"kind"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	Signals   int       `json:"signals"`
	Actions   []string  `json:"actions"`
	Outcome   string    `json:"outcome"`
	Open      bool      `json:"open"`
	PolicyRev string    `json:"policyRevision,omitempty"`
	Events    int       `json:"events"`
	// Firing is true while the incident's latest signal is a firing one.
	Firing bool `json:"firing"`
}

// Summarize folds one incident's events (oldest first) into its summary.
func Summarize(id string, evs []audit.Event) Summary {
	s := Summary{ID: id, Actions: []string{}, Events: len(evs)}
	type act struct {
		planned, dispatched, approvalPending, result bool
		resultOutcome, verification                  string
		refused, rejected, expired                   bool
	}
	acts := map[string]*act{}
	var order []string
	get := func(id string) *act {
		a := acts[id]
		if a == nil {
			a = &act{}
			acts[id] = a
			order = append(order, id)
		}
		return a
	}
	decided, resolved := false, false
	for _, e := range evs {
		if s.Started.IsZero() || e.Time.Before(s.Started) {
			s.Started = e.Time
		}
		if e.Time.After(s.Updated) {
			s.Updated = e.Time
		}
		if s.Node == "" {
			s.Node = e.Node
		}
		if s.Kind == "" {
			s.Kind = e.Kind
		}
		if e.Action != "" && !slices.Contains(s.Actions, e.Action) {
			s.Actions = append(s.Actions, e.Action)
		}
		switch e.Type {
		case audit.SignalReceived:
			s.Signals++
			s.Firing = e.Outcome != "resolved"
			if e.Outcome == "resolved" {
				resolved = true
			}
		case audit.Decision:
			decided = true
			s.PolicyRev = e.PolicyRev
		case audit.ApprovalRequested:
			get(e.ActionID).approvalPending = true
		case audit.ApprovalGranted:
			// A vote; the decision itself is the action.planned that follows.
		case audit.ApprovalRejected:
			a := get(e.ActionID)
			a.approvalPending, a.rejected = false, true
		case audit.ApprovalExpired:
			a := get(e.ActionID)
			a.approvalPending, a.expired = false, true
		case audit.GuardRefused:
			a := get(e.ActionID)
			a.approvalPending, a.refused = false, true
		case audit.ActionPlanned:
			a := get(e.ActionID)
			a.approvalPending, a.planned = false, true
		case audit.Dispatched:
			get(e.ActionID).dispatched = true
		case audit.ActionResult:
			a := get(e.ActionID)
			a.result, a.resultOutcome = true, e.Outcome
		case audit.Verification:
			get(e.ActionID).verification = e.Outcome
		}
	}
	// The latest action decides; an action still under way keeps the incident open.
	s.Outcome = NoAction
	if !decided {
		s.Outcome = Undecided
	}
	for _, id := range order {
		a := acts[id]
		switch {
		case a.verification != "":
			s.Outcome = a.verification
		case a.approvalPending:
			s.Outcome = AwaitingApproval
		case a.result && a.resultOutcome == "succeeded":
			s.Outcome = Verifying
		case a.result && a.resultOutcome == "dry_run":
			s.Outcome = DryRun
		case a.result && a.resultOutcome == "rolled_back":
			s.Outcome = RolledBack
		case a.result:
			s.Outcome = Failed
		case a.planned || a.dispatched:
			s.Outcome = InProgress
		case a.rejected:
			s.Outcome = Rejected
		case a.expired:
			s.Outcome = Expired
		case a.refused:
			s.Outcome = Refused
		}
	}
	if s.Outcome == NoAction && resolved {
		s.Outcome = Resolved
	}
	// A succeeded action whose signal has resolved is as good as verified; the verifier
	// records it at its next tick.
	s.Open = IsOpen(s.Outcome)
	return s
}

// ListFilter selects incidents for the list.
type ListFilter struct {
	Node, Kind string
	// Outcome keeps incidents whose outcome (Outcomes) is this one.
	Outcome string
	// Since and Until bound the time of the event that put the incident in the list
	// (its latest signal, or for an outcome filter the event that decided it).
	Since, Until time.Time
	// Cursor continues a list where the previous page ended (Page.Next).
	Cursor string
	Limit  int
}

// Page is one page of incidents, newest first.
type Page struct {
	Incidents []Summary `json:"incidents"`
	// Next is the cursor of the following page; empty at the end.
	Next string `json:"next,omitempty"`
	// Examined is how many index entries the page read.
	Examined int `json:"examined"`
	// Cut is true when the page stopped at its reading bound before it was full: narrow
	// the time range or follow Next.
	Cut bool `json:"cut,omitempty"`
}

// DefaultLimit is the page size of a ListFilter without one.
const DefaultLimit = 50

// maxExamined bounds the index entries one page reads when an outcome filter has to look
// at incidents one by one.
const maxExamined = 20000

// headFor chooses the events that stand for an incident with the wanted outcome, so that
// the index finds them instead of the list filtering every incident.
func headFor(outcome string) (audit.Type, string) {
	switch outcome {
	case Fixed, NotFixed:
		return audit.Verification, outcome
	case RolledBack:
		return audit.Verification, outcome
	case Failed:
		return audit.ActionResult, ""
	case DryRun:
		return audit.ActionResult, "" // few results are dry runs: filtered here, within maxExamined
	case Refused:
		return audit.GuardRefused, ""
	case AwaitingApproval:
		return audit.ApprovalRequested, ""
	case Rejected:
		return audit.ApprovalRejected, ""
	case Expired:
		return audit.ApprovalExpired, ""
	}
	return audit.SignalReceived, ""
}

// List returns a page of incidents, newest first.
func List(ctx context.Context, r audit.IncidentReader, f ListFilter) (Page, error) {
	if f.Outcome != "" && !slices.Contains(Outcomes(), f.Outcome) {
		return Page{}, fmt.Errorf("outcome %q: want one of %s", f.Outcome, strings.Join(Outcomes(), ", "))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	typ, outcome := headFor(f.Outcome)
	// Without an outcome filter every incident read is listed: read about as many heads
	// as the page needs (an incident has one or two signals). With one, read more.
	batch := min(2*limit, 1000)
	if f.Outcome != "" {
		batch = min(4*limit, 1000)
	}
	hf := audit.HeadFilter{Type: typ, Node: f.Node, Kind: f.Kind, Outcome: outcome, Since: f.Since, Until: f.Until,
		Limit: batch}
	var err error
	if hf.Before, hf.BeforeSeq, err = parseCursor(f.Cursor); err != nil {
		return Page{}, err
	}
	start, startSeq := hf.Before, hf.BeforeSeq
	var p Page
	seen := map[string]bool{}
	for {
		heads, err := r.Heads(ctx, hf)
		if err != nil {
			return Page{}, err
		}
		p.Examined += len(heads)
		var ids []string
		for _, h := range heads {
			if f.Outcome == "" && len(ids) == limit-len(p.Incidents) {
				break // the page is full with these; read no more incidents than it shows
			}
			if h.CorrelationID != "" && !seen[h.CorrelationID] {
				seen[h.CorrelationID] = true
				ids = append(ids, h.CorrelationID)
			}
		}
		sums, byID, err := summaries(ctx, r, ids)
		if err != nil {
			return Page{}, err
		}
		if !start.IsZero() {
			// An incident with a head newer than where this page starts was listed on an
			// earlier page.
			for id, evs := range byID {
				if newerHead(evs, hf, start, startSeq) {
					delete(sums, id)
				}
			}
		}
		last := -1
		for i, h := range heads {
			s, ok := sums[h.CorrelationID]
			if !ok {
				continue
			}
			delete(sums, h.CorrelationID)
			last = i
			if f.Outcome == "" || s.Outcome == f.Outcome {
				p.Incidents = append(p.Incidents, s)
				if len(p.Incidents) == limit {
					break
				}
			}
		}
		if last >= 0 {
			hf.Before, hf.BeforeSeq = heads[last].Time, heads[last].Seq
		}
		full := len(p.Incidents) == limit
		if full || len(heads) < hf.Limit {
			if full && (last < len(heads)-1 || len(heads) == hf.Limit) {
				p.Next = formatCursor(hf.Before, hf.BeforeSeq)
			}
			return p, nil
		}
		if p.Examined >= maxExamined {
			p.Cut, p.Next = true, formatCursor(hf.Before, hf.BeforeSeq)
			return p, nil
		}
		if last < 0 { // a whole batch of incidents already listed: move past it
			hf.Before, hf.BeforeSeq = heads[len(heads)-1].Time, heads[len(heads)-1].Seq
		}
	}
}

// summaries reads the given incidents' events (one indexed query per 500) and
// summarizes each.
func summaries(ctx context.Context, r audit.IncidentReader, ids []string) (map[string]Summary, map[string][]audit.Event, error) {
	out := make(map[string]Summary, len(ids))
	by := map[string][]audit.Event{}
	if len(ids) == 0 {
		return out, by, nil
	}
	evs, err := r.ByCorrelation(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range evs {
		by[e.CorrelationID] = append(by[e.CorrelationID], e)
	}
	for _, id := range ids {
		out[id] = Summarize(id, by[id])
	}
	return out, by, nil
}

// newerHead reports whether one of an incident's events is a head of hf newer than
// (at, seq) in (time, seq) order.
func newerHead(evs []audit.Event, hf audit.HeadFilter, at time.Time, seq int64) bool {
	for _, e := range evs {
		switch {
		case e.Type != hf.Type, hf.Outcome != "" && e.Outcome != hf.Outcome,
			!hf.Since.IsZero() && e.Time.Before(hf.Since), !hf.Until.IsZero() && !e.Time.Before(hf.Until):
		case e.Time.After(at) || e.Time.Equal(at) && e.Seq >= seq:
			return true
		}
	}
	return false
}

// Open returns the incidents of the last window that are still being worked on, newest
// first, reading at most one page of limit incidents.
func Open(ctx context.Context, r audit.IncidentReader, now time.Time, window time.Duration, limit int) ([]Summary, error) {
	p, err := List(ctx, r, ListFilter{Since: now.Add(-window), Limit: limit})
	if err != nil {
		return nil, err
	}
	var out []Summary
	for _, s := range p.Incidents {
		if s.Open {
			out = append(out, s)
		}
	}
	return out, nil
}

func formatCursor(t time.Time, seq int64) string {
	return fmt.Sprintf("%d.%d", t.UnixNano(), seq)
}

func parseCursor(s string) (time.Time, int64, error) {
	if s == "" {
		return time.Time{}, 0, nil
	}
	var ns, seq int64
	if _, err := fmt.Sscanf(s, "%d.%d", &ns, &seq); err != nil {
		return time.Time{}, 0, fmt.Errorf("cursor %q: not a cursor of this list", s)
	}
	return time.Unix(0, ns).UTC(), seq, nil
}
