// Package secrets checks that no configured secret reaches the logs: a full engine run
// at debug level, with a webhook token, approver tokens and a signing key, fed right and
// wrong credentials, must never print any of them.
package secrets

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/executors/signed"
	"github.com/remedyhq/remedy/test/testenv"
)

func TestSecretsNeverLogged(t *testing.T) {
	testenv.Heavy(t)
	const (
		webhookToken  = "whk-7f3a9c1e5b2d4f60"
		approverToken = "apv-0d9e8c7b6a5f4e3d"
		wrongToken    = "bad-1a2b3c4d5e6f7a8b"
	)
	dir := t.TempDir()
	approvers := filepath.Join(dir, "approvers.yaml")
	if err := os.WriteFile(approvers, []byte("tokens:\n  - {token: \""+approverToken+"\", identity: alice, role: admin}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := signed.GenerateKey(filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")); err != nil {
		t.Fatal(err)
	}
	key, err := signed.LoadPrivateKey(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "k"))

	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "engine"), PolicyDir: filepath.Join(testenv.RepoRoot(), "policies"),
		Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", DryRun: true, WebhookToken: webhookToken,
		ApproversFile: approvers, SigningKey: key, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "engine", "demo", "samples", "packet_drops.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, token string, payload []byte) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL()+path, bytes.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(path, token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("/webhooks/alertmanager", "", body); c != http.StatusUnauthorized {
		t.Fatalf("webhook without token: %d", c)
	}
	if c := post("/webhooks/alertmanager", wrongToken, body); c != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong token: %d", c)
	}
	if c := post("/webhooks/alertmanager", webhookToken, body); c != http.StatusOK {
		t.Fatalf("webhook with the token: %d", c)
	}
	if c := get("/api/v1/approvals", wrongToken); c != http.StatusUnauthorized {
		t.Fatalf("approvals with a wrong token: %d", c)
	}
	if c := get("/api/v1/approvals", approverToken); c != http.StatusOK {
		t.Fatalf("approvals with the token: %d", c)
	}
	testenv.Eventually(t, 20*time.Second, "the alert decided", func() bool {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.Decision})
		return err == nil && len(evs) == 1
	})
	a.Stop()

	out := logs.String()
	if !strings.Contains(out, "remedy engine started") {
		t.Fatalf("the engine logged nothing; the test would prove nothing:\n%s", out)
	}
	keyBody := strings.Join(strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[1:2], "")
	for name, secret := range map[string]string{"webhook token": webhookToken, "approver token": approverToken,
		"rejected token": wrongToken, "signing key": keyBody} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
	// Nor in the audit log, which people query (the database and its WAL).
	files, _ := filepath.Glob(filepath.Join(dir, "engine", "audit.db*"))
	if len(files) == 0 {
		t.Fatal("no audit database")
	}
	for _, f := range files {
		st, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{webhookToken, approverToken, wrongToken} {
			if bytes.Contains(st, []byte(secret)) {
				t.Errorf("a token is stored in %s", filepath.Base(f))
			}
		}
	}
}
