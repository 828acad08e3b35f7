package incident_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/incident"
)

// 400 incidents (2,300 events) in a real SQLite log: the list pages through every
// incident once, each filter finds what the log's shape says, and the figures count it.
func TestListFiltersAndFigures(t *testing.T) {
	st := openSQLite(t)
	n, end := fill(t, st, 2300)
	if n != 400 {
		t.Fatalf("%d incidents", n)
	}
	ctx := context.Background()
	seen := map[string]int{}
	f := incident.ListFilter{Limit: 37}
	for pages := 0; ; pages++ {
		p, err := incident.List(ctx, st, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Incidents {
			seen[s.ID]++
		}
		if p.Next == "" || pages > 100 {
			break
		}
		f.Cursor = p.Next
	}
	if len(seen) != 400 {
		t.Errorf("paging listed %d distinct incidents, want 400", len(seen))
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s listed %d times", id, c)
		}
	}
	for _, c := range []struct {
		name string
		f    incident.ListFilter
		want int
	}{
		{"node", incident.ListFilter{Node: "node-0007"}, 1},
		{"kind", incident.ListFilter{Kind: "psi", Limit: 1000}, 100},
		{"fixed", incident.ListFilter{Outcome: incident.Fixed, Limit: 1000}, 200},
		{"not fixed", incident.ListFilter{Outcome: incident.NotFixed, Limit: 1000}, 100},
		{"refused", incident.ListFilter{Outcome: incident.Refused, Limit: 1000}, 100},
		{"kind and outcome", incident.ListFilter{Kind: "psi", Outcome: incident.NotFixed, Limit: 1000}, 25},
		{"open", incident.ListFilter{Outcome: incident.Verifying, Limit: 1000}, 0},
		{"time", incident.ListFilter{Since: t0, Until: t0.Add(230 * time.Millisecond), Limit: 1000}, 40},
	} {
		p, err := incident.List(ctx, st, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Incidents) != c.want {
			t.Errorf("%s: %d incidents, want %d", c.name, len(p.Incidents), c.want)
		}
		for _, s := range p.Incidents {
			if c.f.Outcome != "" && s.Outcome != c.f.Outcome || c.f.Kind != "" && s.Kind != c.f.Kind {
				t.Errorf("%s: listed %+v", c.name, s)
			}
		}
	}
	if _, err := incident.List(ctx, st, incident.ListFilter{Outcome: "great"}); err == nil || !strings.Contains(err.Error(), `outcome "great": want one of`) {
		t.Errorf("unknown outcome: %v", err)
	}

	rep, err := incident.Effectiveness(ctx, st, t0, end)
	if err != nil {
		t.Fatal(err)
	}
	tot := rep.Total
	if tot.Tried != 300 || tot.Succeeded != 300 || tot.Fixed != 200 || tot.NotFixed != 100 || tot.Failed != 0 || tot.RolledBack != 0 {
		t.Errorf("total %+v", tot)
	}
	// Pairs interleave: each fixed incident's resolved signal is 10 ms after its first.
	if tot.FixP50 != 0.01 || tot.FixP90 != 0.01 {
		t.Errorf("fix p50 %v p90 %v, want 10ms", tot.FixP50, tot.FixP90)
	}
	if len(rep.ByKind) != 4 || rep.ByKind[0].Tried != 75 || len(rep.ByAction) != 1 || rep.ByAction[0].Name != "sysctl.set" {
		t.Errorf("rows %+v %+v", rep.ByKind, rep.ByAction)
	}
	sum := 0
	for _, b := range rep.Buckets {
		sum += b.Tried
	}
	if sum != 300 {
		t.Errorf("buckets hold %d attempts, want 300", sum)
	}
	if _, err := incident.Effectiveness(ctx, st, end, t0); !errors.Is(err, incident.ErrRange) {
		t.Errorf("reversed range: %v", err)
	}

	inc, ok, err := incident.Get(ctx, st, "inc-0000000")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var stages []string
	for _, s := range inc.Steps {
		stages = append(stages, s.Stage)
	}
	if got := strings.Join(stages, " "); got != "signal decision guard dispatch result signal verification" || inc.Outcome != incident.Fixed {
		t.Errorf("timeline %s, outcome %s", got, inc.Outcome)
	}
}

// The page answers each kind of visitor and bad input plainly.
func TestHandler(t *testing.T) {
	st := openSQLite(t)
	_, end := fill(t, st, 100)
	who := incident.Viewer{Name: "carol", Role: "viewer"}
	var authErr error
	h := incident.Handler(incident.Options{Store: st, Reader: st, Now: func() time.Time { return end },
		State: func() guard.State { return guard.State{Paused: true, Tripped: []string{"psi"}} },
		Pending: func(context.Context) ([]incident.Pending, error) {
			return []incident.Pending{{ID: "act-9", Action: "node.cordon", Node: "node-0009", CorrelationID: "inc-0000009",
				RequestedAt: end, ExpiresAt: end.Add(time.Hour), Votes: 1, Need: 2}}, nil
		},
		Auth: incident.AuthFuncs{ViewerFunc: func(*http.Request) (incident.Viewer, error) { return who, authErr },
			CSRFFunc: func(*http.Request) string { return "csrf-123" }}})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		return rec.Code, string(b)
	}
	for _, c := range []struct {
		path string
		err  error
		code int
		want []string
	}{
		{"/incidents", incident.ErrNotLoggedIn, 200, []string{`action="/approvals/login"`, `name="csrf" value="csrf-123"`, `name="next" value="/incidents"`}},
		{"/incidents", incident.ErrNotAllowed, 403, []string{"not allowed to view incidents"}},
		{"/incidents", nil, 200, []string{"kill switch: PAUSED", "breaker open: psi", "inc-0000013", "carol",
			"1 pending approval<", "Waiting for approval", "node.cordon", `href="/incidents/inc-0000009"`, "1 of 2"}},
		{"/incidents?since=yesterday", nil, 400, []string{`since: &#34;yesterday&#34; is neither a duration`}},
		{"/incidents?outcome=fixed", nil, 200, []string{"inc-0000000", "o-fixed"}},
		{"/incidents/inc-0000002", nil, 200, []string{"not_fixed", "the signal did not resolve"}},
		{"/incidents/nope", nil, 404, []string{"no incident nope in the audit log"}},
		{"/incidents/effectiveness?since=2026-11-01T00:00:00Z&until=2026-11-01T00:01:00Z", nil, 200, []string{`<svg id="chart"`, `class="fixed" data-count="`}},
		{"/incidents/effectiveness?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", nil, 400, []string{"since must be before until"}},
	} {
		authErr = c.err
		code, body := get(c.path)
		if code != c.code {
			t.Errorf("%s (%v): %d, want %d", c.path, c.err, code, c.code)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s (%v): body lacks %q", c.path, c.err, w)
			}
		}
		if strings.Contains(body, "<script") {
			t.Errorf("%s: the page has a script", c.path)
		}
	}
}
