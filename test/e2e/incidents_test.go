package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard/verify"
	"github.com/remedyhq/remedy/engine/incident"
	"github.com/remedyhq/remedy/engine/report"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/test/testenv"
)

const viewerToken = "carol-token-0123456789"

// TestIncidentsPageInABrowser runs two real incidents through the whole engine (a real
// Alertmanager, the embedded NATS, two agents whose sysctl executor really writes a
// host root's /proc/sys, the verifier): on node-a the alert resolves after the action
// (fixed), on node-b it does not (not fixed, escalated, tried again, not fixed). Headless
// Chromium then logs in, reads the list and both timelines, the effectiveness table and
// chart, and saves the screenshots in docs/; `remedy report` (engine/report) prints the
// same figures for the same range.
func TestIncidentsPageInABrowser(t *testing.T) {
	testenv.Heavy(t)
	bin := testenv.LookPath(t, "chromium", "hack/deps.d/50-browser.sh")
	began := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a, err := app.Start(ctx, app.Options{
		DataDir: filepath.Join(dir, "engine"), PolicyDir: "testdata/policies", Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", SweepInterval: 200 * time.Millisecond,
		GuardsFile: "testdata/incidents/guards.yaml", ApproversFile: "testdata/incidents/approvers.yaml",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	nodes := []string{"node-a", "node-b"}
	actx, stopAgents := context.WithCancel(ctx)
	done := make(chan struct{}, len(nodes))
	defer func() {
		stopAgents()
		for range nodes {
			<-done
		}
	}()
	for _, n := range nodes {
		root := filepath.Join(dir, "host-"+n)
		if err := os.MkdirAll(filepath.Join(root, "proc/sys/net/core"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "proc/sys/net/core/netdev_max_backlog"), []byte("1000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: root})...); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			if err := agent.Run(actx, agent.Options{Node: n, NATSURL: a.NATSURL(), StateDir: filepath.Join(dir, "agent-"+n), Registry: reg}); err != nil {
				t.Error(err)
			}
		}()
	}
	am := testenv.StartAlertmanager(t, a.URL()+"/webhooks/alertmanager")
	alert := func(node string) testenv.Alert {
		return testenv.Alert{
			Labels:      map[string]string{"alertname": "NodePacketDrops", "node": node, "device": "eth0", "cause": "backlog"},
			Annotations: map[string]string{"summary": "backlog drops on " + node},
			StartsAt:    time.Now().Add(-10 * time.Second).UTC().Truncate(time.Second),
		}
	}
	alertA, alertB := alert("node-a"), alert("node-b")
	if err := am.Push(ctx, alertA, alertB); err != nil {
		t.Fatal(err)
	}
	query := func(f audit.Filter) []audit.Event {
		t.Helper()
		f.Limit = 10000
		evs, err := a.Store.Query(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	result := func(node string) *audit.Event {
		evs := query(audit.Filter{Node: node, Type: audit.ActionResult, Ascending: true})
		if len(evs) == 0 {
			return nil
		}
		return &evs[0]
	}
	testenv.Eventually(t, 30*time.Second, "both actions' results", func() bool { return result("node-a") != nil && result("node-b") != nil })
	resA, resB := *result("node-a"), *result("node-b")
	if resA.Outcome != string(executors.Succeeded) || resB.Outcome != string(executors.Succeeded) {
		t.Fatalf("results: %s, %s; want succeeded", resA.Outcome, resB.Outcome)
	}
	// node-a's drops stop: Alertmanager sends the resolved alert; node-b's do not.
	alertA.EndsAt = time.Now().UTC()
	if err := am.Push(ctx, alertA); err != nil {
		t.Fatal(err)
	}
	ir := a.Store.(audit.IncidentReader)
	testenv.Eventually(t, 90*time.Second, "every incident settled (fixed, not fixed, escalated and not fixed)", func() bool {
		p, err := incident.List(ctx, ir, incident.ListFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Incidents) < 3 {
			return false
		}
		for _, s := range p.Incidents {
			if s.Open {
				return false
			}
		}
		return true
	})
	until := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	since, untilS := began.Format(time.RFC3339), until.Format(time.RFC3339)

	// What the page must show, read straight from the log.
	verdicts := func(corr string) []string {
		var out []string
		for _, e := range query(audit.Filter{CorrelationID: corr, Type: audit.Verification, Ascending: true}) {
			out = append(out, e.Outcome)
		}
		return out
	}
	if v := verdicts(resA.CorrelationID); !slices.Equal(v, []string{verify.Fixed}) {
		t.Fatalf("node-a verifications %v, want [fixed]", v)
	}
	if v := verdicts(resB.CorrelationID); !slices.Equal(v, []string{verify.NotFixed}) {
		t.Fatalf("node-b verifications %v, want [not_fixed]", v)
	}
	var vd verify.Detail
	vB := query(audit.Filter{CorrelationID: resB.CorrelationID, Type: audit.Verification})[0]
	if err := json.Unmarshal(vB.Detail, &vd); err != nil || vd.Escalated == "" {
		t.Fatalf("node-b's verification was not escalated: %s", vB.Detail)
	}
	sigA := query(audit.Filter{CorrelationID: resA.CorrelationID, Type: audit.SignalReceived, Ascending: true})
	if len(sigA) != 2 || sigA[1].Outcome != "resolved" {
		t.Fatalf("node-a signals %+v, want firing then resolved", sigA)
	}
	wantP50 := incident.FormatSeconds(incident.Seconds(sigA[1].Time.Sub(sigA[0].Time).Seconds()))
	fixedN := len(query(audit.Filter{Type: audit.Verification, Outcome: verify.Fixed}))
	notFixedN := len(query(audit.Filter{Type: audit.Verification, Outcome: verify.NotFixed}))
	triedN := 0
	ids := map[string]bool{}
	for _, e := range query(audit.Filter{Type: audit.ActionResult}) {
		if !ids[e.ActionID] && e.Outcome != string(executors.DryRun) {
			ids[e.ActionID] = true
			triedN++
		}
	}
	if fixedN != 1 || notFixedN != 2 || triedN != 3 {
		t.Fatalf("log holds %d fixed, %d not fixed, %d tried; want 1, 2, 3", fixedN, notFixedN, triedN)
	}

	// `remedy report` for the range, both outputs.
	client := &api.Client{BaseURL: a.URL(), Token: viewerToken}
	var js, table bytes.Buffer
	if err := report.Effectiveness(ctx, report.EffectivenessOptions{Client: client, Since: since, Until: untilS, Output: "json"}, &js); err != nil {
		t.Fatal(err)
	}
	if err := report.Effectiveness(ctx, report.EffectivenessOptions{Client: client, Since: since, Until: untilS}, &table); err != nil {
		t.Fatal(err)
	}
	var rep incident.Report
	if err := json.Unmarshal(js.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Total.Tried != triedN || rep.Total.Fixed != fixedN || rep.Total.NotFixed != notFixedN || rep.Total.Succeeded != 3 ||
		incident.FormatSeconds(rep.Total.FixP50) != wantP50 {
		t.Fatalf("report total %+v, want %d tried, %d fixed, %d not fixed, p50 %s", rep.Total, triedN, fixedN, notFixedN, wantP50)
	}
	t.Logf("remedy report --since %s --until %s:\n%s", since, untilS, table.String())

	// The browser.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-sync", true))
	bctx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel = chromedp.NewContext(bctx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	attrs := func(sel string) []map[string]string {
		t.Helper()
		m, err := chromedp.Run(bctx, chromedp.AttributesAll(chromedp.CSSAll(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return m
	}
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(testenv.RepoRoot(), "docs", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	contains := func(what, got string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, got)
			}
		}
	}

	do(chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(a.URL()+"/incidents"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), viewerToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("who")), // the approvals page, logged in
		chromedp.Navigate(a.URL()+"/incidents"),
		chromedp.WaitVisible(chromedp.ID("status")),
	)
	contains("status", text("#status"), "kill switch: running", "breakers: all closed", "0 pending approvals", "0 open incidents")
	rowA, rowB := text(`tr[id="inc-`+resA.CorrelationID+`"]`), text(`tr[id="inc-`+resB.CorrelationID+`"]`)
	contains("node-a's row", rowA, "node-a", "packet_drops", "sysctl.set", "fixed")
	contains("node-b's row", rowB, "node-b", "packet_drops", "sysctl.set", "not_fixed")
	contains("escalated incident's row", text(`tr[id="inc-`+vd.Escalated+`"]`), "node-b", "not_fixed")
	shot("incidents-list.png")

	// Filter without JavaScript: the form's GET.
	do(chromedp.SetValue(chromedp.ID("f-outcome"), "fixed"), chromedp.Click(chromedp.ID("filter")),
		chromedp.WaitVisible(chromedp.CSS(`tr[id="inc-`+resA.CorrelationID+`"]`)))
	if rows := attrs("table.incidents tr[id]"); len(rows) != 1 {
		t.Errorf("outcome=fixed lists %d incidents, want 1: %v", len(rows), rows)
	}
	do(chromedp.SetValue(chromedp.ID("f-outcome"), ""), chromedp.SetValue(chromedp.ID("f-node"), "node-b"),
		chromedp.Click(chromedp.ID("filter")), chromedp.WaitVisible(chromedp.CSS(`tr[id="inc-`+resB.CorrelationID+`"]`)))
	if rows := attrs("table.incidents tr[id]"); len(rows) != 2 {
		t.Errorf("node=node-b lists %d incidents, want 2 (the incident and its escalation): %v", len(rows), rows)
	}

	// node-a's whole story.
	do(chromedp.Navigate(a.URL()+"/incidents/"+resA.CorrelationID), chromedp.WaitVisible(chromedp.ID("timeline")))
	var stages []string
	for _, m := range attrs("#timeline li") {
		stages = append(stages, m["data-stage"])
	}
	if !inOrder(stages, "signal", "decision", "guard", "dispatch", "result", "signal", "verification") {
		t.Errorf("node-a's timeline stages %v: want signal, decision, guard, dispatch, result, resolved signal, verification in order", stages)
	}
	if got := text("#inc-outcome"); got != "fixed" {
		t.Errorf("node-a's outcome %q", got)
	}
	tl := text("#timeline")
	contains("node-a's timeline", tl, "firing packet_drops on node-a", "backlog drops on node-a",
		"policy revision "+a.Policy.Current().Revision, "backlog overflow", "guards passed", "sent to the agent of node-a",
		"by agent:node-a", "the signal resolved within the 8s window", "resolved packet_drops on node-a")
	if b, af := text("#timeline td.before"), text("#timeline td.after"); b != "1000" || af != "4096" {
		t.Errorf("executor values before/after %s/%s, want 1000/4096", b, af)
	}
	shot("incident-timeline.png")

	// node-b's: not fixed, escalated to a new incident.
	do(chromedp.Navigate(a.URL()+"/incidents/"+resB.CorrelationID), chromedp.WaitVisible(chromedp.ID("timeline")))
	contains("node-b's timeline", text("#timeline"), "the signal did not resolve", "submitted again as incident "+vd.Escalated)
	if esc := attrs("#timeline a.escalated"); len(esc) != 1 || esc[0]["href"] != "/incidents/"+vd.Escalated {
		t.Errorf("escalation link %v", esc)
	}

	// Effectiveness for the report's range: the same numbers.
	do(chromedp.Navigate(a.URL()+"/incidents/effectiveness?since="+since+"&until="+untilS), chromedp.WaitVisible(chromedp.ID("chart")))
	for _, c := range []struct {
		row  string
		figs incident.Figures
	}{{`tr[id="fig-sysctl.set"]`, rep.ByAction[0].Figures}, {`tr[id="fig-packet_drops"]`, rep.ByKind[0].Figures}, {"#total tr:nth-child(2)", rep.Total}} {
		got := map[string]string{}
		for _, col := range []string{"tried", "succeeded", "failed", "rolled_back", "fixed", "not_fixed", "p50", "p90"} {
			got[col] = text(c.row + " td." + col)
		}
		want := map[string]string{"tried": strconv.Itoa(c.figs.Tried), "succeeded": strconv.Itoa(c.figs.Succeeded),
			"failed": strconv.Itoa(c.figs.Failed), "rolled_back": strconv.Itoa(c.figs.RolledBack), "fixed": strconv.Itoa(c.figs.Fixed),
			"not_fixed": strconv.Itoa(c.figs.NotFixed), "p50": incident.FormatSeconds(c.figs.FixP50), "p90": incident.FormatSeconds(c.figs.FixP90)}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s %s: page %q, report %q", c.row, k, got[k], v)
			}
		}
		// The table `remedy report` prints carries the same row.
		line := strings.Join([]string{strconv.Itoa(c.figs.Tried), strconv.Itoa(c.figs.Succeeded), strconv.Itoa(c.figs.Failed),
			strconv.Itoa(c.figs.RolledBack), strconv.Itoa(c.figs.Fixed), strconv.Itoa(c.figs.NotFixed),
			incident.FormatRatio(c.figs.Fixed, c.figs.Tried), want["p50"], want["p90"]}, " ")
		if !strings.Contains(squash(table.String()), line) {
			t.Errorf("remedy report's table lacks %q:\n%s", line, table.String())
		}
	}
	if rep.ByAction[0].Name != "sysctl.set" || rep.ByKind[0].Name != "packet_drops" || text(`tr[id="fig-sysctl.set"] td.p50`) != wantP50 {
		t.Errorf("report rows %v / %v, p50 %s", rep.ByAction, rep.ByKind, wantP50)
	}
	sum := func(class string) int {
		t.Helper()
		// Through DevTools: the page itself runs no script.
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](
			`[...document.querySelectorAll("#chart rect.`+class+`")].reduce((n, r) => n + Number(r.dataset.count), 0)`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if f, nf, o := sum("fixed"), sum("not_fixed"), sum("other"); f != fixedN || nf != notFixedN || o != triedN-fixedN-notFixedN {
		t.Errorf("chart bars: %d fixed, %d not fixed, %d other; want %d, %d, %d", f, nf, o, fixedN, notFixedN, triedN-fixedN-notFixedN)
	}
	shot("incidents-effectiveness.png")
}

// inOrder reports whether want is a subsequence of have.
func inOrder(have []string, want ...string) bool {
	i := 0
	for _, h := range have {
		if i < len(want) && h == want[i] {
			i++
		}
	}
	return i == len(want)
}

// squash collapses runs of spaces, so that a tabwriter's row reads as one spaced line.
func squash(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
}
