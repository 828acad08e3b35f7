package auditstore_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/auditstore"
)

func TestIsPostgres(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u@h/db": true, "postgresql://h/db": true, "": false, "sqlite:/x.db": false, "/var/lib/remedy/audit.db": false,
	} {
		if got := auditstore.IsPostgres(dsn); got != want {
			t.Errorf("IsPostgres(%q) = %v", dsn, got)
		}
	}
}

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ dsn, file string }{
		{"", "default.db"},
		{"sqlite:" + filepath.Join(dir, "prefixed.db"), "prefixed.db"},
		{filepath.Join(dir, "plain.db"), "plain.db"},
	} {
		st, err := auditstore.Open(context.Background(), tc.dsn, filepath.Join(dir, "default.db"), audit.Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.dsn, err)
		}
		st.Close()
		if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
			t.Errorf("Open(%q) did not create %s: %v", tc.dsn, tc.file, err)
		}
	}
}

func TestRunRetention(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	keys := audit.NewHMACSigner([]byte("0123456789abcdef"))
	st, err := auditstore.Open(context.Background(), "", filepath.Join(t.TempDir(), "a.db"), audit.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Append(context.Background(),
		audit.Event{Type: audit.Decision, Time: now.Add(-48 * time.Hour)},
		audit.Event{Type: audit.Decision, Time: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		auditstore.RunRetention(ctx, st, 24*time.Hour, time.Hour, func() time.Time { return now }, slog.New(slog.DiscardHandler))
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err := st.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Checkpoint != nil {
			if !rep.OK() || rep.Checkpoint.ThroughSeq != 1 || rep.Rows != 2 {
				t.Fatalf("after retention: %+v", rep)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retention did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	// Without a key retention fails and is logged, not fatal.
	nokey, err := auditstore.Open(context.Background(), "", filepath.Join(t.TempDir(), "b.db"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer nokey.Close()
	if _, err := nokey.Retain(context.Background(), now); !errors.Is(err, audit.ErrNoSigner) {
		t.Fatalf("retain without key: %v", err)
	}
}
