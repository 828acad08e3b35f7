package verify

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/wire/signal"
)

type sink struct{ got []signal.Signal }

func (s *sink) Submit(_ context.Context, sigs []signal.Signal) error {
	s.got = append(s.got, sigs...)
	return nil
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"), audit.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mk := func(node string, status signal.Status) signal.Signal {
		return signal.Signal{Source: "am", Kind: "packet_drops", Node: node, Status: status, Fingerprint: "fp-" + node,
			StartsAt: now.Add(-time.Hour)}
	}
	record := func(s signal.Signal, action, result string) {
		t.Helper()
		d, _ := json.Marshal(s)
		corr := engine.CorrelationID(&s)
		evs := []audit.Event{{Type: audit.SignalReceived, CorrelationID: corr, Node: s.Node, Outcome: string(s.Status), Key: "signal:" + s.Key(), Detail: d}}
		if action != "" {
			evs = append(evs, audit.Event{Type: audit.ActionResult, CorrelationID: corr, Node: s.Node, Action: action,
				ActionID: "id-" + s.Node, Outcome: result, Key: "result:id-" + s.Node, Detail: json.RawMessage(`{}`)})
		}
		if _, err := st.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	record(mk("fixed", signal.Firing), "sysctl.set", "succeeded")
	record(mk("broken", signal.Firing), "sysctl.set", "succeeded")
	record(mk("rolled", signal.Firing), "sysctl.set", "rolled_back")
	record(mk("dry", signal.Firing), "sysctl.set", "dry_run")
	record(mk("quick", signal.Firing), "node.cordon", "succeeded")

	sk := &sink{}
	v := New(Options{Store: st, Sink: sk, Now: clock,
		Config: guard.Verification{Window: 10 * time.Minute, PerAction: map[string]time.Duration{"node.cordon": 0}, Escalations: 1}})
	outcomes := func() map[string]string {
		evs, err := st.Query(ctx, audit.Filter{Type: audit.Verification})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, e := range evs {
			m[e.Node] = e.Outcome
		}
		return m
	}
	if n, err := v.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("first tick: %d, %v", n, err)
	}
	if got := outcomes(); len(got) != 1 || got["rolled"] != RolledBack {
		t.Fatalf("after first tick: %v", got)
	}
	record(mk("fixed", signal.Resolved), "", "")
	now = now.Add(11 * time.Minute)
	if n, err := v.Tick(ctx); err != nil || n != 2 {
		t.Fatalf("second tick: %d, %v", n, err)
	}
	want := map[string]string{"rolled": RolledBack, "fixed": Fixed, "broken": NotFixed}
	got := outcomes()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if len(got) != 3 {
		t.Errorf("verified %v, want exactly %v", got, want)
	}
	if len(sk.got) != 1 || sk.got[0].Node != "broken" || sk.got[0].Labels[EscalationLabel] != "1" ||
		sk.got[0].Fingerprint != "fp-broken#escalation-1" || sk.got[0].Status != signal.Firing {
		t.Fatalf("escalation = %+v", sk.got)
	}
	// A further tick does nothing; an escalated incident that fails again is not escalated twice.
	if n, _ := v.Tick(ctx); n != 0 {
		t.Errorf("third tick verified %d", n)
	}
	esc := sk.got[0]
	d, _ := json.Marshal(esc)
	corr := engine.CorrelationID(&esc)
	if _, err := st.Append(ctx, audit.Event{Type: audit.SignalReceived, CorrelationID: corr, Node: esc.Node, Outcome: "firing", Key: "signal:" + esc.Key(), Detail: d},
		audit.Event{Type: audit.ActionResult, CorrelationID: corr, Node: esc.Node, Action: "irq.spread", ActionID: "id-esc", Outcome: "succeeded", Key: "result:id-esc"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(11 * time.Minute)
	if n, err := v.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("escalated tick: %d %v", n, err)
	}
	if len(sk.got) != 1 {
		t.Errorf("escalated twice: %+v", sk.got)
	}
}
