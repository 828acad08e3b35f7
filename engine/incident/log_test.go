package incident_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
)

// A synthetic log of incidents of the shapes remedy writes, for the figures tests and the
// benchmark: one event a millisecond from t0, 1,000 nodes, four kinds. Incident i is:
//
//	i%4 == 0, 1: signal, decision, planned, dispatched, result succeeded, resolved signal, verification fixed (7)
//	i%4 == 2:    signal, decision, planned, dispatched, result succeeded, verification not_fixed (6)
//	i%4 == 3:    signal, decision, guard.refused (3)
var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

var kinds = []string{"irq_skew", "packet_drops", "psi", "vm_freeze"}

func incidentEvents(i int) []audit.Event {
	corr := fmt.Sprintf("inc-%07d", i)
	node := fmt.Sprintf("node-%04d", i%1000)
	kind := kinds[(i/4)%len(kinds)]
	base := audit.Event{CorrelationID: corr, Node: node, Kind: kind, Actor: audit.ActorEngine}
	ev := func(t audit.Type, outcome string, action bool) audit.Event {
		e := base
		e.Type, e.Outcome = t, outcome
		if action {
			e.Action, e.ActionID = "sysctl.set", "act-"+corr
		}
		e.Key = fmt.Sprintf("%s:%s:%s", t, outcome, corr)
		return e
	}
	evs := []audit.Event{ev(audit.SignalReceived, "firing", false), ev(audit.Decision, "act", false)}
	evs[1].PolicyRev = "rev-1"
	switch i % 4 {
	case 0, 1:
		evs = append(evs, ev(audit.ActionPlanned, "planned", true), ev(audit.Dispatched, "dispatched", true),
			ev(audit.ActionResult, "succeeded", true), ev(audit.SignalReceived, "resolved", false), ev(audit.Verification, "fixed", true))
	case 2:
		evs = append(evs, ev(audit.ActionPlanned, "planned", true), ev(audit.Dispatched, "dispatched", true),
			ev(audit.ActionResult, "succeeded", true), ev(audit.Verification, "not_fixed", true))
	case 3:
		e := ev(audit.GuardRefused, "rate_limit", true)
		evs = append(evs, e)
	}
	return evs
}

// fill appends incidents to st until it holds at least rows events, the events of
// consecutive incidents interleaved in pairs (as concurrent incidents are), and returns
// the number of incidents and the time after the last event.
func fill(tb testing.TB, st audit.Store, rows int) (int, time.Time) {
	tb.Helper()
	ctx := context.Background()
	n, incidents := 0, 0
	var batch []audit.Event
	at := t0
	for n < rows {
		a, b := incidentEvents(incidents), incidentEvents(incidents+1)
		incidents += 2
		for len(a) > 0 || len(b) > 0 {
			for _, s := range []*[]audit.Event{&a, &b} {
				if len(*s) == 0 {
					continue
				}
				e := (*s)[0]
				*s = (*s)[1:]
				e.Time = at
				at = at.Add(time.Millisecond)
				batch = append(batch, e)
				n++
			}
		}
		if len(batch) >= 2000 {
			if _, err := st.Append(ctx, batch...); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := st.Append(ctx, batch...); err != nil {
		tb.Fatal(err)
	}
	return incidents, at
}

func openSQLite(tb testing.TB) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(filepath.Join(tb.TempDir(), "audit.db"), audit.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}
