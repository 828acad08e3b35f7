package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
)

// TestQueryIncidentsKeepsAnIncidentTogether: a kind filter keeps the dispatched and
// result rows (which carry no kind) of the incidents of that kind, and nothing of others.
func TestQueryIncidentsKeepsAnIncidentTogether(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "audit.db"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i, inc := range []struct{ id, kind, node string }{{"c1", "irq_skew", "n1"}, {"c2", "packet_drops", "n2"}, {"c3", "irq_skew", "n3"}} {
		t0 := at.Add(time.Duration(i) * time.Minute)
		evs = append(evs,
			audit.Event{Time: t0, Type: audit.SignalReceived, CorrelationID: inc.id, Node: inc.node, Kind: inc.kind, Key: "s" + inc.id},
			audit.Event{Time: t0, Type: audit.Decision, CorrelationID: inc.id, Node: inc.node, Kind: inc.kind, Key: "d" + inc.id},
			audit.Event{Time: t0, Type: audit.Dispatched, CorrelationID: inc.id, Node: inc.node, Action: "irq.spread", Key: "x" + inc.id},
			audit.Event{Time: t0, Type: audit.ActionResult, CorrelationID: inc.id, Node: inc.node, Action: "irq.spread", Outcome: "ok", Key: "r" + inc.id})
	}
	evs = append(evs, audit.Event{Time: at.Add(time.Hour), Type: audit.Resumed, Kind: "irq_skew", Key: "resume"})
	if _, err := st.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	list := func(f audit.Filter) string {
		t.Helper()
		got, err := audit.QueryIncidents(ctx, st, f)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, e := range got {
			s += fmt.Sprintf("%s/%s ", e.CorrelationID, e.Type)
		}
		return s
	}
	for _, tc := range []struct {
		f    audit.Filter
		want string
	}{
		{audit.Filter{Kind: "irq_skew", Ascending: true},
			"c1/signal.received c1/decision c1/action.dispatched c1/action.result c3/signal.received c3/decision c3/action.dispatched c3/action.result /engine.resumed "},
		{audit.Filter{Kind: "irq_skew", Type: audit.ActionResult}, "c3/action.result c1/action.result "},
		{audit.Filter{Kind: "irq_skew", Node: "n1", Ascending: true}, "c1/signal.received c1/decision c1/action.dispatched c1/action.result "},
		{audit.Filter{Kind: "irq_skew", Limit: 2}, "/engine.resumed c3/action.result "},
		{audit.Filter{Kind: "packet_drops", CorrelationID: "c1"}, ""},
		{audit.Filter{Type: audit.ActionResult}, "c3/action.result c2/action.result c1/action.result "}, // no kind: Query as is
	} {
		if got := list(tc.f); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.f, got, tc.want)
		}
	}
}
