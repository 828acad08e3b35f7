// Package guard holds the engine's guards: the limits no policy can override. Before a
// planned action is recorded, the engine asks Check; the verdict lets it run, turns it
// into a dry run, holds it for a human, or refuses it with a reason that is audited and
// counted. The guards are configured in one file (Config): global and per-action dry
// run, token-bucket rate limits per action and per node, a blast radius over cordoned
// nodes (counting nodes cordoned by anyone and remedy's own in-flight actions), a storm
// breaker per kind, cooldown and hysteresis, the kill switch, and override awareness
// (maintenance labels, nodes a person cordoned).
//
// The kill switch and tripped breakers are persisted as audit events (engine.paused,
// engine.resumed), so the audit log is their source of truth across restarts.
package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/policy"
)

// Candidate is one planned action as the guards see it.
type Candidate struct {
	ActionID string
	Action   string
	Node     string
	Kind     string
	// SignalKey identifies the firing that asked for the action (hysteresis counts
	// distinct firings).
	SignalKey string
	// Resolved is set when a resolved signal asked for the action (an uncordon): it
	// neither counts as a firing for the storm breaker and hysteresis nor waits for one.
	Resolved         bool
	Risk             policy.Risk
	RequiresApproval bool
	// Approved is set when a human approved the action: it is re-checked, but not held
	// again.
	Approved  bool
	NodeFacts facts.Node
	Cluster   facts.Cluster
}

// Outcome is what the engine does with a candidate.
type Outcome string

// Outcomes.
const (
	Allow  Outcome = "allow"
	DryRun Outcome = "dry_run"
	Hold   Outcome = "hold"
	Refuse Outcome = "refuse"
)

// Reason says why a guard did not simply allow an action. It is the audit Outcome of a
// guard.refused event and the label of the refusals metric.
type Reason string

// Reasons.
const (
	ReasonPaused         Reason = "paused"
	ReasonStorm          Reason = "storm"
	ReasonMaintenance    Reason = "maintenance"
	ReasonPersonCordoned Reason = "cordoned_by_person"
	ReasonHysteresis     Reason = "hysteresis"
	ReasonCooldown       Reason = "cooldown"
	ReasonBlastRadius    Reason = "blast_radius"
	ReasonRateLimit      Reason = "rate_limit"
	ReasonDryRun         Reason = "dry_run"
	ReasonApproval       Reason = "approval_required"
	ReasonRisk           Reason = "risk"
)

func (r Reason) known() bool {
	switch r {
	case ReasonPaused, ReasonStorm, ReasonMaintenance, ReasonPersonCordoned, ReasonHysteresis,
		ReasonCooldown, ReasonBlastRadius, ReasonRateLimit:
		return true
	}
	return false
}

// Verdict is the guards' answer. Blast carries the blast-radius picture at the time, for
// the audit log and for an approver.
type Verdict struct {
	Outcome Outcome       `json:"outcome"`
	Reason  Reason        `json:"reason,omitempty"`
	Message string        `json:"message,omitempty"`
	Blast   []BlastStatus `json:"blast,omitempty"`
}

// BlastStatus is one blast-radius rule's count at the time of a check.
type BlastStatus struct {
	Rule  string `json:"rule"`
	Group string `json:"group,omitempty"`
	Out   int    `json:"out"`
	Total int    `json:"total,omitempty"`
	Limit int    `json:"limit"`
}

// Checker is the guards' one method.
type Checker interface {
	Check(ctx context.Context, c Candidate) Verdict
}

// NodeLister is implemented by facts providers that can list nodes: it gives blast
// radius the group sizes for percent limits and per-selector counts.
type NodeLister interface {
	List(ctx context.Context) ([]facts.Node, error)
}

// Recorder is the part of the audit store the guards need.
type Recorder interface {
	Append(ctx context.Context, events ...audit.Event) ([]bool, error)
	Query(ctx context.Context, f audit.Filter) ([]audit.Event, error)
}

// Options build Guards.
type Options struct {
	Config     Config
	Store      Recorder
	Facts      facts.Provider
	Now        func() time.Time
	Registerer prometheus.Registerer
}

// Guards implements Checker and the kill switch.
type Guards struct {
	cfg   Config
	store Recorder
	facts facts.Provider
	now   func() time.Time

	mu       sync.Mutex
	paused   bool
	tripped  map[string]bool                 // kind -> breaker open
	firing   map[string]map[string]time.Time // kind -> node -> last firing
	seen     map[string][]sighting           // node/kind -> firings
	last     map[string]time.Time            // node/action -> last allowed
	buckets  map[string]*bucket
	inflight map[string]outNode // node -> remedy's own in-flight take-out
	// memo answers a repeated check of one action (a signal decided twice: a duplicate
	// delivery, the sweep) with the first verdict, so nothing is consumed twice.
	memo        map[memoKey]memoEntry
	memoSweepAt int

	refusals *prometheus.CounterVec
	breaker  *prometheus.GaugeVec
	pausedG  prometheus.Gauge
}

type memoKey struct {
	id       string
	approved bool
}

type memoEntry struct {
	v  Verdict
	at time.Time
}

// InflightTTL is how long remedy counts its own take-out of a node that the facts never
// showed out.
const InflightTTL = time.Hour

// memoTTL bounds how long a verdict is remembered.
const memoTTL = time.Hour

// The memo is swept of expired entries when it reaches memoSweepAt entries, which then
// doubles from what is left (at least memoMin): a sweep's cost is spread over the checks
// that filled the memo, not paid on every check of a storm. Past memoMax live entries
// the oldest half is forgotten (a re-check of one of them is judged again).
const (
	memoMin = 4096
	memoMax = 1 << 17
)

func (g *Guards) sweepMemo(now time.Time) {
	for k, e := range g.memo {
		if now.Sub(e.at) >= memoTTL {
			delete(g.memo, k)
		}
	}
	if len(g.memo) >= memoMax {
		ats := make([]time.Time, 0, len(g.memo))
		for _, e := range g.memo {
			ats = append(ats, e.at)
		}
		slices.SortFunc(ats, func(a, b time.Time) int { return a.Compare(b) })
		cut := ats[len(ats)/2]
		for k, e := range g.memo {
			if e.at.Before(cut) {
				delete(g.memo, k)
			}
		}
	}
	g.memoSweepAt = max(memoMin, 2*len(g.memo))
}

type sighting struct {
	key string
	at  time.Time
}

type outNode struct {
	labels map[string]string
	since  time.Time
	// seenOut is set once the facts showed the node unschedulable; a later schedulable
	// fact means someone put it back.
	seenOut bool
}

// New builds guards from a validated config.
func New(o Options) *Guards {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Facts == nil {
		o.Facts = facts.Static{}
	}
	g := &Guards{cfg: o.Config, store: o.Store, facts: o.Facts, now: o.Now,
		tripped: map[string]bool{}, firing: map[string]map[string]time.Time{}, seen: map[string][]sighting{},
		last: map[string]time.Time{}, buckets: map[string]*bucket{}, inflight: map[string]outNode{}, memo: map[memoKey]memoEntry{}, memoSweepAt: memoMin,
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remedy_guard_refusals_total", Help: "Actions the guards refused, held or made dry runs, by reason.",
		}, []string{"reason"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remedy_guard_breaker_open", Help: "1 while the storm breaker of a kind is open.",
		}, []string{"kind"}),
		pausedG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remedy_paused", Help: "1 while the kill switch stops all dispatch.",
		}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(g.refusals, g.breaker, g.pausedG)
	}
	return g
}

// Config returns the guards' configuration.
func (g *Guards) Config() Config { return g.cfg }

// Check runs every guard in order; the first that does not allow decides. Nothing is
// consumed (rate tokens, cooldown, blast radius) unless the verdict is Allow. A second
// check of the same action (same ActionID) returns the first verdict, unless that was a
// pause.
func (g *Guards) Check(ctx context.Context, c Candidate) Verdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	mk := memoKey{id: c.ActionID, approved: c.Approved}
	if e, ok := g.memo[mk]; ok && c.ActionID != "" && now.Sub(e.at) < memoTTL {
		return e.v
	}
	v := g.check(ctx, c, now)
	if v.Outcome == Refuse && slices.Contains(g.cfg.Approval.HoldOnRefusal, v.Reason) && !c.Approved {
		v.Outcome = Hold
	}
	if v.Outcome == Allow {
		v = g.approval(c, v)
	}
	if v.Outcome == Allow { // a dry run changes nothing: it takes no token and no slot
		g.commit(c, now)
	}
	if v.Reason != "" {
		g.refusals.WithLabelValues(string(v.Reason)).Inc()
	}
	// A pause (the kill switch, an open breaker) is not remembered: the engine asks again
	// after resume and must get a fresh answer.
	if c.ActionID != "" && v.Reason != ReasonPaused && v.Reason != ReasonStorm {
		if len(g.memo) >= g.memoSweepAt {
			g.sweepMemo(now)
		}
		g.memo[mk] = memoEntry{v: v, at: now}
	}
	return v
}

func (g *Guards) check(ctx context.Context, c Candidate, now time.Time) Verdict {
	refuse := func(r Reason, format string, a ...any) Verdict {
		return Verdict{Outcome: Refuse, Reason: r, Message: fmt.Sprintf(format, a...)}
	}
	if g.paused {
		return refuse(ReasonPaused, "remedy is paused")
	}
	g.observe(c, now)
	if g.tripped[c.Kind] {
		return refuse(ReasonStorm, "storm breaker open for kind %s: resume it to act again", c.Kind)
	}
	if k, ok := g.maintenance(c.NodeFacts); ok {
		return refuse(ReasonMaintenance, "node %s is under maintenance (%s)", c.Node, k)
	}
	if slices.Contains(g.cfg.UncordonActions, c.Action) && c.NodeFacts.Unschedulable && c.NodeFacts.CordonedBy != "remedy" {
		return refuse(ReasonPersonCordoned, "node %s was cordoned by someone else, not remedy", c.Node)
	}
	if h := g.cfg.Hysteresis; h != nil && !c.Approved && !c.Resolved {
		if n := g.firings(c, now); n < h.Count {
			return refuse(ReasonHysteresis, "%s on %s fired %d of %d times within %s", c.Kind, c.Node, n, h.Count, h.Window)
		}
	}
	if cd := g.cooldown(c.Action); cd > 0 {
		if t, ok := g.last[c.Node+"/"+c.Action]; ok && now.Sub(t) < cd {
			return refuse(ReasonCooldown, "%s ran on %s %s ago; cooldown is %s", c.Action, c.Node, now.Sub(t).Round(time.Second), cd)
		}
	}
	if g.dryRun(c.Action) {
		return Verdict{Outcome: DryRun, Reason: ReasonDryRun, Message: "dry run by guards config"}
	}
	blast, v := g.blast(ctx, c)
	if v.Outcome != "" {
		v.Blast = blast
		return v
	}
	for _, k := range g.bucketKeys(c) {
		if !g.bucket(k, now).available(now) {
			v := refuse(ReasonRateLimit, "rate limit %s exhausted", k.name)
			v.Blast = blast
			return v
		}
	}
	return Verdict{Outcome: Allow, Blast: blast}
}

// approval holds risky decisions for a human.
func (g *Guards) approval(c Candidate, v Verdict) Verdict {
	if c.Approved {
		return v
	}
	if c.RequiresApproval {
		v.Outcome, v.Reason, v.Message = Hold, ReasonApproval, "the policy asks for approval"
		return v
	}
	if AtLeast(c.Risk, policy.Risk(g.cfg.Approval.MinRisk)) {
		v.Outcome, v.Reason, v.Message = Hold, ReasonRisk, fmt.Sprintf("risk %s is at or above %s", c.Risk, g.cfg.Approval.MinRisk)
	}
	return v
}

// AtLeast reports whether risk r is at or above tier min ("none" is above everything).
func AtLeast(r, minTier policy.Risk) bool {
	rank := map[policy.Risk]int{"": 0, policy.RiskLow: 0, policy.RiskHigh: 1, policy.RiskCritical: 2, "none": 3}
	return rank[r] >= rank[minTier]
}

func (g *Guards) commit(c Candidate, now time.Time) {
	g.last[c.Node+"/"+c.Action] = now
	for _, k := range g.bucketKeys(c) {
		g.bucket(k, now).take(now)
	}
	if g.takesOut(c.Action) && !c.NodeFacts.Unschedulable {
		g.inflight[c.Node] = outNode{labels: c.NodeFacts.Labels, since: now}
	}
	if slices.Contains(g.cfg.UncordonActions, c.Action) {
		// remedy puts the node back: its blast-radius slot is free at once, not when the
		// facts have caught up (or after InflightTTL, when they never showed it out).
		delete(g.inflight, c.Node)
	}
}

// observe records a firing for the storm breaker and hysteresis, and trips the breaker.
func (g *Guards) observe(c Candidate, now time.Time) {
	if c.Kind == "" || c.Resolved {
		return
	}
	k := c.Node + "/" + c.Kind
	if !slices.ContainsFunc(g.seen[k], func(s sighting) bool { return s.key == c.SignalKey }) {
		g.seen[k] = append(g.seen[k], sighting{key: c.SignalKey, at: now})
	}
	s := g.cfg.Storm
	if s == nil || g.tripped[c.Kind] {
		return
	}
	nodes := g.firing[c.Kind]
	if nodes == nil {
		nodes = map[string]time.Time{}
		g.firing[c.Kind] = nodes
	}
	nodes[c.Node] = now
	for n, t := range nodes {
		if now.Sub(t) > s.Window {
			delete(nodes, n)
		}
	}
	if len(nodes) > s.Nodes {
		g.tripped[c.Kind] = true
		g.breaker.WithLabelValues(c.Kind).Set(1)
		g.record(context.Background(), audit.Paused, audit.ActorEngine, "storm breaker",
			Scope{Kind: c.Kind, Nodes: len(nodes), Window: s.Window.String()})
	}
}

func (g *Guards) firings(c Candidate, now time.Time) int {
	k := c.Node + "/" + c.Kind
	kept := g.seen[k][:0]
	for _, s := range g.seen[k] {
		if now.Sub(s.at) <= g.cfg.Hysteresis.Window {
			kept = append(kept, s)
		}
	}
	g.seen[k] = kept
	return len(kept)
}

func (g *Guards) maintenance(n facts.Node) (string, bool) {
	for _, k := range g.cfg.Maintenance.Labels {
		if v, ok := n.Labels[k]; ok && v != "false" {
			return "label " + k, true
		}
	}
	for _, k := range g.cfg.Maintenance.Annotations {
		if v, ok := n.Annotations[k]; ok && v != "false" {
			return "annotation " + k, true
		}
	}
	return "", false
}

func (g *Guards) cooldown(action string) time.Duration {
	if d, ok := g.cfg.Cooldown.PerAction[action]; ok {
		return d
	}
	return g.cfg.Cooldown.Default
}

func (g *Guards) dryRun(action string) bool {
	return g.cfg.DryRun || slices.Contains(g.cfg.DryRunActions, action)
}

func (g *Guards) takesOut(action string) bool {
	for _, b := range g.cfg.BlastRadius {
		if slices.Contains(b.Actions, action) {
			return true
		}
	}
	return false
}

// blast counts, per rule and group, the nodes that are out now (facts: cordoned by
// anyone; plus remedy's in-flight actions the facts do not show yet) and refuses when
// taking this node out would exceed a limit.
func (g *Guards) blast(ctx context.Context, c Candidate) ([]BlastStatus, Verdict) {
	var rules []BlastRadius
	for _, b := range g.cfg.BlastRadius {
		if slices.Contains(b.Actions, c.Action) {
			rules = append(rules, b)
		}
	}
	if len(rules) == 0 {
		return nil, Verdict{}
	}
	nodes, listed := g.list(ctx)
	g.settle(ctx, g.now())
	cluster := c.Cluster
	if !listed {
		// The candidate's picture was taken when its input was built, before other
		// decisions' cordons showed up; settle (just now) stops counting those as
		// in flight once the facts show them, so the count must come from the facts
		// of now, read after settle, or a cordon is counted nowhere.
		// The larger of the two counts is kept: neither undercounts what it saw.
		if cl, err := g.facts.Cluster(ctx); err == nil {
			cluster = newer(c.Cluster, cl)
		}
	}
	var out []BlastStatus
	var refusal Verdict
	for _, r := range rules {
		if len(r.Selector) > 0 && !matches(c.NodeFacts.Labels, r.Selector) {
			continue
		}
		group := ""
		if r.GroupBy != "" {
			group = c.NodeFacts.Labels[r.GroupBy]
		}
		in := func(labels map[string]string) bool {
			if !matches(labels, r.Selector) {
				return false
			}
			return r.GroupBy == "" || labels[r.GroupBy] == group
		}
		st := BlastStatus{Rule: r.Name, Group: group}
		counted := map[string]bool{}
		if listed {
			for _, n := range nodes {
				if !in(n.Labels) {
					continue
				}
				st.Total++
				if n.Unschedulable {
					st.Out++
					counted[n.Name] = true
				}
			}
		} else {
			st.Total = cluster.Nodes
			switch {
			case r.GroupBy != "":
				st.Out = cluster.CordonedBy[r.GroupBy][group]
			case len(r.Selector) == 0:
				st.Out = cluster.Cordoned
			}
		}
		for name, o := range g.inflight {
			// Without a node list, a node the facts already show cordoned is in their count.
			if counted[name] || !in(o.labels) || (!listed && o.seenOut) {
				continue
			}
			st.Out++
			counted[name] = true
		}
		st.Limit = limit(r, st.Total)
		out = append(out, st)
		// The node itself may be counted already (remedy's earlier cordon, not visible
		// yet, or gone): it counts once.
		others := st.Out
		if counted[c.Node] {
			others--
		}
		if !c.NodeFacts.Unschedulable && others+1 > st.Limit && refusal.Outcome == "" {
			where := "cluster"
			if group != "" {
				where = r.GroupBy + "=" + group
			}
			refusal = Verdict{Outcome: Refuse, Reason: ReasonBlastRadius,
				Message: fmt.Sprintf("%s: %d of %d nodes already out in %s, limit %d", r.Name, others, st.Total, where, st.Limit)}
		}
	}
	return out, refusal
}

// newer merges two pictures of the cluster, each count the larger of the two.
func newer(a, b facts.Cluster) facts.Cluster {
	out := facts.Cluster{Nodes: max(a.Nodes, b.Nodes), Cordoned: max(a.Cordoned, b.Cordoned), CordonedBy: map[string]map[string]int{}}
	for _, by := range []map[string]map[string]int{a.CordonedBy, b.CordonedBy} {
		for label, counts := range by {
			if out.CordonedBy[label] == nil {
				out.CordonedBy[label] = map[string]int{}
			}
			for v, n := range counts {
				out.CordonedBy[label][v] = max(out.CordonedBy[label][v], n)
			}
		}
	}
	return out
}

func limit(r BlastRadius, total int) int {
	l := math.MaxInt
	if r.MaxNodes > 0 {
		l = r.MaxNodes
	}
	if r.MaxPercent > 0 && total > 0 {
		l = min(l, int(math.Floor(r.MaxPercent*float64(total)/100)))
	}
	return l
}

func (g *Guards) list(ctx context.Context) ([]facts.Node, bool) {
	l, ok := g.facts.(NodeLister)
	if !ok {
		return nil, false
	}
	nodes, err := l.List(ctx)
	if err != nil {
		return nil, false
	}
	return nodes, true
}

// settle drops in-flight entries the facts have caught up with: a node shown cordoned
// and later schedulable again was put back by someone. An entry the facts never showed
// out is dropped after InflightTTL (the action failed, or someone undid it at once).
func (g *Guards) settle(ctx context.Context, now time.Time) {
	for name, o := range g.inflight {
		if !o.seenOut && now.Sub(o.since) > InflightTTL {
			delete(g.inflight, name)
			continue
		}
		n, err := g.facts.Node(ctx, name)
		if err != nil || !n.Known {
			continue
		}
		switch {
		case n.Unschedulable:
			o.seenOut = true
			g.inflight[name] = o
		case o.seenOut:
			delete(g.inflight, name)
		}
	}
}

// Release forgets remedy's own in-flight take-out of a node (the action failed or was
// refused by the executor).
func (g *Guards) Release(node string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.inflight, node)
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Scope is the Detail of engine.paused and engine.resumed events: the whole engine
// (Kind empty) or one kind's storm breaker.
type Scope struct {
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason,omitempty"`
	Nodes  int    `json:"nodes,omitempty"`
	Window string `json:"window,omitempty"`
}

func (g *Guards) record(ctx context.Context, t audit.Type, actor, reason string, s Scope) error {
	if g.store == nil {
		return nil
	}
	s.Reason = reason
	d, _ := json.Marshal(s)
	ev := audit.Event{Type: t, Actor: actor, Kind: s.Kind, Outcome: string(t), Detail: d, Time: g.now().UTC()}
	if _, err := g.store.Append(ctx, ev); err != nil {
		return fmt.Errorf("record %s: %w", t, err)
	}
	return nil
}

// Pause stops all dispatch until Resume; it is audited with who and why.
func (g *Guards) Pause(ctx context.Context, actor, reason string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.record(ctx, audit.Paused, actor, reason, Scope{}); err != nil {
		return err
	}
	g.paused = true
	g.pausedG.Set(1)
	return nil
}

// Resume lifts the kill switch (kind empty) or closes one kind's storm breaker.
func (g *Guards) Resume(ctx context.Context, actor, kind, reason string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.record(ctx, audit.Resumed, actor, reason, Scope{Kind: kind}); err != nil {
		return err
	}
	if kind == "" {
		g.paused = false
		g.pausedG.Set(0)
		return nil
	}
	delete(g.tripped, kind)
	delete(g.firing, kind)
	g.breaker.WithLabelValues(kind).Set(0)
	return nil
}

// Paused reports whether the kill switch is on.
func (g *Guards) Paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// State is the kill switch and the open breakers.
type State struct {
	Paused  bool     `json:"paused"`
	Tripped []string `json:"tripped"`
}

// State returns the kill switch and breaker state.
func (g *Guards) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := State{Paused: g.paused, Tripped: []string{}}
	for k := range g.tripped {
		s.Tripped = append(s.Tripped, k)
	}
	sort.Strings(s.Tripped)
	return s
}

// Restore rebuilds the kill switch and the open breakers from the audit log: the latest
// paused/resumed event of each scope wins.
func (g *Guards) Restore(ctx context.Context) error {
	if g.store == nil {
		return nil
	}
	var evs []audit.Event
	for _, t := range []audit.Type{audit.Paused, audit.Resumed} {
		e, err := g.store.Query(ctx, audit.Filter{Type: t, Limit: 10000})
		if err != nil {
			return fmt.Errorf("restore guards: %w", err)
		}
		evs = append(evs, e...)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ev := range evs {
		var s Scope
		_ = json.Unmarshal(ev.Detail, &s)
		on := ev.Type == audit.Paused
		if s.Kind == "" {
			g.paused = on
		} else if on {
			g.tripped[s.Kind] = true
		} else {
			delete(g.tripped, s.Kind)
		}
	}
	g.pausedG.Set(b2f(g.paused))
	for k := range g.tripped {
		g.breaker.WithLabelValues(k).Set(1)
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type bucketKey struct {
	name string
	rule RateLimit
}

func (g *Guards) bucketKeys(c Candidate) []bucketKey {
	var out []bucketKey
	for i, r := range g.cfg.RateLimits {
		if r.Action != "*" && r.Action != c.Action {
			continue
		}
		name := fmt.Sprintf("rate_limits[%d] %s per action", i, r.Action)
		if r.Per == "node" {
			name = fmt.Sprintf("rate_limits[%d] %s on node %s", i, r.Action, c.Node)
		}
		if r.Action == "*" && r.Per == "action" {
			name = strings.Replace(name, "* per action", "* for "+c.Action, 1)
		}
		out = append(out, bucketKey{name: name, rule: r})
	}
	return out
}

func (g *Guards) bucket(k bucketKey, now time.Time) *bucket {
	b, ok := g.buckets[k.name]
	if !ok {
		b = &bucket{tokens: float64(k.rule.Burst), cap: float64(k.rule.Burst),
			perSec: float64(k.rule.Rate) / k.rule.Every.Seconds(), at: now}
		g.buckets[k.name] = b
	}
	return b
}

// bucket is a token bucket on an injected clock.
type bucket struct {
	tokens, cap, perSec float64
	at                  time.Time
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = math.Min(b.cap, b.tokens+now.Sub(b.at).Seconds()*b.perSec)
		b.at = now
	}
}

func (b *bucket) available(now time.Time) bool {
	b.refill(now)
	return b.tokens >= 1
}

func (b *bucket) take(now time.Time) {
	b.refill(now)
	b.tokens--
}
