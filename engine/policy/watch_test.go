package policy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/remedyhq/remedy/engine/policy"
)

const backlogConfig = `{"remedy": {"config": {"backlog": 4096}}}`

var dropsInput = map[string]any{"signal": map[string]any{"kind": "packet_drops"}}

func backlogOf(t *testing.T, p *policy.Policy) string {
	t.Helper()
	ds, err := p.Eval(context.Background(), dropsInput)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("decisions %+v", ds)
	}
	return string(ds[0].Params)
}

// rewrite writes a file and moves its modification time on, so that a change within
// the file system's timestamp granularity is seen.
func rewrite(t *testing.T, path, body string, step int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Duration(step) * time.Second)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherSwapsOnlyPoliciesThatLoad(t *testing.T) {
	ctx := context.Background()
	dir := writePolicy(t, map[string]string{"p.rego": backlogRule, "p_test.rego": backlogTest, "config.json": backlogConfig})
	opts := policy.Options{Check: shipped(t)}
	p, err := policy.LoadWith(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := policy.NewHolder(p)
	reg := prometheus.NewRegistry()
	var events []policy.Event
	w, err := policy.NewWatcher(h, dir, policy.WatchOptions{Load: opts, Registerer: reg,
		OnChange: func(ev policy.Event) { events = append(events, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	if ev := w.Poll(ctx); ev != nil {
		t.Fatalf("unchanged source reloaded: %+v", ev)
	}

	// A threshold change loads and is what the holder evaluates from now on.
	rewrite(t, filepath.Join(dir, "config.json"), `{"remedy": {"config": {"backlog": 16384}}}`, 1)
	ev := w.Poll(ctx)
	if ev == nil || !ev.Loaded || ev.Previous != p.Revision || ev.Revision == p.Revision || ev.Tests.Passed != 1 {
		t.Fatalf("event %+v", ev)
	}
	if got := backlogOf(t, h.Current()); got != `{"key":"net.core.netdev_max_backlog","value":16384}` {
		t.Errorf("after reload: %s", got)
	}
	loaded := h.Current()

	// A value the catalogue refuses is rejected; the running policy stays.
	rewrite(t, filepath.Join(dir, "config.json"), `{"remedy": {"config": {"backlog": 10}}}`, 2)
	ev = w.Poll(ctx)
	if ev == nil || ev.Loaded || !errors.Is(ev.Err, policy.ErrCatalogue) || ev.Previous != loaded.Revision {
		t.Fatalf("event %+v", ev)
	}
	if h.Current() != loaded {
		t.Error("a rejected policy replaced the running one")
	}
	if got := gauge(t, reg, "remedy_policy_rejected"); got != 1 {
		t.Errorf("remedy_policy_rejected = %v", got)
	}
	if ev := w.Poll(ctx); ev != nil {
		t.Errorf("the same rejected source was judged again: %+v", ev)
	}

	// A syntax error is rejected with its file and line.
	rewrite(t, filepath.Join(dir, "p.rego"), "package remedy\n\ndecisions contains {\n", 3)
	ev = w.Poll(ctx)
	if ev == nil || ev.Loaded || !strings.Contains(ev.Err.Error(), "p.rego:4: rego_parse_error") {
		t.Fatalf("event %+v", ev)
	}

	// Fixed again: loads.
	rewrite(t, filepath.Join(dir, "p.rego"), backlogRule, 4)
	rewrite(t, filepath.Join(dir, "config.json"), backlogConfig, 4)
	ev = w.Poll(ctx)
	if ev == nil || !ev.Loaded || ev.Revision != p.Revision {
		t.Fatalf("event %+v (first revision %s)", ev, p.Revision)
	}
	if got := gauge(t, reg, "remedy_policy_rejected"); got != 0 {
		t.Errorf("remedy_policy_rejected = %v", got)
	}
	want := "\n# HELP remedy_policy_reloads_total Policy reloads after a change of the source, by result (loaded, rejected).\n" +
		"# TYPE remedy_policy_reloads_total counter\n" +
		"remedy_policy_reloads_total{result=\"loaded\"} 2\nremedy_policy_reloads_total{result=\"rejected\"} 2\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "remedy_policy_reloads_total"); err != nil {
		t.Error(err)
	}
	if len(events) != 4 {
		t.Errorf("%d events, want 4", len(events))
	}
}

// gauge reads a gauge without labels from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// writeBundle writes an OPA bundle tarball.
func writeBundle(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBundle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "remedy.tar.gz")
	writeBundle(t, path, map[string]string{
		".manifest":               `{"revision": "git-4f2a9c1", "roots": ["remedy", "remedy_test"]}`,
		"p.rego":                  backlogRule,
		"p_test.rego":             backlogTest,
		"remedy/config/data.json": `{"backlog": 4096}`,
	})
	p, err := policy.LoadWith(ctx, path, policy.Options{Check: shipped(t)})
	if err != nil {
		t.Fatal(err)
	}
	if p.Revision != "git-4f2a9c1" || p.Tests.Passed != 1 {
		t.Errorf("revision %q, tests %+v", p.Revision, p.Tests)
	}
	if got := backlogOf(t, p); got != `{"key":"net.core.netdev_max_backlog","value":4096}` {
		t.Errorf("decision params %s", got)
	}

	// The bundle is watched like a directory: a new tarball with a new revision loads.
	h := policy.NewHolder(p)
	w, err := policy.NewWatcher(h, path, policy.WatchOptions{Load: policy.Options{Check: shipped(t)}})
	if err != nil {
		t.Fatal(err)
	}
	writeBundle(t, path, map[string]string{
		".manifest": `{"revision": "git-77e0b3d", "roots": ["remedy", "remedy_test"]}`,
		"p.rego":    backlogRule, "p_test.rego": backlogTest,
		"remedy/config/data.json": `{"backlog": 8192}`,
	})
	at := time.Now().Add(time.Second)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
	if ev := w.Poll(ctx); ev == nil || !ev.Loaded || ev.Revision != "git-77e0b3d" || ev.Previous != "git-4f2a9c1" {
		t.Fatalf("event %+v", ev)
	}
	if got := backlogOf(t, h.Current()); got != `{"key":"net.core.netdev_max_backlog","value":8192}` {
		t.Errorf("decision params %s", got)
	}
}
