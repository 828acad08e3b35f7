package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/incident"
)

// `remedy report` prints, for a range, the figures engine/incident computes from the
// same log (the page renders the same Report; test/e2e compares them in a browser).
func TestReport(t *testing.T) {
	url, _, st := auditEngine(t, nil)
	at := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	ev := func(d time.Duration, typ audit.Type, outcome string) audit.Event {
		return audit.Event{Time: at.Add(d), Type: typ, CorrelationID: "inc-2", Node: "worker-4", Kind: "packet_drops",
			Action: "sysctl.set", ActionID: "act-2", Actor: audit.ActorEngine, Outcome: outcome}
	}
	if _, err := st.Append(context.Background(), ev(0, audit.SignalReceived, "firing"), ev(time.Second, audit.ActionResult, "succeeded"),
		ev(4*time.Second, audit.SignalReceived, "resolved"), ev(9*time.Second, audit.Verification, incident.Fixed)); err != nil {
		t.Fatal(err)
	}
	since, until := "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"
	want, err := incident.Effectiveness(context.Background(), st.(audit.IncidentReader), at.Add(-2*time.Hour), at.Add(22*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("report", "--server", url, "--since", since, "--until", until, "-o", "json")
	if err != nil {
		t.Fatal(err, out)
	}
	var got incident.Report
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err, out)
	}
	gotJS, _ := json.Marshal(got)
	wantJS, _ := json.Marshal(want)
	if string(gotJS) != string(wantJS) || got.Total.Tried != 1 || got.Total.Fixed != 1 || got.Total.FixP50 != 4 {
		t.Errorf("report %s\nwant %s (1 tried, 1 fixed in 4s)", gotJS, wantJS)
	}
	out, err = runCLI("report", "--server", url, "--since", since, "--until", until)
	if err != nil {
		t.Fatal(err, out)
	}
	for _, w := range []string{"from 2026-11-26T00:00:00Z to 2026-11-27T00:00:00Z", "sysctl.set", "packet_drops", "100%", "4s"} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}
	for _, c := range []struct{ args, want string }{
		{"-o yaml", `"yaml": use table, json`},
		{"--since tomorrow", `since: "tomorrow" is neither a duration`},
		{"--since 2026-11-27T00:00:00Z --until 2026-11-26T00:00:00Z", "since must be before until"},
	} {
		out, err := runCLI(append([]string{"report", "--server", url}, strings.Fields(c.args)...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v %s, want %q", c.args, err, out, c.want)
		}
	}
}
