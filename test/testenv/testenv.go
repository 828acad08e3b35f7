// Package testenv starts the real processes remedy's end-to-end tests talk to
// (Alertmanager today; the Kubernetes and PostgreSQL harnesses live beside their
// packages) and decides what a missing dependency means: under REMEDY_E2E=1 (make test,
// CI) it fails the test loudly, otherwise it skips with the reason.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Required reports whether missing end-to-end dependencies must fail tests.
func Required() bool { return os.Getenv("REMEDY_E2E") == "1" }

// Heavy marks an end-to-end test: skipped under -short.
func Heavy(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test skipped under -short")
	}
}

// LookPath finds a binary or fails/skips the test with how to install it.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found on PATH (install: %s, or run make deps)", name, install)
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RepoRoot is the repository root (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Alertmanager is a running Alertmanager process.
type Alertmanager struct {
	URL string
}

// StartAlertmanager runs Debian's prometheus-alertmanager with one route whose
// webhook receiver posts to webhookURL (group_wait 0s, group_interval 1s, grouped by
// alertname and node). The process is stopped when the test ends.
func StartAlertmanager(t testing.TB, webhookURL string) *Alertmanager {
	t.Helper()
	bin := LookPath(t, "prometheus-alertmanager", "apt-get install prometheus-alertmanager")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: remedy
  group_by: [alertname, node]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: remedy
    webhook_configs:
      - url: %q
        send_resolved: true
`, webhookURL)
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--web.external-url=http://"+addr, "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", logs.String())
		}
	})
	am := &Alertmanager{URL: "http://" + addr}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(am.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("alertmanager not ready after 15s:\n%s", logs.String())
	return nil
}

// Alert is what Alertmanager's POST /api/v2/alerts takes.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt,omitzero"`
	EndsAt      time.Time         `json:"endsAt,omitzero"`
}

// Push sends alerts to Alertmanager's API.
func (am *Alertmanager) Push(ctx context.Context, alerts ...Alert) error {
	b, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, am.URL+"/api/v2/alerts", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("push alerts: %s", resp.Status)
	}
	return nil
}

// Eventually polls cond every 50ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}
