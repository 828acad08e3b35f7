package guard

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/policy"
)

// memStore is an in-memory Recorder.
type memStore struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (m *memStore) Append(_ context.Context, evs ...audit.Event) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bool, len(evs))
	for i, e := range evs {
		e.Seq = int64(len(m.evs) + 1)
		m.evs = append(m.evs, e)
		out[i] = true
	}
	return out, nil
}

func (m *memStore) Query(_ context.Context, f audit.Filter) ([]audit.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Event
	for _, e := range m.evs {
		if f.Type == "" || e.Type == f.Type {
			out = append(out, e)
		}
	}
	return out, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func cand(action, node string) Candidate {
	return Candidate{Action: action, Node: node, Kind: "k", SignalKey: node}
}
func must(t *testing.T, s string) Config {
	t.Helper()
	c, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// step is one candidate checked at a time offset, with the verdict expected.
type step struct {
	after   time.Duration
	c       Candidate
	outcome Outcome
	reason  Reason
	message string
}

func TestGuards(t *testing.T) {
	maint := facts.Node{Labels: map[string]string{DefaultMaintenanceKey: "true"}}
	personCordoned := facts.Node{Unschedulable: true, CordonedBy: "other"}
	remedyCordoned := facts.Node{Unschedulable: true, CordonedBy: "remedy"}
	withFacts := func(c Candidate, n facts.Node) Candidate { c.NodeFacts = n; return c }
	withRisk := func(c Candidate, r policy.Risk, req bool) Candidate { c.Risk, c.RequiresApproval = r, req; return c }
	approved := func(c Candidate) Candidate { c.Approved = true; return c }
	sig := func(c Candidate, key string) Candidate { c.SignalKey = key; return c }
	tests := []struct {
		name     string
		cfg      string
		cordoned int
		steps    []step
	}{
		{"allow by default", "", 0, []step{{0, cand("sysctl.set", "n1"), Allow, "", ""}}},
		{"global dry run", "dry_run: true", 0, []step{{0, cand("sysctl.set", "n1"), DryRun, ReasonDryRun, "dry run by guards config"}}},
		{"per-action dry run", "dry_run_actions: [node.cordon]", 0, []step{
			{0, cand("node.cordon", "n1"), DryRun, ReasonDryRun, "dry run by guards config"},
			{0, cand("sysctl.set", "n1"), Allow, "", ""},
		}},
		{"rate limit per action refills", "rate_limits: [{action: node.cordon, rate: 2, every: 1m}]", 0, []step{
			{0, cand("node.cordon", "n1"), Allow, "", ""},
			{0, cand("node.cordon", "n2"), Allow, "", ""},
			{0, cand("node.cordon", "n3"), Refuse, ReasonRateLimit, "rate limit rate_limits[0] node.cordon per action exhausted"},
			{0, cand("sysctl.set", "n3"), Allow, "", ""},
			{30 * time.Second, cand("node.cordon", "n3"), Allow, "", ""},
			{0, cand("node.cordon", "n4"), Refuse, ReasonRateLimit, "rate limit rate_limits[0] node.cordon per action exhausted"},
		}},
		{"rate limit per node", "rate_limits: [{action: '*', per: node, rate: 1, every: 1h}]", 0, []step{
			{0, cand("sysctl.set", "n1"), Allow, "", ""},
			{0, cand("irq.spread", "n1"), Refuse, ReasonRateLimit, "rate limit rate_limits[0] * on node n1 exhausted"},
			{0, cand("irq.spread", "n2"), Allow, "", ""},
			{time.Hour, cand("irq.spread", "n1"), Allow, "", ""},
		}},
		{"cooldown per node and action", "cooldown: {default: 10m, per_action: {node.cordon: 1h}}", 0, []step{
			{0, cand("sysctl.set", "n1"), Allow, "", ""},
			{time.Minute, cand("sysctl.set", "n1"), Refuse, ReasonCooldown, "sysctl.set ran on n1 1m0s ago; cooldown is 10m0s"},
			{0, cand("sysctl.set", "n2"), Allow, "", ""},
			{0, cand("irq.spread", "n1"), Allow, "", ""},
			{9 * time.Minute, cand("sysctl.set", "n1"), Allow, "", ""},
		}},
		{"hysteresis counts distinct firings in the window", "hysteresis: {count: 3, window: 10m}", 0, []step{
			{0, sig(cand("sysctl.set", "n1"), "a"), Refuse, ReasonHysteresis, "k on n1 fired 1 of 3 times within 10m0s"},
			{time.Minute, sig(cand("sysctl.set", "n1"), "a"), Refuse, ReasonHysteresis, "k on n1 fired 1 of 3 times within 10m0s"},
			{time.Minute, sig(cand("sysctl.set", "n1"), "b"), Refuse, ReasonHysteresis, "k on n1 fired 2 of 3 times within 10m0s"},
			{time.Minute, sig(cand("sysctl.set", "n1"), "c"), Allow, "", ""},
			{20 * time.Minute, sig(cand("sysctl.set", "n1"), "d"), Refuse, ReasonHysteresis, "k on n1 fired 1 of 3 times within 10m0s"},
		}},
		{"maintenance label and annotation", "maintenance: {labels: [m/l], annotations: [m/a]}", 0, []step{
			{0, withFacts(cand("sysctl.set", "n1"), facts.Node{Labels: map[string]string{"m/l": ""}}), Refuse, ReasonMaintenance, "node n1 is under maintenance (label m/l)"},
			{0, withFacts(cand("sysctl.set", "n1"), facts.Node{Annotations: map[string]string{"m/a": "yes"}}), Refuse, ReasonMaintenance, "node n1 is under maintenance (annotation m/a)"},
			{0, withFacts(cand("sysctl.set", "n1"), facts.Node{Labels: map[string]string{"m/l": "false"}}), Allow, "", ""},
			{0, withFacts(cand("sysctl.set", "n2"), maint), Allow, "", ""},
		}},
		{"default maintenance key", "", 0, []step{
			{0, withFacts(cand("node.cordon", "n1"), maint), Refuse, ReasonMaintenance, "node n1 is under maintenance (label remedy.io/maintenance)"},
		}},
		{"never uncordon what a person cordoned", "", 0, []step{
			{0, withFacts(cand("node.uncordon", "n1"), personCordoned), Refuse, ReasonPersonCordoned, "node n1 was cordoned by someone else, not remedy"},
			{0, withFacts(cand("node.uncordon", "n2"), remedyCordoned), Allow, "", ""},
		}},
		{"blast radius max nodes counts facts", "blast_radius: [{name: c, max_nodes: 2}]", 1, []step{
			{0, withFacts(cand("node.cordon", "n1"), facts.Node{}), Allow, "", ""},
			{0, withFacts(cand("node.cordon", "n2"), facts.Node{}), Refuse, ReasonBlastRadius, "c: 2 of 10 nodes already out in cluster, limit 2"},
			{0, withFacts(cand("sysctl.set", "n2"), facts.Node{}), Allow, "", ""},
		}},
		{"blast radius percent", "blast_radius: [{name: p, max_percent: 30}]", 0, []step{
			{0, cand("node.cordon", "n1"), Allow, "", ""},
			{0, cand("node.cordon", "n2"), Allow, "", ""},
			{0, cand("node.cordon", "n3"), Allow, "", ""},
			{0, cand("node.cordon", "n4"), Refuse, ReasonBlastRadius, "p: 3 of 10 nodes already out in cluster, limit 3"},
			{0, withFacts(cand("node.cordon", "n1"), facts.Node{Unschedulable: true}), Allow, "", ""},
		}},
		{"blast radius can ask a human", "blast_radius: [{name: c, max_nodes: 1}]\napproval: {hold_on_refusal: [blast_radius]}", 1, []step{
			{0, cand("node.cordon", "n0"), Hold, ReasonBlastRadius, "c: 1 of 10 nodes already out in cluster, limit 1"},
			{0, approved(cand("node.cordon", "n0")), Refuse, ReasonBlastRadius, "c: 1 of 10 nodes already out in cluster, limit 1"},
		}},
		{"storm breaker trips and holds", "storm: {nodes: 2, window: 1m}", 0, []step{
			{0, cand("sysctl.set", "a"), Allow, "", ""},
			{0, cand("sysctl.set", "b"), Allow, "", ""},
			{0, cand("sysctl.set", "c"), Refuse, ReasonStorm, "storm breaker open for kind k: resume it to act again"},
			{time.Hour, cand("sysctl.set", "a"), Refuse, ReasonStorm, "storm breaker open for kind k: resume it to act again"},
		}},
		{"storm window forgets old firings", "storm: {nodes: 2, window: 1m}", 0, []step{
			{0, cand("sysctl.set", "a"), Allow, "", ""},
			{0, cand("sysctl.set", "b"), Allow, "", ""},
			{2 * time.Minute, cand("sysctl.set", "c"), Allow, "", ""},
		}},
		{"approval by risk and by policy", "approval: {min_risk: high}", 0, []step{
			{0, withRisk(cand("sysctl.set", "a"), policy.RiskLow, false), Allow, "", ""},
			{0, withRisk(cand("sysctl.set", "b"), policy.RiskHigh, false), Hold, ReasonRisk, "risk high is at or above high"},
			{0, withRisk(cand("sysctl.set", "c"), policy.RiskLow, true), Hold, ReasonApproval, "the policy asks for approval"},
			{0, approved(withRisk(cand("sysctl.set", "d"), policy.RiskCritical, true)), Allow, "", ""},
		}},
		{"approval off", "approval: {min_risk: none}", 0, []step{
			{0, withRisk(cand("sysctl.set", "a"), policy.RiskCritical, false), Allow, "", ""},
		}},
		{"guards refuse before approval", "approval: {min_risk: low}\ncooldown: {default: 1h}", 0, []step{
			{0, approved(cand("sysctl.set", "a")), Allow, "", ""},
			{0, cand("sysctl.set", "a"), Refuse, ReasonCooldown, "sysctl.set ran on a 0s ago; cooldown is 1h0m0s"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			nodes := map[string]facts.Node{}
			for i := range 10 {
				nodes[fmt.Sprintf("x%d", i)] = facts.Node{}
			}
			g := New(Options{Config: must(t, tt.cfg), Now: clk.now, Store: &memStore{}, Facts: facts.Static{Nodes: nodes}})
			for i, s := range tt.steps {
				clk.add(s.after)
				s.c.Cluster = facts.Cluster{Nodes: 10, Cordoned: tt.cordoned}
				v := g.Check(context.Background(), s.c)
				if v.Outcome != s.outcome || v.Reason != s.reason || v.Message != s.message {
					t.Errorf("step %d: got %s %s %q, want %s %s %q", i, v.Outcome, v.Reason, v.Message, s.outcome, s.reason, s.message)
				}
			}
		})
	}
}

func TestRepeatedCheckOfOneActionConsumesOnce(t *testing.T) {
	g := New(Options{Config: must(t, "rate_limits: [{action: a, rate: 1, every: 1h}]"), Now: newClock().now})
	c := cand("a", "n1")
	c.ActionID = "id1"
	for i := range 3 {
		if v := g.Check(context.Background(), c); v.Outcome != Allow {
			t.Fatalf("check %d of the same action: %+v", i, v)
		}
	}
	c.ActionID = "id2"
	if v := g.Check(context.Background(), c); v.Reason != ReasonRateLimit {
		t.Fatalf("another action: %+v", v)
	}
}

func TestResolvedSignalsNeitherCountNorWait(t *testing.T) {
	g := New(Options{Config: must(t, "storm: {nodes: 1, window: 1h}\nhysteresis: {count: 2, window: 1h}"), Now: newClock().now})
	for _, n := range []string{"a", "b", "c"} {
		c := cand("node.uncordon", n)
		c.Resolved = true
		if v := g.Check(context.Background(), c); v.Outcome != Allow {
			t.Fatalf("resolved %s: %+v", n, v)
		}
	}
	if s := g.State(); len(s.Tripped) != 0 {
		t.Errorf("resolved signals tripped the breaker: %+v", s)
	}
}

// The memo of verdicts stays bounded and cheap in a storm: expired entries go in sweeps
// spread over many checks, and past memoMax the oldest half is forgotten.
func TestMemoStaysBounded(t *testing.T) {
	clk := newClock()
	g := New(Options{Config: must(t, ""), Now: clk.now})
	check := func(i int) {
		c := cand("a", fmt.Sprintf("n%d", i%50))
		c.ActionID = fmt.Sprintf("id%d", i)
		g.Check(context.Background(), c)
	}
	for i := range memoMax + 10 {
		check(i)
		if i%1000 == 0 {
			clk.add(time.Millisecond)
		}
	}
	if n := len(g.memo); n >= memoMax || n < memoMax/2-1000 {
		t.Fatalf("memo holds %d verdicts after %d checks, want between %d and %d", n, memoMax+10, memoMax/2, memoMax)
	}
	// The newest verdict is still answered from the memo.
	if _, ok := g.memo[memoKey{id: fmt.Sprintf("id%d", memoMax+9)}]; !ok {
		t.Fatal("the newest verdict was forgotten")
	}
	clk.add(memoTTL + time.Second)
	fresh := g.memoSweepAt - len(g.memo) + 1 // enough new checks to reach the next sweep
	for i := range fresh {
		check(memoMax + 10 + i)
	}
	if n := len(g.memo); n != fresh {
		t.Fatalf("memo holds %d verdicts an hour later, want only the %d new ones", n, fresh)
	}
}
