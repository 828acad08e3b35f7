// Package dbfault drives the webhook of a real engine while its SQLite audit log cannot
// commit — the disk or the database's size cap is full, or another process holds the
// write lock — and checks the contract Alertmanager relies on: such a webhook is answered
// 503 with Retry-After (never 200, never a hang), nothing of it is half-written, and the
// same webhook sent again once the fault is gone is answered 200 and recorded once.
package dbfault_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/test/testenv"
)

type engine struct {
	*app.App
	t      *testing.T
	ctx    context.Context
	client *http.Client
}

func start(t *testing.T, dataDir, auditDSN string) *engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	a, err := app.Start(ctx, app.Options{DataDir: dataDir, AuditDSN: auditDSN, PolicyDir: filepath.Join(testenv.RepoRoot(), "policies"),
		Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	// The client's timeout only turns a hang into a failure; nothing is timed.
	return &engine{App: a, t: t, ctx: ctx, client: &http.Client{Timeout: time.Minute}}
}

// webhook is one firing alert for node whose annotation is pad bytes long: large enough
// to need new database pages.
func webhook(t *testing.T, node string, pad int) []byte {
	t.Helper()
	msg := map[string]any{
		"version": "4", "status": "firing", "receiver": "remedy", "groupKey": "{}:{node=\"" + node + "\"}",
		"alerts": []map[string]any{{
			"status":      "firing",
			"labels":      map[string]string{"alertname": "NodeIRQSkew", "node": node, "remedy_kind": "irq_skew"},
			"annotations": map[string]string{"value": "0.25", "pad": strings.Repeat("x", pad)},
			"startsAt":    "2026-11-26T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
			"fingerprint": "f" + node,
		}},
	}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type answer struct {
	code       int
	retryAfter string
	body       string
}

func (e *engine) post(body []byte) answer {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, e.URL()+"/webhooks/alertmanager", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("webhook: %v (a webhook must be answered, not left hanging)", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
}

// signals counts node's signal.received events.
func (e *engine) signals(node string) int {
	e.t.Helper()
	evs, err := e.Store.Query(e.ctx, audit.Filter{Type: audit.SignalReceived, Node: node})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

// outage checks the 503 side of the contract and then the recovery.
func (e *engine) outage(node string, pad int, want string, fix func()) {
	e.t.Helper()
	body := webhook(e.t, node, pad)
	got := e.post(body)
	if got.code != http.StatusServiceUnavailable || got.retryAfter == "" || !strings.Contains(got.body, want) {
		e.t.Fatalf("during the fault: %d Retry-After %q %s, want 503 with Retry-After and %q", got.code, got.retryAfter, got.body, want)
	}
	e.t.Logf("during the fault: %d %s", got.code, strings.TrimSpace(got.body))
	if n := e.signals(node); n != 0 {
		e.t.Fatalf("a webhook answered 503 left %d signals in the audit log", n)
	}
	fix()
	if got := e.post(body); got.code != http.StatusOK {
		e.t.Fatalf("the same webhook after the fault: %d %s, want 200", got.code, got.body)
	}
	if got := e.post(body); got.code != http.StatusOK {
		e.t.Fatalf("the same webhook again: %d %s, want 200", got.code, got.body)
	}
	if n := e.signals(node); n != 1 {
		e.t.Fatalf("%d signals recorded, want exactly 1", n)
	}
	rep, err := e.Store.(audit.Log).Verify(e.ctx)
	if err != nil {
		e.t.Fatalf("verify the audit chain: %v", err)
	}
	e.t.Logf("audit chain: %+v", rep)
}

// TestDatabaseSizeCapFull fills the audit database up to its size cap (max_page_count):
// 503, nothing written; the cap raised, the resent webhook is recorded once.
func TestDatabaseSizeCapFull(t *testing.T) {
	testenv.Heavy(t)
	dir := t.TempDir()
	e := start(t, filepath.Join(dir, "data"), "sqlite:"+filepath.Join(dir, "audit.db")+"?max_page_count=64")
	if got := e.post(webhook(t, "node-small", 10)); got.code != http.StatusOK {
		t.Fatalf("a small webhook under the cap: %d %s", got.code, got.body)
	}
	st, ok := e.Store.(*sqlite.Store)
	if !ok {
		t.Fatalf("audit store %T, want *sqlite.Store", e.Store)
	}
	e.outage("node-full", 512<<10, "audit database full", func() {
		if err := st.SetMaxPageCount(e.ctx, 0); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDiskFull puts the audit database on a small tmpfs and fills it: 503, nothing
// written; space freed, the resent webhook is recorded once. Needs root (mount).
func TestDiskFull(t *testing.T) {
	testenv.Heavy(t)
	if os.Geteuid() != 0 {
		msg := "mounting a small tmpfs needs root"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "db")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("mount tmpfs: %v: %s", err, out)
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	e := start(t, filepath.Join(dir, "data"), "sqlite:"+filepath.Join(mnt, "audit.db"))
	if got := e.post(webhook(t, "node-small", 10)); got.code != http.StatusOK {
		t.Fatalf("a small webhook: %d %s", got.code, got.body)
	}
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	e.outage("node-full", 512<<10, "audit database full", func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	})
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestDatabaseLocked holds the database's write lock from another connection (BEGIN
// EXCLUSIVE) past the store's busy timeout: the webhook is answered 503 rather than
// waiting; after the lock is released the resent webhook is recorded once.
func TestDatabaseLocked(t *testing.T) {
	testenv.Heavy(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	e := start(t, filepath.Join(dir, "data"), "sqlite:"+path+"?busy_timeout=200ms")
	if got := e.post(webhook(t, "node-small", 10)); got.code != http.StatusOK {
		t.Fatalf("a small webhook: %d %s", got.code, got.body)
	}
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(e.ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	e.outage("node-locked", 10, "audit database locked", func() {
		if _, err := conn.ExecContext(e.ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		released = true
	})
}
