package approval

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/signal"
)

// runner plans what the service approved as engine.PlanApproved does (a compare-and-set
// held → planned with the events), and records what it would run.
type runner struct {
	mu  sync.Mutex
	st  audit.Store
	ran []string
}

func (r *runner) PlanApproved(ctx context.Context, id string, version int64, _ bool, evs ...audit.Event) (audit.Action, error) {
	ev := audit.Event{Type: audit.ActionPlanned, ActionID: id, Key: "approved:" + id}
	c, err := r.st.Commit(ctx, audit.Batch{Events: append(evs, ev),
		Changes: []audit.Change{{ID: id, From: []audit.State{audit.StateHeld}, Version: version, To: audit.StatePlanned}}})
	if err != nil {
		return audit.Action{}, err
	}
	r.mu.Lock()
	r.ran = append(r.ran, id)
	r.mu.Unlock()
	return c.Actions[0], nil
}

// checker answers with a fixed verdict.
type checker struct{ v guard.Verdict }

func (c *checker) Check(context.Context, guard.Candidate) guard.Verdict { return c.v }

type fixture struct {
	st    audit.Store
	svc   *Service
	run   *runner
	gate  *checker
	now   time.Time
	clock func() time.Time
}

func newFixture(t *testing.T, cfg guard.Approval) *fixture {
	t.Helper()
	f := &fixture{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), gate: &checker{v: guard.Verdict{Outcome: guard.Allow}}}
	f.clock = func() time.Time { return f.now }
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "audit.db"), audit.Options{Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st, f.run = st, &runner{st: st}
	f.svc = New(Options{Store: st, Engine: f.run, Guards: f.gate, Config: cfg, Now: f.clock})
	return f
}

// hold records a held action as the engine does.
func (f *fixture) hold(t *testing.T, id, node string, risk policy.Risk, requester string) {
	t.Helper()
	s := signal.Signal{Source: "am", Kind: "vm_freeze", Node: node, Status: signal.Firing, StartsAt: f.now}
	h := engine.Held{Request: executors.Request{ID: id, Action: "node.cordon", Node: node, CorrelationID: "c-" + id},
		Decision: policy.Decision{Action: "node.cordon", Risk: risk, Reason: "frozen"}, Signal: s,
		Verdict: guard.Verdict{Outcome: guard.Hold, Reason: guard.ReasonRisk}, Requester: requester}
	d, _ := json.Marshal(h)
	req, _ := json.Marshal(h.Request)
	if _, err := f.st.Commit(context.Background(), audit.Batch{
		Events: []audit.Event{{Type: audit.ApprovalRequested, ActionID: id, Node: node,
			Kind: "vm_freeze", Action: "node.cordon", CorrelationID: "c-" + id, Actor: requester, Key: "action:" + id, Detail: d}},
		Changes: []audit.Change{{Create: &audit.Action{ID: id, Node: node, Action: "node.cordon", Kind: "vm_freeze",
			CorrelationID: "c-" + id, State: audit.StateHeld, Request: req, Held: d}}},
	}); err != nil {
		t.Fatal(err)
	}
}

var (
	alice = Identity{Name: "alice", Role: Approver}
	bob   = Identity{Name: "bob", Role: Approver}
	carol = Identity{Name: "carol", Role: Viewer}
	dave  = Identity{Name: "dave", Role: Admin}
)

func TestApprovalRules(t *testing.T) {
	ctx := context.Background()
	type op struct {
		verb    string // approve, reject, wait
		who     Identity
		reason  string
		wait    time.Duration
		wantErr string
		state   State
	}
	tests := []struct {
		name      string
		risk      policy.Risk
		requester string
		cfg       guard.Approval
		refuse    bool
		ops       []op
		ran       int
	}{
		{"one approver runs it", policy.RiskHigh, "engine", guard.Approval{}, false, []op{
			{"approve", bob, "looks right", 0, "", Approved},
			{"reject", alice, "too late", 0, "approval request is no longer pending: a1 is approved", Approved},
		}, 1},
		{"viewer may not approve", policy.RiskHigh, "engine", guard.Approval{}, false, []op{
			{"approve", carol, "x", 0, "role does not allow this: carol is viewer", Pending},
		}, 0},
		{"a reason is required", policy.RiskHigh, "engine", guard.Approval{}, false, []op{
			{"approve", bob, " ", 0, "a reason is required", Pending},
			{"reject", bob, "", 0, "a reason is required", Pending},
		}, 0},
		{"no self-approval", policy.RiskHigh, "user:alice", guard.Approval{}, false, []op{
			{"approve", alice, "mine", 0, "an approver cannot approve their own request: alice requested a1", Pending},
			{"reject", alice, "changed my mind", 0, "", Rejected},
		}, 0},
		{"no self-approval, whatever the case", policy.RiskHigh, "user:Alice", guard.Approval{}, false, []op{
			{"approve", alice, "mine", 0, "an approver cannot approve their own request: alice requested a1", Pending},
			{"approve", Identity{Name: "ALICE", Role: Approver}, "mine", 0, "an approver cannot approve their own request: ALICE requested a1", Pending},
		}, 0},
		{"two people when no one is known to have asked", policy.RiskHigh, "engine", guard.Approval{TwoPersonUnknownRequester: true}, false, []op{
			{"approve", bob, "ok", 0, "", Pending},
			{"approve", Identity{Name: "Bob", Role: Approver}, "ok", 0, "already approved by this person; a second approver is needed: a1", Pending},
			{"approve", alice, "agreed", 0, "", Approved},
		}, 1},
		{"one person when the requester is known", policy.RiskHigh, "user:carol", guard.Approval{TwoPersonUnknownRequester: true}, false, []op{
			{"approve", bob, "ok", 0, "", Approved},
		}, 1},
		{"two people for critical", policy.RiskCritical, "engine", guard.Approval{TwoPersonCritical: true}, false, []op{
			{"approve", bob, "ok", 0, "", Pending},
			{"approve", bob, "ok again", 0, "already approved by this person; a second approver is needed: a1", Pending},
			{"approve", dave, "agreed", 0, "", Approved},
		}, 1},
		{"two-person rule only for critical", policy.RiskHigh, "engine", guard.Approval{TwoPersonCritical: true}, false, []op{
			{"approve", bob, "ok", 0, "", Approved},
		}, 1},
		{"expiry", policy.RiskHigh, "engine", guard.Approval{TTL: time.Minute}, false, []op{
			{"wait", Identity{}, "", time.Minute, "", Pending},
			{"approve", bob, "ok", 0, "approval request is no longer pending: a1 expired at 2026-01-01T12:01:00Z", Expired},
		}, 0},
		{"guards re-checked at approval", policy.RiskHigh, "engine", guard.Approval{}, true, []op{
			{"approve", bob, "ok", 0, "approved, but the guards refused the action: paused: remedy is paused", Approved},
		}, 0},
		{"unknown id", policy.RiskHigh, "engine", guard.Approval{}, false, []op{
			{"approve-other", bob, "ok", 0, "no such approval request: nope", Pending},
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.cfg)
			if tt.refuse {
				f.gate.v = guard.Verdict{Outcome: guard.Refuse, Reason: guard.ReasonPaused, Message: "remedy is paused"}
			}
			f.hold(t, "a1", "n1", tt.risk, tt.requester)
			for i, o := range tt.ops {
				var err error
				switch o.verb {
				case "approve":
					_, err = f.svc.Approve(ctx, "a1", o.who, o.reason)
				case "approve-other":
					_, err = f.svc.Approve(ctx, "nope", o.who, o.reason)
				case "reject":
					_, err = f.svc.Reject(ctx, "a1", o.who, o.reason)
				case "wait":
					f.now = f.now.Add(o.wait)
				}
				got := ""
				if err != nil {
					got = err.Error()
				}
				if got != o.wantErr {
					t.Errorf("op %d %s: error %q, want %q", i, o.verb, got, o.wantErr)
				}
				r, err := f.svc.Get(ctx, "a1")
				if err != nil {
					t.Fatal(err)
				}
				if r.State != o.state {
					t.Errorf("op %d %s: state %s, want %s", i, o.verb, r.State, o.state)
				}
			}
			if len(f.run.ran) != tt.ran {
				t.Errorf("ran %d actions, want %d", len(f.run.ran), tt.ran)
			}
		})
	}
}

func TestEveryHumanDecisionIsAudited(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, guard.Approval{TTL: time.Hour, TwoPersonCritical: true})
	f.hold(t, "a1", "n1", policy.RiskCritical, "engine")
	f.hold(t, "a2", "n2", policy.RiskHigh, "engine")
	f.hold(t, "a3", "n3", policy.RiskHigh, "engine")
	if _, err := f.svc.Approve(ctx, "a1", bob, "first"); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	if _, err := f.svc.Approve(ctx, "a1", alice, "second"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Reject(ctx, "a2", alice, "not now"); err != nil {
		t.Fatal(err)
	}
	list, err := f.svc.List(ctx, false)
	if err != nil || len(list) != 1 || list[0].ID != "a3" {
		t.Fatalf("pending = %+v, %v", list, err)
	}
	f.now = f.now.Add(time.Hour)
	if n, err := f.svc.ExpireDue(ctx); n != 1 || err != nil {
		t.Fatalf("expired %d, %v", n, err)
	}
	var got []string
	for _, typ := range []audit.Type{audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired} {
		evs, err := f.st.Query(ctx, audit.Filter{Type: typ, Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			got = append(got, strings.Join([]string{string(e.Type), e.ActionID, e.Actor, e.Outcome, e.Time.Format("15:04"), string(e.Detail)}, " "))
		}
	}
	want := []string{
		`approval.granted a1 user:bob vote 1 of 2 12:00 {"reason":"first","vote":1,"of":2}`,
		`approval.granted a1 user:alice approved 12:01 {"reason":"second","vote":2,"of":2}`,
		`approval.rejected a2 user:alice rejected 12:01 {"reason":"not now"}`,
		`approval.expired a3 engine expired 13:01 {"reason":"no decision within 1h0m0s"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A new service over the same log (a restart) sees the same states.
	svc2 := New(Options{Store: f.st, Engine: f.run, Config: guard.Approval{TTL: time.Hour, TwoPersonCritical: true}, Now: f.clock})
	all, err := svc2.List(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]State{}
	for _, r := range all {
		states[r.ID] = r.State
	}
	if states["a1"] != Approved || states["a2"] != Rejected || states["a3"] != Expired {
		t.Errorf("states after restart = %v", states)
	}
	if _, err := svc2.Approve(ctx, "a3", bob, "late"); !errors.Is(err, ErrNotPending) {
		t.Errorf("approving an expired request: %v", err)
	}
}
