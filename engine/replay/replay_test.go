package replay_test

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/demo"
	"github.com/remedyhq/remedy/engine/replay"
	"github.com/remedyhq/remedy/policies"
)

// TestReplayOfTheRunningPolicyChangesNothing: the engine on the embedded default decides
// the four demo samples with the shipped library; replaying them through the same
// library (given by another path) reports no change, and a candidate whose own tests
// fail is replayed with a warning that says so.
func TestReplayOfTheRunningPolicyChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "live")
	if err := os.CopyFS(live, policies.Library); err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "data"), PolicyDir: live,
		Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	samples, err := fs.Glob(demo.Samples, "samples/*.json")
	if err != nil || len(samples) != 4 {
		t.Fatalf("samples %v: %v", samples, err)
	}
	for _, f := range samples {
		body, _ := fs.ReadFile(demo.Samples, f)
		resp, err := http.Post(a.URL()+"/webhooks/alertmanager", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.Decision})
		if err == nil && len(evs) == len(samples) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d decisions of %d", len(evs), len(samples))
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &api.Client{BaseURL: a.URL()}
	run := func(src string) (*replay.Report, string) {
		t.Helper()
		p, warnings, err := replay.Load(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := replay.Run(ctx, replay.Options{Client: client, Policy: p, Since: time.Now().Add(-time.Hour), History: 24 * time.Hour, Warnings: warnings})
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		replay.Print(&out, rep)
		return rep, out.String()
	}

	abs, _ := filepath.Abs(live)
	rep, out := run(abs + "/")
	if rep.Signals != 4 || len(rep.Changed) != 0 || len(rep.Warnings) != 0 || rep.Candidate != a.Policy.Current().Revision {
		t.Errorf("replay of the running policy (revision %s):\n%s", a.Policy.Current().Revision, out)
	}

	// A candidate that breaks one of its own tests: replayed, with the failure said first.
	cand := filepath.Join(dir, "candidate")
	if err := os.CopyFS(cand, policies.Library); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(cand, "config.yaml")
	b, _ := os.ReadFile(cfg)
	edited := strings.Replace(string(b), "backlog_default: 8192", "backlog_default: 16384", 1)
	if edited == string(b) {
		t.Fatal("config.yaml has no backlog_default: 8192")
	}
	if err := os.WriteFile(cfg, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, out = run(cand)
	if len(rep.Warnings) != 1 || !strings.HasPrefix(out, "warning: the candidate's own tests fail; it would be refused if loaded: ") ||
		!strings.Contains(out, "test_alertmanager_backlog_alert") {
		t.Errorf("no warning about the failing test:\n%s", out)
	}
	if len(rep.Changed) != 1 || rep.Changed[0].Kind != "packet_drops" {
		t.Errorf("changes:\n%s", out)
	}
}
