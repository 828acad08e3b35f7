package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/approval"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard/guardtest"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/signal"
)

const riskyPolicy = `package remedy

decisions contains {"action": "node.cordon", "risk": object.get(input.signal.labels, "risk", "high"), "reason": "vm frozen"} if {
	input.signal.status == "firing"
	input.signal.kind == "vm_freeze"
}
`

var approverTokens = map[string]string{
	"alice": "alice-token-0123456789", "bob": "bob-token-0123456789ab",
	"carol": "carol-token-0123456789", "dave": "dave-token-0123456789a",
}

type approvalEnv struct {
	t      *testing.T
	dir    string
	cordon *guardtest.Cordon
	a      *app.App
}

func (e *approvalEnv) start(ttl string) {
	e.t.Helper()
	guards := filepath.Join(e.dir, "guards.yaml")
	mustApproval(e.t, os.WriteFile(guards, []byte("approval: {min_risk: high, two_person_critical: true, ttl: "+ttl+"}\n"), 0o600))
	a, err := app.Start(context.Background(), app.Options{DataDir: filepath.Join(e.dir, "data"), PolicyDir: filepath.Join(e.dir, "policies"),
		Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", GuardsFile: guards, ApproversFile: filepath.Join(e.dir, "approvers.yaml"),
		ClusterExecutors: []executors.Executor{e.cordon}, SweepInterval: 200 * time.Millisecond})
	mustApproval(e.t, err)
	e.a = a
}

// cli runs the remedy CLI as a person holding who's token.
func (e *approvalEnv) cli(who string, args ...string) (string, error) {
	tf := filepath.Join(e.dir, who+".token")
	mustApproval(e.t, os.WriteFile(tf, []byte(approverTokens[who]+"\n"), 0o600))
	var out, errb bytes.Buffer
	full := append(args[:len(args):len(args)], "--server", e.a.URL(), "--token-file", tf)
	err := run(context.Background(), full, &out, &errb)
	return out.String(), err
}

// alert submits a vm_freeze signal and waits for its approval request.
func (e *approvalEnv) alert(node, risk, requester string) string {
	e.t.Helper()
	s := signal.Signal{Source: "test", Kind: "vm_freeze", Node: node, Status: signal.Firing, StartsAt: time.Now().UTC(),
		Labels: map[string]string{"risk": risk}}
	if requester != "" {
		s.Labels[engine.RequesterLabel] = requester
	}
	mustApproval(e.t, e.a.Engine.Submit(context.Background(), []signal.Signal{s}))
	for range 200 {
		list, err := e.a.Approvals.List(context.Background(), true)
		mustApproval(e.t, err)
		for _, r := range list {
			if r.Held.Request.Node == node {
				return r.ID
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.t.Fatalf("no approval request for %s", node)
	return ""
}

func TestApprovalFlowThroughAPIAndCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole engine three times")
	}
	e := &approvalEnv{t: t, dir: t.TempDir(), cordon: &guardtest.Cordon{}}
	mustApproval(t, os.MkdirAll(filepath.Join(e.dir, "policies"), 0o755))
	mustApproval(t, os.WriteFile(filepath.Join(e.dir, "policies", "p.rego"), []byte(riskyPolicy), 0o600))
	var ap bytes.Buffer
	ap.WriteString("tokens:\n")
	for who, role := range map[string]string{"alice": "approver", "bob": "approver", "carol": "viewer", "dave": "admin"} {
		fmt.Fprintf(&ap, "  - {token: %s, identity: %s, role: %s}\n", approverTokens[who], who, role)
	}
	mustApproval(t, os.WriteFile(filepath.Join(e.dir, "approvers.yaml"), ap.Bytes(), 0o600))
	expectErr := func(out string, err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Errorf("error %v (output %q), want %q", err, out, want)
		}
	}

	// Phase 1: a risky action waits; its requester cannot approve it, a viewer cannot,
	// another approver can, and the action runs.
	e.start("1h")
	a1 := e.alert("node-1", "high", "alice")
	out, err := e.cli("carol", "approvals", "list")
	mustApproval(t, err)
	if !strings.Contains(out, a1) || !strings.Contains(out, "node.cordon") || !strings.Contains(out, "user:alice") {
		t.Errorf("list:\n%s", out)
	}
	if e.cordon.Calls() != 0 {
		t.Fatal("a risky action ran without approval")
	}
	out, err = e.cli("alice", "approvals", "approve", a1, "--reason", "mine")
	expectErr(out, err, "remedy server: 403 Forbidden: an approver cannot approve their own request: alice requested "+a1)
	out, err = e.cli("carol", "approvals", "approve", a1, "--reason", "x")
	expectErr(out, err, "remedy server: 403 Forbidden: carol is viewer; this needs approver")
	out, err = e.cli("bob", "approvals", "approve", a1, "--reason", "")
	expectErr(out, err, "--reason is required")
	out, err = e.cli("bob", "approvals", "approve", a1, "--reason", "checked the node")
	mustApproval(t, err)
	if out != "approve "+a1+": approved (1 of 1 approvals)\n" {
		t.Errorf("approve output %q", out)
	}
	waitApproval(t, func() bool { return e.cordon.Nodes()["node-1"] >= 1 })
	a2 := e.alert("node-2", "high", "")
	e.a.Stop()

	// Phase 2: after a restart the pending action is still there; reject it through the
	// API; the kill switch makes an approved action refuse; two people for critical.
	e.start("1h")
	out, err = e.cli("carol", "approvals", "show", a2, "-o", "json")
	mustApproval(t, err)
	var r approval.Request
	mustApproval(t, json.Unmarshal([]byte(out), &r))
	if r.State != approval.Pending || r.Held.Signal.Node != "node-2" || r.Held.Decision.Reason != "vm frozen" || r.Held.Node.Name != "node-2" {
		t.Errorf("after restart: %+v", r)
	}
	c := approval.Client{BaseURL: e.a.URL(), Token: approverTokens["alice"]}
	if r, err := c.Reject(context.Background(), a2, "not during the release"); err != nil || r.State != approval.Rejected || r.DecidedBy != "user:alice" {
		t.Errorf("reject: %+v %v", r, err)
	}
	a3 := e.alert("node-3", "high", "")
	out, err = e.cli("bob", "pause", "--reason", "x")
	expectErr(out, err, "remedy server: 403 Forbidden: bob is approver; this needs admin")
	_, err = e.cli("dave", "pause", "--reason", "incident 7")
	mustApproval(t, err)
	out, err = e.cli("bob", "approvals", "approve", a3, "--reason", "ok")
	expectErr(out, err, "remedy server: 409 Conflict: approved, but the guards refused the action: paused: remedy is paused")
	_, err = e.cli("dave", "resume", "--reason", "incident over")
	mustApproval(t, err)
	a4 := e.alert("node-4", "critical", "")
	out, err = e.cli("bob", "approvals", "approve", a4, "--reason", "ok")
	mustApproval(t, err)
	if out != "approve "+a4+": pending (1 of 2 approvals)\n" {
		t.Errorf("first of two: %q", out)
	}
	out, err = e.cli("bob", "approvals", "approve", a4, "--reason", "ok")
	expectErr(out, err, "remedy server: 403 Forbidden: already approved by this person; a second approver is needed: "+a4)
	_, err = e.cli("dave", "approvals", "approve", a4, "--reason", "agreed")
	mustApproval(t, err)
	waitApproval(t, func() bool { return e.cordon.Nodes()["node-4"] >= 1 })
	if n := e.cordon.Nodes(); len(n) != 2 {
		t.Errorf("cordoned %v, want node-1 and node-4 only", n)
	}
	for node, c := range e.cordon.Nodes() {
		if c != 1 {
			t.Logf("%s cordoned %d times: the sweep and the approval both dispatched it", node, c)
		}
	}
	e.a.Stop()

	// Phase 3: a short TTL expires a pending action; approving it afterwards fails.
	e.start("1s")
	a5 := e.alert("node-5", "high", "")
	waitApproval(t, func() bool {
		r, err := e.a.Approvals.Get(context.Background(), a5)
		return err == nil && r.State == approval.Expired
	})
	out, err = e.cli("bob", "approvals", "approve", a5, "--reason", "late")
	expectErr(out, err, "remedy server: 409 Conflict: approval request is no longer pending: "+a5+" is expired")
	out, err = e.cli("carol", "approvals", "list", "--all", "-o", "json")
	mustApproval(t, err)
	var all []approval.Request
	mustApproval(t, json.Unmarshal([]byte(out), &all))
	states := map[string]approval.State{}
	for _, r := range all {
		states[r.Held.Request.Node] = r.State
	}
	want := map[string]approval.State{"node-1": approval.Approved, "node-2": approval.Rejected, "node-3": approval.Approved,
		"node-4": approval.Approved, "node-5": approval.Expired}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states = %v, want %v", states, want)
	}
	// Every human decision is in the audit log with who and why.
	var got []string
	for _, typ := range []audit.Type{audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired, audit.GuardRefused, audit.Paused, audit.Resumed} {
		evs, err := e.a.Store.Query(context.Background(), audit.Filter{Type: typ, Ascending: true})
		mustApproval(t, err)
		for _, ev := range evs {
			got = append(got, fmt.Sprintf("%s %s %s %s", ev.Type, ev.Node, ev.Actor, ev.Outcome))
		}
	}
	wantAudit := []string{
		"approval.granted node-1 user:bob approved",
		"approval.granted node-3 user:bob approved",
		"approval.granted node-4 user:bob vote 1 of 2",
		"approval.granted node-4 user:dave approved",
		"approval.rejected node-2 user:alice rejected",
		"approval.expired node-5 engine expired",
		"guard.refused node-3 engine paused",
		"engine.paused  user:dave engine.paused",
		"engine.resumed  user:dave engine.resumed",
	}
	if strings.Join(got, "\n") != strings.Join(wantAudit, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantAudit, "\n"))
	}
	// With an approvers file, /metrics needs a token too.
	resp, err := http.Get(e.a.URL() + "/metrics")
	mustApproval(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodGet, e.a.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+approverTokens["carol"])
	resp, err = http.DefaultClient.Do(req)
	mustApproval(t, err)
	var m bytes.Buffer
	_, _ = m.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, line := range []string{"remedy_approvals_pending 0", `remedy_guard_refusals_total{reason="risk"}`, "remedy_paused 0"} {
		if !strings.Contains(m.String(), line) {
			t.Errorf("metrics lack %q", line)
		}
	}
	e.a.Stop()
}

func waitApproval(t *testing.T, ok func() bool) {
	t.Helper()
	for range 1200 {
		if ok() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("condition not reached in 30s")
}

func mustApproval(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
