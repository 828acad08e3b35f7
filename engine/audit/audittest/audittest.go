// Package audittest is the conformance suite every audit store passes: the same tests
// run against SQLite and PostgreSQL.
package audittest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// Backend is one empty database for one test.
type Backend struct {
	// Open opens a store on the database; opening it again sees the same rows.
	Open func(opts audit.Options) (audit.Log, error)
	// Exec runs SQL on the database behind the store's back (to tamper with rows).
	Exec func(sql string) error
}

// t0 is the time the suite's clock starts at.
var t0 = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

type suite struct {
	t          *testing.T
	b          Backend
	newBackend func(t *testing.T) Backend
	keys       audit.Signer
	now        time.Time
}

// Run runs the suite; newBackend makes an empty database for each test.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(*suite)
	}{
		{"IdempotentKeys", testIdempotentKeys},
		{"ManyKeysInOneCall", testManyKeys},
		{"AtomicBatches", testAtomicBatches},
		{"Invalid", testInvalid},
		{"Recovery", testRecovery},
		{"Queries", testQueries},
		{"Ordering", testOrdering},
		{"Concurrency", testConcurrency},
		{"TwoWriters", testTwoWriters},
		{"Reopen", testReopen},
		{"VerifyCatchesTampering", testTamper},
		{"Retention", testRetention},
		{"RetentionKeys", testRetentionKeys},
		{"Export", testExport},
		{"Follow", testFollow},
		{"Timeline", testTimeline},
		{"LedgerCompareAndSet", testLedgerCAS},
		{"LedgerAtomicWithEvents", testLedgerAtomic},
		{"LedgerQueries", testLedgerQueries},
		{"LedgerRacesTwoWriters", testLedgerRaces},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
			s := &suite{t: t, b: newBackend(t), newBackend: newBackend, keys: audit.NewEd25519Signer(ed25519.NewKeyFromSeed(seed)), now: t0}
			tc.fn(s)
		})
	}
}

func (s *suite) clock() time.Time { return s.now }

// open opens a store with the suite's key and clock, closed at the end of the test.
func (s *suite) open() audit.Log {
	s.t.Helper()
	return s.openWith(audit.Options{Keys: s.keys, Clock: s.clock})
}

func (s *suite) openWith(opts audit.Options) audit.Log {
	s.t.Helper()
	st, err := s.b.Open(opts)
	if err != nil {
		s.t.Fatalf("open store: %v", err)
	}
	s.t.Cleanup(func() { st.Close() })
	return st
}

func (s *suite) exec(q string) {
	s.t.Helper()
	if err := s.b.Exec(q); err != nil {
		s.t.Fatalf("exec %q: %v", q, err)
	}
}

func (s *suite) appendOK(st audit.Store, events ...audit.Event) []bool {
	s.t.Helper()
	ins, err := st.Append(context.Background(), events...)
	if err != nil {
		s.t.Fatalf("append: %v", err)
	}
	return ins
}

func (s *suite) query(st audit.Store, f audit.Filter) []audit.Event {
	s.t.Helper()
	got, err := st.Query(context.Background(), f)
	if err != nil {
		s.t.Fatalf("query %+v: %v", f, err)
	}
	return got
}

func (s *suite) verify(st audit.Log) audit.VerifyReport {
	s.t.Helper()
	rep, err := st.Verify(context.Background())
	if err != nil {
		s.t.Fatalf("verify: %v", err)
	}
	return rep
}

func (s *suite) wantBreak(rep audit.VerifyReport, want *audit.Break) {
	s.t.Helper()
	if !reflect.DeepEqual(rep.Break, want) {
		s.t.Fatalf("verify break = %+v, want %+v (report %+v)", rep.Break, want, rep)
	}
}

func keysOf(events []audit.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Key
	}
	return out
}

func (s *suite) wantKeys(what string, got []audit.Event, want ...string) {
	s.t.Helper()
	if g := keysOf(got); !reflect.DeepEqual(g, want) && !(len(g) == 0 && len(want) == 0) {
		s.t.Fatalf("%s: keys = %q, want %q", what, g, want)
	}
}

func ev(typ audit.Type, key string) audit.Event {
	return audit.Event{Type: typ, Key: key, Actor: audit.ActorEngine}
}

func testIdempotentKeys(s *suite) {
	st := s.open()
	for _, step := range []struct {
		events []audit.Event
		want   []bool
	}{
		{[]audit.Event{ev(audit.SignalReceived, "signal:a")}, []bool{true}},
		{[]audit.Event{ev(audit.SignalReceived, "signal:a")}, []bool{false}},
		{[]audit.Event{ev(audit.SignalReceived, "signal:b"), ev(audit.SignalReceived, "signal:b")}, []bool{true, false}},
		{[]audit.Event{ev(audit.PolicyLoaded, ""), ev(audit.PolicyLoaded, "")}, []bool{true, true}},
		{[]audit.Event{ev(audit.SignalReceived, "signal:a"), ev(audit.SignalReceived, "signal:c")}, []bool{false, true}},
	} {
		if got := s.appendOK(st, step.events...); !reflect.DeepEqual(got, step.want) {
			s.t.Fatalf("append %q = %v, want %v", keysOf(step.events), got, step.want)
		}
	}
	s.wantKeys("all", s.query(st, audit.Filter{Ascending: true}), "signal:a", "signal:b", "", "", "signal:c")
	if rep := s.verify(st); !rep.OK() || rep.Rows != 5 {
		s.t.Fatalf("verify = %+v, want 5 intact rows", rep)
	}
}

// testManyKeys appends more keys in one call than one key lookup reads.
func testManyKeys(s *suite) {
	st := s.open()
	batch := func(from, to int) []audit.Event {
		var out []audit.Event
		for i := from; i < to; i++ {
			out = append(out, ev(audit.SignalReceived, fmt.Sprintf("signal:%d", i)))
		}
		return out
	}
	for _, step := range []struct{ from, to, wantNew int }{{0, 1100, 1100}, {550, 1650, 550}} {
		ins := s.appendOK(st, batch(step.from, step.to)...)
		n := 0
		for i, ok := range ins {
			if ok {
				n++
			}
			if want := step.from+i >= 1100 || step.from == 0; ok != want {
				s.t.Fatalf("append %d..%d: event %d new = %v", step.from, step.to, step.from+i, ok)
			}
		}
		if n != step.wantNew {
			s.t.Fatalf("append %d..%d: %d new, want %d", step.from, step.to, n, step.wantNew)
		}
	}
	if rep := s.verify(st); !rep.OK() || rep.Rows != 1650 {
		s.t.Fatalf("verify = %+v", rep)
	}
}

// testAtomicBatches makes the database refuse one event of a call: none of that call's
// events may be written, and the chain goes on unbroken afterwards.
func testAtomicBatches(s *suite) {
	st := s.open()
	s.appendOK(st, ev(audit.SignalReceived, "signal:before"))
	s.exec(`CREATE UNIQUE INDEX audit_test_boom ON audit_events(node) WHERE node = 'boom'`)
	boom := audit.Event{Type: audit.Decision, Node: "boom"}
	_, err := st.Append(context.Background(), ev(audit.Decision, "decision:x"), boom, boom)
	if err == nil {
		s.t.Fatal("append violating a constraint succeeded")
	}
	s.wantKeys("after failed batch", s.query(st, audit.Filter{}), "signal:before")
	s.exec(`DROP INDEX audit_test_boom`)
	if got := s.appendOK(st, ev(audit.Decision, "decision:x"), boom); !reflect.DeepEqual(got, []bool{true, true}) {
		s.t.Fatalf("append after drop = %v", got)
	}
	got := s.query(st, audit.Filter{Ascending: true})
	s.wantKeys("after retry", got, "signal:before", "decision:x", "")
	if got[2].Seq != 3 {
		s.t.Fatalf("seq after a failed batch = %d, want 3", got[2].Seq)
	}
	if rep := s.verify(st); !rep.OK() {
		s.t.Fatalf("verify: %v", rep.Break)
	}
}

func testInvalid(s *suite) {
	st := s.open()
	for _, tc := range []struct {
		name   string
		events []audit.Event
		want   error
		msg    string
	}{
		{"no type", []audit.Event{ev(audit.Decision, "a"), {Key: "b"}}, audit.ErrNoType,
			"audit append: event 1: audit event has no type"},
		{"bad detail", []audit.Event{{Type: audit.Decision, Detail: json.RawMessage(`{"a":`)}}, audit.ErrBadDetail,
			"audit append: event 0: audit event detail is not valid JSON: unexpected end of JSON input"},
	} {
		_, err := st.Append(context.Background(), tc.events...)
		if !errors.Is(err, tc.want) || err.Error() != tc.msg {
			s.t.Errorf("%s: err = %v, want %q", tc.name, err, tc.msg)
		}
	}
	if got := s.query(st, audit.Filter{}); len(got) != 0 {
		s.t.Fatalf("invalid appends wrote %d events", len(got))
	}
	// Detail is stored compact, as the hash covers it.
	s.appendOK(st, audit.Event{Type: audit.ActionResult, Detail: json.RawMessage("{\n \"before\": \"<1>\",  \"after\": 2\n}")})
	if got := s.query(st, audit.Filter{}); string(got[0].Detail) != `{"before":"<1>","after":2}` {
		s.t.Fatalf("stored detail = %s", got[0].Detail)
	}
}

func testRecovery(s *suite) {
	st := s.open()
	planned := func(id string) audit.Event {
		return audit.Event{Type: audit.ActionPlanned, ActionID: id, Key: "action:" + id}
	}
	s.appendOK(st,
		ev(audit.SignalReceived, audit.SignalKey("a")), ev(audit.SignalReceived, audit.SignalKey("b")),
		ev(audit.SignalReceived, audit.SignalKey("c")), ev(audit.Decision, audit.DecisionKey("a")),
		planned("p1"), planned("p2"), planned("p3"), planned("p4"),
		audit.Event{Type: audit.Dispatched, ActionID: "p1", Key: "dispatch:p1"},
		audit.Event{Type: audit.ActionResult, ActionID: "p2", Key: "result:p2"},
		audit.Event{Type: audit.Verification, ActionID: "p3", Key: "verify:p3"},
	)
	for _, tc := range []struct {
		name  string
		fn    func(context.Context, int64, int) ([]audit.Event, error)
		after int64
		limit int
		want  []string
	}{
		{"undecided", st.Undecided, 0, 10, []string{"signal:b", "signal:c"}},
		{"undecided limit", st.Undecided, 0, 1, []string{"signal:b"}},
		{"undecided after seq", st.Undecided, 2, 10, []string{"signal:c"}},
	} {
		got, err := tc.fn(context.Background(), tc.after, tc.limit)
		if err != nil {
			s.t.Fatalf("%s: %v", tc.name, err)
		}
		s.wantKeys(tc.name, got, tc.want...)
	}
}

func testQueries(s *suite) {
	st := s.open()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	s.appendOK(st,
		audit.Event{Key: "1", Time: at(0), Type: audit.SignalReceived, CorrelationID: "c1", Node: "n1", Kind: "irq_skew", Actor: audit.ActorAgent},
		audit.Event{Key: "2", Time: at(1), Type: audit.Decision, CorrelationID: "c1", Node: "n1", Kind: "irq_skew", Action: "irq.spread", Outcome: "act", Actor: audit.ActorEngine, PolicyRev: "r1"},
		audit.Event{Key: "3", Time: at(2), Type: audit.ApprovalGranted, CorrelationID: "c1", Node: "n1", Action: "irq.spread", Outcome: audit.OutcomeOK, Actor: audit.UserActor("alice")},
		audit.Event{Key: "4", Time: at(3), Type: audit.ActionResult, CorrelationID: "c1", Node: "n1", Action: "irq.spread", ActionID: "a1", Outcome: audit.OutcomeOK, Actor: audit.ActorAgent},
		audit.Event{Key: "5", Time: at(4), Type: audit.SignalReceived, CorrelationID: "c2", Node: "n2", Kind: "psi", Actor: audit.ActorAgent},
		audit.Event{Key: "6", Time: at(5), Type: audit.ActionResult, CorrelationID: "c2", Node: "n2", Action: "node.cordon", Outcome: audit.OutcomeFailed, Actor: audit.ActorEngine},
		audit.Event{Key: "7", Time: at(6), Type: audit.Paused, Actor: audit.UserActor("bob")},
	)
	for _, tc := range []struct {
		name string
		f    audit.Filter
		want []string
	}{
		{"all newest first", audit.Filter{}, []string{"7", "6", "5", "4", "3", "2", "1"}},
		{"ascending", audit.Filter{Ascending: true}, []string{"1", "2", "3", "4", "5", "6", "7"}},
		{"limit", audit.Filter{Limit: 2}, []string{"7", "6"}},
		{"node", audit.Filter{Node: "n2"}, []string{"6", "5"}},
		{"action", audit.Filter{Action: "irq.spread"}, []string{"4", "3", "2"}},
		{"kind", audit.Filter{Kind: "irq_skew"}, []string{"2", "1"}},
		{"type", audit.Filter{Type: audit.ActionResult}, []string{"6", "4"}},
		{"outcome", audit.Filter{Outcome: audit.OutcomeOK}, []string{"4", "3"}},
		{"actor", audit.Filter{Actor: audit.UserActor("alice")}, []string{"3"}},
		{"correlation", audit.Filter{CorrelationID: "c2"}, []string{"6", "5"}},
		{"since inclusive", audit.Filter{Since: at(5)}, []string{"7", "6"}},
		{"until exclusive", audit.Filter{Until: at(1)}, []string{"1"}},
		{"range", audit.Filter{Since: at(2), Until: at(4)}, []string{"4", "3"}},
		{"after seq", audit.Filter{AfterSeq: 5, Ascending: true}, []string{"6", "7"}},
		{"combined", audit.Filter{Node: "n1", Actor: audit.ActorAgent, Type: audit.ActionResult}, []string{"4"}},
		{"types", audit.Filter{Types: []audit.Type{audit.Decision, audit.Paused}}, []string{"7", "2"}},
		{"node and types", audit.Filter{Node: "n1", Types: []audit.Type{audit.ActionResult, audit.ApprovalGranted}}, []string{"4", "3"}},
		{"type and types", audit.Filter{Type: audit.ActionResult, Types: []audit.Type{audit.ActionResult, audit.Decision}, Outcome: audit.OutcomeFailed}, []string{"6"}},
		{"no match", audit.Filter{Node: "n3"}, nil},
	} {
		s.wantKeys(tc.name, s.query(st, tc.f), tc.want...)
	}
	// Every field survives the round trip.
	got := s.query(st, audit.Filter{Type: audit.Decision})[0]
	want := audit.Event{Seq: 2, Key: "2", Time: at(1), Type: audit.Decision, CorrelationID: "c1", Node: "n1", Kind: "irq_skew",
		Action: "irq.spread", Outcome: "act", Actor: audit.ActorEngine, PolicyRev: "r1", PrevHash: got.PrevHash, Hash: got.Hash}
	if !reflect.DeepEqual(got, want) {
		s.t.Fatalf("decision row = %+v\nwant %+v", got, want)
	}
	// WithoutDetail keeps every column but the detail.
	s.appendOK(st, audit.Event{Key: "d", Type: audit.Decision, Node: "n1", Detail: []byte(`{"a":1}`)})
	if full := s.query(st, audit.Filter{Limit: 1}); len(full) != 1 || string(full[0].Detail) != `{"a":1}` {
		s.t.Fatalf("with detail: %+v", full)
	}
	if light := s.query(st, audit.Filter{Limit: 1, WithoutDetail: true}); len(light) != 1 || light[0].Detail != nil || light[0].Key != "d" || light[0].Hash == "" {
		s.t.Fatalf("without detail: %+v", light)
	}
}

func testOrdering(s *suite) {
	st := s.open()
	for i := range 20 {
		s.appendOK(st, audit.Event{Type: audit.Decision, Key: fmt.Sprint(i), Time: t0.Add(-time.Duration(i) * time.Second)})
	}
	got := s.query(st, audit.Filter{Ascending: true})
	for i, e := range got {
		if e.Seq != int64(i+1) || e.Key != fmt.Sprint(i) {
			s.t.Fatalf("row %d = seq %d key %q, want seq %d key %q", i, e.Seq, e.Key, i+1, fmt.Sprint(i))
		}
	}
	if len(got) != 20 {
		s.t.Fatalf("%d rows, want 20", len(got))
	}
	// Events without a time get the store's clock.
	s.appendOK(st, audit.Event{Type: audit.Decision, Key: "now"})
	if got := s.query(st, audit.Filter{Limit: 1})[0]; !got.Time.Equal(t0) {
		s.t.Fatalf("time of an event without one = %v, want %v", got.Time, t0)
	}
}

// testConcurrency appends from many goroutines at once: every call's events must land
// next to each other, seqs must be dense, and the chain intact.
func testConcurrency(s *suite) {
	st := s.open()
	const writers, calls = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				k := fmt.Sprintf("%d/%d", w, c)
				ins, err := st.Append(context.Background(),
					audit.Event{Type: audit.SignalReceived, Key: "signal:" + k, Node: fmt.Sprint(w)},
					audit.Event{Type: audit.Decision, Key: "decision:" + k, Node: fmt.Sprint(w)},
					audit.Event{Type: audit.Decision, Key: "decision:" + k, Node: fmt.Sprint(w)})
				if err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(ins, []bool{true, true, false}) {
					errs <- fmt.Errorf("append %s = %v", k, ins)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatal(err)
	}
	var rows []audit.Event
	if err := audit.Walk(context.Background(), st, audit.Filter{}, func(e *audit.Event) bool {
		rows = append(rows, *e)
		return true
	}); err != nil {
		s.t.Fatal(err)
	}
	if len(rows) != writers*calls*2 {
		s.t.Fatalf("%d rows, want %d", len(rows), writers*calls*2)
	}
	for i := 0; i < len(rows); i += 2 {
		sig, dec := rows[i], rows[i+1]
		if sig.Seq != int64(i+1) || dec.Seq != int64(i+2) || dec.Key != "decision:"+strings.TrimPrefix(sig.Key, "signal:") {
			s.t.Fatalf("rows %d,%d = %d %q, %d %q: a call's events are not adjacent", i, i+1, sig.Seq, sig.Key, dec.Seq, dec.Key)
		}
	}
	if rep := s.verify(st); !rep.OK() || rep.Rows != int64(len(rows)) {
		s.t.Fatalf("verify = %+v", rep)
	}
}

// testTwoWriters opens the database twice, as two engine replicas (or two processes)
// would, and appends through both at once: they must extend one chain.
func testTwoWriters(s *suite) {
	stores := []audit.Log{s.open(), s.open()}
	const calls = 60
	var wg sync.WaitGroup
	errs := make(chan error, 2*4)
	for i, st := range stores {
		for w := range 4 {
			wg.Go(func() {
				for c := range calls {
					k := fmt.Sprintf("%d/%d/%d", i, w, c)
					if _, err := st.Append(context.Background(), ev(audit.SignalReceived, "signal:"+k), ev(audit.Decision, "decision:"+k)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatal(err)
	}
	// Both replicas try the same key: exactly one wins.
	a, errA := stores[0].Append(context.Background(), ev(audit.Decision, "decision:same"))
	b, errB := stores[1].Append(context.Background(), ev(audit.Decision, "decision:same"))
	if errA != nil || errB != nil || !a[0] || b[0] {
		s.t.Fatalf("same key from two replicas = %v %v, %v %v", a, errA, b, errB)
	}
	want := int64(2*4*calls*2 + 1)
	for _, st := range stores {
		if rep := s.verify(st); !rep.OK() || rep.Rows != want || rep.Last != want {
			s.t.Fatalf("verify = %+v, want %d intact rows", rep, want)
		}
	}
}

func testReopen(s *suite) {
	st := s.open()
	s.appendOK(st, ev(audit.SignalReceived, "signal:a"), ev(audit.Decision, "decision:a"))
	if err := st.Close(); err != nil {
		s.t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), ev(audit.Decision, "x")); !errors.Is(err, audit.ErrClosed) {
		s.t.Fatalf("append after close: err = %v, want ErrClosed", err)
	}
	st = s.open()
	if got := s.appendOK(st, ev(audit.SignalReceived, "signal:a"), ev(audit.Decision, "decision:b")); !reflect.DeepEqual(got, []bool{false, true}) {
		s.t.Fatalf("append after reopen = %v", got)
	}
	if rep := s.verify(st); !rep.OK() || rep.Rows != 3 || rep.Last != 3 {
		s.t.Fatalf("verify after reopen = %+v", rep)
	}
}

func testTamper(s *suite) {
	for _, tc := range []struct {
		name string
		sql  string
		want *audit.Break
	}{
		{"edited field", `UPDATE audit_events SET outcome = 'ok' WHERE seq = 3`,
			&audit.Break{Seq: 3, Reason: "content does not match its hash (row edited)"}},
		{"edited time", `UPDATE audit_events SET at = at + 1 WHERE seq = 5`,
			&audit.Break{Seq: 5, Reason: "content does not match its hash (row edited)"}},
		{"edited detail", `UPDATE audit_events SET detail = '{"n":99}' WHERE seq = 2`,
			&audit.Break{Seq: 2, Reason: "content does not match its hash (row edited)"}},
		{"deleted row", `DELETE FROM audit_events WHERE seq = 3`,
			&audit.Break{Seq: 4, Reason: "rows 3..3 are missing"}},
		{"deleted head of log", `DELETE FROM audit_events WHERE seq <= 2`,
			&audit.Break{Seq: 3, Reason: "rows 1..2 are missing and no signed checkpoint covers them"}},
		{"rehashed row", `UPDATE audit_events SET hash = 'ab' WHERE seq = 4`,
			&audit.Break{Seq: 4, Reason: "content does not match its hash (row edited)"}},
		{"relinked row", `UPDATE audit_events SET prev_hash = (SELECT hash FROM audit_events WHERE seq = 1) WHERE seq = 3`,
			&audit.Break{Seq: 3, Reason: "previous hash does not match the hash of row 2"}},
	} {
		s.t.Run(tc.name, func(t *testing.T) {
			// Each case gets its own database.
			sub := &suite{t: t, b: s.newBackend(t), keys: s.keys, now: t0}
			st := sub.open()
			for i := range 6 {
				sub.appendOK(st, audit.Event{Type: audit.ActionResult, Outcome: audit.OutcomeFailed, Key: fmt.Sprint(i),
					Detail: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
			}
			if rep := sub.verify(st); !rep.OK() {
				t.Fatalf("verify before tampering: %v", rep.Break)
			}
			sub.exec(tc.sql)
			sub.wantBreak(sub.verify(st), tc.want)
		})
	}
}

func testRetention(s *suite) {
	st := s.open()
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	for i := range 10 {
		s.appendOK(st, audit.Event{Type: audit.Decision, Key: fmt.Sprint(i), Time: at(i)})
	}
	ctx := context.Background()
	if cp, err := st.Retain(ctx, at(0)); err != nil || cp != nil {
		s.t.Fatalf("retain nothing = %+v, %v", cp, err)
	}
	s.now = at(20)
	cp, err := st.Retain(ctx, at(5))
	if err != nil {
		s.t.Fatal(err)
	}
	rows := s.query(st, audit.Filter{Ascending: true})
	s.wantKeys("after retention", rows, "5", "6", "7", "8", "9", "checkpoint:5")
	want := audit.Checkpoint{ThroughSeq: 5, LastHash: rows[0].PrevHash, Removed: 5, Oldest: at(0), Newest: at(4),
		Before: at(5), KeyID: s.keys.KeyID(), Signature: cp.Signature}
	if !reflect.DeepEqual(*cp, want) {
		s.t.Fatalf("checkpoint = %+v\nwant %+v", *cp, want)
	}
	if last := rows[len(rows)-1]; last.Type != audit.RetentionCheckpoint || last.Seq != 11 || !last.Time.Equal(at(20)) {
		s.t.Fatalf("checkpoint event = %+v", last)
	}
	rep := s.verify(st)
	if !rep.OK() || rep.First != 6 || rep.Last != 11 || rep.Rows != 6 || !reflect.DeepEqual(rep.Checkpoint, cp) {
		s.t.Fatalf("verify after retention = %+v", rep)
	}
	// Rows keep coming; a second retention removes the first checkpoint too.
	s.appendOK(st, audit.Event{Type: audit.Decision, Key: "10", Time: at(21)})
	s.now = at(30)
	cp2, err := st.Retain(ctx, at(21))
	if err != nil {
		s.t.Fatal(err)
	}
	if cp2.ThroughSeq != 11 || cp2.Removed != 6 {
		s.t.Fatalf("second checkpoint = %+v", cp2)
	}
	s.wantKeys("after second retention", s.query(st, audit.Filter{Ascending: true}), "10", "checkpoint:11")
	if rep := s.verify(st); !rep.OK() || rep.First != 12 || rep.Checkpoint.ThroughSeq != 11 {
		s.t.Fatalf("verify after second retention = %+v", rep)
	}
	// Everything old: the checkpoint is the only row left and still verifies.
	s.now = at(40)
	if _, err := st.Retain(ctx, at(40)); err != nil {
		s.t.Fatal(err)
	}
	if rep := s.verify(st); !rep.OK() || rep.Rows != 1 || rep.First != 14 {
		s.t.Fatalf("verify after removing everything = %+v", rep)
	}
	// A forged checkpoint is caught.
	s.exec(`UPDATE audit_events SET detail = replace(detail, '"removed":2', '"removed":1') WHERE seq = 14`)
	s.wantBreak(s.verify(st), &audit.Break{Seq: 14, Reason: "content does not match its hash (row edited)"})
}

func testRetentionKeys(s *suite) {
	ctx := context.Background()
	st := s.openWith(audit.Options{Clock: s.clock})
	s.appendOK(st, ev(audit.Decision, "a"), ev(audit.Decision, "b"))
	if _, err := st.Retain(ctx, t0.Add(time.Hour)); !errors.Is(err, audit.ErrNoSigner) {
		s.t.Fatalf("retain without a key: err = %v", err)
	}
	st.Close()
	st = s.open()
	if _, err := st.Retain(ctx, t0.Add(time.Hour)); err != nil {
		s.t.Fatal(err)
	}
	st.Close()
	for _, tc := range []struct {
		name string
		keys audit.Signer
		want *audit.Break
	}{
		{"same key", s.keys, nil},
		{"public key only", audit.NewEd25519Verifier(s.keys.(*audit.Ed25519Signer).Public()), nil},
		{"no key", nil, &audit.Break{Seq: 3, Reason: "rows 1..2 were removed and their checkpoint (seq 3) cannot vouch for them: " +
			"checkpoint signature cannot be checked: no key configured"}},
		{"other key", audit.NewHMACSigner([]byte("k")), &audit.Break{Seq: 3, Reason: "rows 1..2 were removed and their checkpoint (seq 3) " +
			"cannot vouch for them: checkpoint signed with key " + s.keys.KeyID() + ", have hmac-sha256:8254c329a92850f6"}},
	} {
		st := s.openWith(audit.Options{Keys: tc.keys})
		s.wantBreak(s.verify(st), tc.want)
		st.Close()
	}
}

func testExport(s *suite) {
	st := s.open()
	ctx := context.Background()
	for i := range 12 {
		s.appendOK(st, audit.Event{Type: audit.ActionResult, Key: fmt.Sprint(i), Node: fmt.Sprintf("n%d", i%3),
			Detail: json.RawMessage(`{"before":"<a&b>","after":1}`)})
	}
	var all bytes.Buffer
	if err := st.Export(ctx, audit.Filter{}, &all); err != nil {
		s.t.Fatal(err)
	}
	if n := strings.Count(all.String(), "\n"); n != 12 {
		s.t.Fatalf("export wrote %d lines, want 12", n)
	}
	if first, _, _ := strings.Cut(all.String(), "\n"); !strings.Contains(first, `"detail":{"before":"<a&b>","after":1}`) {
		s.t.Fatalf("first line = %s", first)
	}
	rep, err := audit.VerifyJSONL(bytes.NewReader(all.Bytes()), s.keys)
	if err != nil || !rep.OK() || rep.Rows != 12 {
		s.t.Fatalf("verify export = %+v, %v", rep, err)
	}
	var some bytes.Buffer
	if err := st.Export(ctx, audit.Filter{Node: "n1"}, &some); err != nil {
		s.t.Fatal(err)
	}
	var got []audit.Event
	dec := json.NewDecoder(&some)
	for dec.More() {
		var e audit.Event
		if err := dec.Decode(&e); err != nil {
			s.t.Fatal(err)
		}
		got = append(got, e)
	}
	want := s.query(st, audit.Filter{Node: "n1", Ascending: true})
	if !reflect.DeepEqual(got, want) || len(got) != 4 {
		s.t.Fatalf("export of n1 = %+v\nwant %+v", got, want)
	}
}

func testFollow(s *suite) {
	st := s.open()
	s.appendOK(st, audit.Event{Type: audit.Decision, Key: "old", Node: "n1"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan audit.Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- audit.Follow(ctx, st, audit.Filter{Node: "n1", AfterSeq: 1}, 10*time.Millisecond, func(e audit.Event) error {
			got <- e
			return nil
		})
	}()
	s.appendOK(st, audit.Event{Type: audit.Decision, Key: "a", Node: "n1"}, audit.Event{Type: audit.Decision, Key: "x", Node: "n2"})
	s.appendOK(st, audit.Event{Type: audit.Decision, Key: "b", Node: "n1"})
	var keys []string
	for len(keys) < 2 {
		select {
		case e := <-got:
			keys = append(keys, e.Key)
		case <-ctx.Done():
			s.t.Fatalf("follow got %q before timeout", keys)
		}
	}
	if !reflect.DeepEqual(keys, []string{"a", "b"}) {
		s.t.Fatalf("follow = %q", keys)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		s.t.Fatalf("follow ended with %v", err)
	}
}

func testTimeline(s *suite) {
	st := s.open()
	steps := []audit.Type{audit.SignalReceived, audit.Decision, audit.ApprovalRequested, audit.ApprovalGranted,
		audit.Dispatched, audit.ActionResult, audit.Verification}
	for i, typ := range steps {
		s.appendOK(st, audit.Event{Type: typ, CorrelationID: "inc-1", Key: fmt.Sprint(i)},
			audit.Event{Type: typ, CorrelationID: "inc-2"})
	}
	tl, err := audit.Timeline(context.Background(), st, "inc-1")
	if err != nil {
		s.t.Fatal(err)
	}
	var got []audit.Type
	for _, e := range tl {
		got = append(got, e.Type)
	}
	if !reflect.DeepEqual(got, steps) {
		s.t.Fatalf("timeline = %v, want %v", got, steps)
	}
}

func (s *suite) commit(st audit.Store, b audit.Batch) (audit.Committed, error) {
	s.t.Helper()
	return st.Commit(context.Background(), b)
}

func newAction(id, node string) *audit.Action {
	return &audit.Action{ID: id, Node: node, Action: "node.cordon", CorrelationID: "c-" + id, State: audit.StateHeld,
		Deadline: t0.Add(time.Hour), Request: []byte(`{"id":"` + id + `"}`)}
}

// A transition applies only from the states it names (and the version it read); a
// create of an existing id does nothing.
func testLedgerCAS(s *suite) {
	st := s.open()
	c, err := s.commit(st, audit.Batch{Changes: []audit.Change{{Create: newAction("a1", "n1")}}})
	if err != nil || !c.Created[0] || c.Actions[0].Version != 1 || c.Actions[0].Attempt != 1 || c.Actions[0].State != audit.StateHeld {
		s.t.Fatalf("create = %+v, %v", c, err)
	}
	again, err := s.commit(st, audit.Batch{Changes: []audit.Change{{Create: newAction("a1", "n1")}}})
	if err != nil || again.Created[0] || again.Actions[0].Version != 1 {
		s.t.Fatalf("second create = %+v, %v; want no change", again, err)
	}
	ok, err := s.commit(st, audit.Batch{Changes: []audit.Change{audit.Transition("a1", audit.StatePlanned, audit.StateHeld)}})
	if err != nil || ok.Actions[0].State != audit.StatePlanned || ok.Actions[0].Version != 2 {
		s.t.Fatalf("held->planned = %+v, %v", ok, err)
	}
	_, err = s.commit(st, audit.Batch{Changes: []audit.Change{audit.Transition("a1", audit.StateRejected, audit.StateHeld)}})
	var conflict *audit.Conflict
	if !errors.As(err, &conflict) || !errors.Is(err, audit.ErrConflict) || conflict.Current == nil || conflict.Current.State != audit.StatePlanned {
		s.t.Fatalf("held->rejected of a planned action = %v; want a conflict naming planned", err)
	}
	if want := "action ledger conflict: action a1 is planned, not held"; err.Error() != want {
		s.t.Fatalf("conflict says %q, want %q", err, want)
	}
	stale := audit.Transition("a1", audit.StateDispatched, audit.StatePlanned)
	stale.Version = 1
	if _, err := s.commit(st, audit.Batch{Changes: []audit.Change{stale}}); !errors.Is(err, audit.ErrConflict) {
		s.t.Fatalf("a transition at a stale version = %v; want a conflict", err)
	}
	if _, err := s.commit(st, audit.Batch{Changes: []audit.Change{audit.Transition("nope", audit.StatePlanned, audit.StateHeld)}}); !errors.Is(err, audit.ErrConflict) {
		s.t.Fatalf("a transition of a missing action = %v; want a conflict", err)
	}
	a, err := st.Action(context.Background(), "a1")
	if err != nil || a.State != audit.StatePlanned || a.Version != 2 || a.Node != "n1" || a.Partition != audit.Partition("n1") ||
		string(a.Request) != `{"id":"a1"}` || !a.Deadline.Equal(t0.Add(time.Hour)) {
		s.t.Fatalf("row = %+v, %v", a, err)
	}
	if _, err := st.Action(context.Background(), "nope"); !errors.Is(err, audit.ErrNoAction) {
		s.t.Fatalf("missing row = %v", err)
	}
}

// A batch whose compare fails writes nothing, its events included; the other batches of
// the same group commit are written.
func testLedgerAtomic(s *suite) {
	st := s.open()
	s.commit(st, audit.Batch{Changes: []audit.Change{{Create: newAction("a1", "n1")}, {Create: newAction("a2", "n1")}}})
	var wg sync.WaitGroup
	results := make([]error, 40)
	for i := range results {
		wg.Go(func() {
			id := "a1"
			if i%2 == 1 {
				id = "a2"
			}
			b := audit.Batch{Events: []audit.Event{{Type: audit.ApprovalGranted, ActionID: id, Key: fmt.Sprintf("vote:%d", i)}},
				Changes: []audit.Change{audit.Transition(id, audit.StatePlanned, audit.StateHeld)}}
			_, results[i] = st.Commit(context.Background(), b)
		})
	}
	wg.Wait()
	won := map[string]int{}
	for i, err := range results {
		switch {
		case err == nil:
			won[[]string{"a1", "a2"}[i%2]]++
		case !errors.Is(err, audit.ErrConflict):
			s.t.Fatal(err)
		}
	}
	if won["a1"] != 1 || won["a2"] != 1 {
		s.t.Fatalf("winners = %v; want one per action", won)
	}
	if evs := s.query(st, audit.Filter{Type: audit.ApprovalGranted}); len(evs) != 2 {
		s.t.Fatalf("%d approval events written; want only the winners' 2", len(evs))
	}
	// A failed change undoes the batch's earlier changes too.
	_, err := s.commit(st, audit.Batch{Changes: []audit.Change{
		audit.Transition("a1", audit.StateDispatched, audit.StatePlanned),
		audit.Transition("a2", audit.StateDispatched, audit.StateHeld), // a2 is planned: fails
	}})
	if !errors.Is(err, audit.ErrConflict) {
		s.t.Fatalf("err = %v", err)
	}
	if a, _ := st.Action(context.Background(), "a1"); a.State != audit.StatePlanned {
		s.t.Fatalf("a1 is %s after a failed batch; want planned", a.State)
	}
	if rep := s.verify(st); !rep.OK() {
		s.t.Fatalf("verify = %+v", rep)
	}
}

func testLedgerQueries(s *suite) {
	st := s.open()
	var changes []audit.Change
	for i := range 6 {
		a := newAction(fmt.Sprintf("q%d", i), fmt.Sprintf("n%d", i%2))
		a.State = []audit.State{audit.StateHeld, audit.StatePlanned, audit.StateDispatched}[i%3]
		changes = append(changes, audit.Change{Create: a})
	}
	s.commit(st, audit.Batch{Changes: changes})
	got, err := st.Actions(context.Background(), audit.ActionFilter{States: []audit.State{audit.StatePlanned, audit.StateDispatched}})
	if err != nil || len(got) != 4 {
		s.t.Fatalf("planned+dispatched = %d rows, %v; want 4", len(got), err)
	}
	got, _ = st.Actions(context.Background(), audit.ActionFilter{States: []audit.State{audit.StateHeld}, Node: "n0"})
	if len(got) != 1 || got[0].ID != "q0" {
		s.t.Fatalf("held on n0 = %+v", got)
	}
	got, _ = st.Actions(context.Background(), audit.ActionFilter{Limit: 2})
	if len(got) != 2 {
		s.t.Fatalf("limit 2 = %d rows", len(got))
	}
	got, _ = st.Actions(context.Background(), audit.ActionFilter{Partitions: []int{audit.Partition("n1")}})
	if len(got) != 3 {
		s.t.Fatalf("partition of n1 = %d rows; want 3", len(got))
	}
	got, _ = st.Actions(context.Background(), audit.ActionFilter{UpdatedBefore: time.Unix(0, 1)})
	if len(got) != 0 {
		s.t.Fatalf("updated before 1970 = %d rows", len(got))
	}
}

// Two stores on one database (two replicas) race approve, reject and expire on the same
// actions: every action ends in exactly one final decision, and the loser's events are
// not written.
func testLedgerRaces(s *suite) {
	stores := []audit.Log{s.open(), s.open()}
	const n = 100
	var changes []audit.Change
	for i := range n {
		changes = append(changes, audit.Change{Create: newAction(fmt.Sprintf("r%d", i), "n1")})
	}
	if _, err := s.commit(stores[0], audit.Batch{Changes: changes}); err != nil {
		s.t.Fatal(err)
	}
	outcomes := []struct {
		typ audit.Type
		to  audit.State
	}{{audit.ApprovalGranted, audit.StatePlanned}, {audit.ApprovalRejected, audit.StateRejected}, {audit.ApprovalExpired, audit.StateExpired}}
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		for j, o := range outcomes {
			wg.Go(func() {
				b := audit.Batch{Events: []audit.Event{{Type: o.typ, ActionID: id, Key: fmt.Sprintf("%s:%s", o.typ, id)}},
					Changes: []audit.Change{audit.Transition(id, o.to, audit.StateHeld)}}
				if _, err := stores[(i+j)%2].Commit(context.Background(), b); err != nil && !errors.Is(err, audit.ErrConflict) {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatal(err)
	}
	evs := s.query(stores[1], audit.Filter{Types: []audit.Type{audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired}, Limit: 10 * n})
	if len(evs) != n {
		s.t.Fatalf("%d decisions recorded for %d actions; want exactly one each", len(evs), n)
	}
	byID := map[string]audit.Type{}
	for _, e := range evs {
		byID[e.ActionID] = e.Type
	}
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		a, err := stores[i%2].Action(context.Background(), id)
		if err != nil {
			s.t.Fatal(err)
		}
		want := map[audit.Type]audit.State{audit.ApprovalGranted: audit.StatePlanned, audit.ApprovalRejected: audit.StateRejected,
			audit.ApprovalExpired: audit.StateExpired}[byID[id]]
		if a.State != want || a.Version != 2 {
			s.t.Fatalf("%s: ledger says %s (v%d), the log says %s", id, a.State, a.Version, byID[id])
		}
	}
}
