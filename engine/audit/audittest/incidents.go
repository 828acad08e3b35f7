package audittest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// RunIncidentReader checks a store's audit.IncidentReader: each Heads filter, its order
// and cursor, and ByCorrelation with and without types.
func RunIncidentReader(t *testing.T, backend func(t *testing.T) Backend) {
	st, err := backend(t).Open(audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ir, ok := st.(audit.IncidentReader)
	if !ok {
		t.Fatalf("%T is not an audit.IncidentReader", st)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var evs []audit.Event
	// 20 incidents, 3 events each; times run backwards against seq for the odd ones, so
	// that time order and seq order differ; incidents 10 and 11 share a time.
	for i := range 20 {
		at := t0.Add(time.Duration(i) * time.Second)
		if i == 11 {
			at = t0.Add(10 * time.Second)
		}
		corr := fmt.Sprintf("c%02d", i)
		base := audit.Event{CorrelationID: corr, Node: fmt.Sprintf("n%d", i%2), Kind: []string{"psi", "irq_skew"}[i%4/2]}
		for j, typ := range []audit.Type{audit.SignalReceived, audit.Decision, audit.Verification} {
			e := base
			e.Type, e.Time = typ, at.Add(time.Duration(j)*time.Millisecond)
			if typ == audit.Verification {
				e.Outcome = []string{"fixed", "not_fixed"}[i%3%2]
			}
			evs = append(evs, e)
		}
	}
	if _, err := st.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	corrs := func(evs []audit.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.CorrelationID)
		}
		return out
	}
	heads := func(f audit.HeadFilter) []string {
		t.Helper()
		evs, err := ir.Heads(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if len(e.Detail) != 0 || e.Type != f.Type {
				t.Fatalf("head %+v", e)
			}
		}
		return corrs(evs)
	}
	sig := audit.SignalReceived
	for _, c := range []struct {
		name string
		f    audit.HeadFilter
		want []string
	}{
		{"newest first", audit.HeadFilter{Type: sig, Limit: 3}, []string{"c19", "c18", "c17"}},
		{"ties in time by seq", audit.HeadFilter{Type: sig, Until: t0.Add(11 * time.Second), Limit: 3}, []string{"c11", "c10", "c09"}},
		{"node", audit.HeadFilter{Type: sig, Node: "n1", Limit: 3}, []string{"c19", "c17", "c15"}},
		{"kind", audit.HeadFilter{Type: sig, Kind: "irq_skew", Limit: 3}, []string{"c19", "c18", "c15"}},
		{"node and kind", audit.HeadFilter{Type: sig, Node: "n0", Kind: "irq_skew", Limit: 3}, []string{"c18", "c14", "c10"}},
		{"outcome", audit.HeadFilter{Type: audit.Verification, Outcome: "not_fixed", Limit: 3}, []string{"c19", "c16", "c13"}},
		{"since", audit.HeadFilter{Type: sig, Since: t0.Add(17 * time.Second)}, []string{"c19", "c18", "c17"}},
		{"cursor", audit.HeadFilter{Type: sig, Before: t0.Add(10 * time.Second), BeforeSeq: 34, Limit: 3}, []string{"c10", "c09", "c08"}},
	} {
		if got := heads(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := ir.Heads(ctx, audit.HeadFilter{}); err == nil {
		t.Error("Heads without a type succeeded")
	}
	all, err := ir.ByCorrelation(ctx, []string{"c03", "c01", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if got := corrs(all); !slices.Equal(got, []string{"c01", "c01", "c01", "c03", "c03", "c03"}) || !slices.IsSortedFunc(all, func(a, b audit.Event) int { return int(a.Seq - b.Seq) }) {
		t.Errorf("by correlation: %v", got)
	}
	some, err := ir.ByCorrelation(ctx, []string{"c03", "c01"}, audit.Verification, audit.Decision)
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 4 || some[0].Type != audit.Decision || some[1].Type != audit.Verification {
		t.Errorf("by correlation with types: %+v", some)
	}
	many := make([]string, 1200) // more than one statement's list
	for i := range many {
		many[i] = fmt.Sprintf("c%02d", i%20)
	}
	if got, err := ir.ByCorrelation(ctx, many, audit.SignalReceived); err != nil || len(got) != 20 {
		t.Errorf("by 1,200 ids: %d events, %v", len(got), err)
	}
}
