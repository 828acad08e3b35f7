package app_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/approval"
)

// TestApproverRaisingAnAlertIsTheRequester: an approver who posts an alert to the webhook
// with their own token is its requester, whatever its remedy_requested_by label claims,
// and may not approve the action it leads to; someone else may.
func TestApproverRaisingAnAlertIsTheRequester(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	pol := "package remedy\n\ndecisions contains {\"action\": \"irqbalance.restart\", \"risk\": \"high\", \"requires_approval\": true, \"reason\": \"r\"} if input.signal.kind == \"irq_skew\"\n"
	approvers := "tokens:\n  - {token: alice-token-0123456789, identity: Alice, role: approver}\n  - {token: bob-token-0123456789ab, identity: bob, role: approver}\n"
	for name, body := range map[string]string{filepath.Join(pdir, "p.rego"): pol, filepath.Join(dir, "approvers.yaml"): approvers} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "data"), PolicyDir: pdir, Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", WebhookToken: "hook-token-0123456789", ApproversFile: filepath.Join(dir, "approvers.yaml"), PolicyReload: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	body := `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"NodeIRQSkew","node":"n1","remedy_requested_by":"bob"},"startsAt":"2026-01-01T00:00:00Z"}]}`
	req, _ := http.NewRequest(http.MethodPost, a.URL()+"/webhooks/alertmanager", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "bearer alice-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook with alice's token: %s", resp.Status)
	}
	var pending []approval.Request
	for range 400 {
		if pending, err = a.Approvals.List(ctx, false); err != nil || len(pending) > 0 {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if len(pending) != 1 || pending[0].Held.Requester != "user:alice" {
		t.Fatalf("pending %+v, %v", pending, err)
	}
	id := pending[0].ID
	if _, err := a.Approvals.Approve(ctx, id, approval.Identity{Name: "Alice", Role: approval.Approver}, "mine"); !errors.Is(err, approval.ErrSelfApproval) {
		t.Errorf("alice approving her own alert: %v", err)
	}
	if r, err := a.Approvals.Approve(ctx, id, approval.Identity{Name: "bob", Role: approval.Approver}, "checked"); err != nil || r.State != approval.Approved {
		t.Errorf("bob approving: %+v, %v", r, err)
	}
}
