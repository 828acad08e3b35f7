package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/audittest"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
)

func backend(t *testing.T) audittest.Backend {
	path := filepath.Join(t.TempDir(), "audit.db")
	return audittest.Backend{
		Open: func(opts audit.Options) (audit.Log, error) { return sqlite.Open(path, opts) },
		Exec: func(q string) error {
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.Exec(q)
			return err
		},
	}
}

func TestConformance(t *testing.T) { audittest.Run(t, backend) }

func openBench(b *testing.B) audit.Log {
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "audit.db"), audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func BenchmarkAppend(b *testing.B) { audittest.BenchmarkAppend(b, openBench) }

func BenchmarkQuery(b *testing.B) { audittest.BenchmarkQuery(b, openBench) }

func TestOpenParameters(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{"?busy_timeout=soon", "?busy_timeout=-1s", "?max_page_count=0", "?max_page_count=x", "?cache=shared", "?%zz"} {
		if st, err := sqlite.Open(filepath.Join(dir, "bad.db")+bad, audit.Options{}); err == nil {
			st.Close()
			t.Errorf("%s accepted", bad)
		}
	}
	st, err := sqlite.Open(filepath.Join(dir, "ok.db")+"?busy_timeout=1s&max_page_count=1000", audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, "ok.db")); err != nil {
		t.Fatalf("the parameters became part of the file name: %v", err)
	}
}

func signalEvent(key string, pad int) audit.Event {
	return audit.Event{Type: audit.SignalReceived, Node: "n", Key: key, Detail: []byte(`{"pad":"` + strings.Repeat("x", pad) + `"}`)}
}

// TestFullThenRecovers: appends past the size cap fail with ErrFull and write nothing,
// whichever batch they share a commit with; once the cap is raised the writer is not
// poisoned: the same appends succeed, once, and the chain verifies.
func TestFullThenRecovers(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "audit.db")+"?max_page_count=40", audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Append(ctx, signalEvent("signal:small", 10)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = st.Append(ctx, signalEvent(fmt.Sprintf("signal:big-%d", i), 64<<10)) })
	}
	wg.Wait()
	full := 0
	for _, err := range errs {
		if err != nil {
			if !errors.Is(err, sqlite.ErrFull) {
				t.Fatalf("error %v, want ErrFull", err)
			}
			full++
		}
	}
	if full == 0 {
		t.Fatal("nothing hit the size cap")
	}
	evs, err := st.Query(ctx, audit.Filter{Type: audit.SignalReceived})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1+len(errs)-full {
		t.Fatalf("%d events after %d failed appends of %d, want %d", len(evs), full, len(errs), 1+len(errs)-full)
	}
	if err := st.SetMaxPageCount(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for i := range errs {
		ins, err := st.Append(ctx, signalEvent(fmt.Sprintf("signal:big-%d", i), 64<<10))
		if err != nil {
			t.Fatalf("after raising the cap: %v", err)
		}
		if ins[0] != (errs[i] != nil) {
			t.Errorf("append %d: inserted %v, first attempt's error %v", i, ins[0], errs[i])
		}
	}
	if rep, err := st.Verify(ctx); err != nil || rep.Break != nil || rep.Rows != int64(1+len(errs)) {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestLockedFailsAfterBusyTimeout: another connection holding the write lock past the
// busy timeout makes Append fail with ErrLocked (not wait for ever); released, it works.
func TestLockedFailsAfterBusyTimeout(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := sqlite.Open(path+"?busy_timeout=100ms", audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, signalEvent("signal:a", 1)); !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("append under another writer's lock: %v, want ErrLocked", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if ins, err := st.Append(ctx, signalEvent("signal:a", 1)); err != nil || !ins[0] {
		t.Fatalf("after the lock is released: %v %v", ins, err)
	}
}

// The store answers "what was appended for this node since seq N" from memory, and says
// when it cannot: for events from before it opened, and once a node's tail no longer
// reaches back. Its answers are the database's.
func TestRecentMatchesTheDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := sqlite.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(node string, typ audit.Type, key string) audit.Event {
		return audit.Event{Type: typ, Node: node, Action: "sysctl.set", Key: key}
	}
	if _, err := st.Append(ctx, ev("n1", audit.ActionPlanned, "before")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = sqlite.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, ok := st.Recent("n1", 0, nil); ok {
		t.Fatal("Recent answered for events from before the store opened")
	}
	_, head, ok := st.Recent("n1", 1, nil)
	if !ok || head != 1 {
		t.Fatalf("Recent after the head at open: ok %v, upTo %d; want true, 1", ok, head)
	}
	types := []audit.Type{audit.ActionPlanned, audit.ActionResult}
	var evs []audit.Event
	for i := range 10 {
		evs = append(evs, ev("n1", audit.SignalReceived, fmt.Sprintf("s%d", i)), ev("n2", audit.ActionPlanned, fmt.Sprintf("o%d", i)),
			ev("n1", audit.ActionPlanned, fmt.Sprintf("p%d", i)), ev("n1", audit.ActionResult, fmt.Sprintf("r%d", i)))
	}
	if _, err := st.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	got, upTo, ok := st.Recent("n1", 1, types)
	want, err := st.Query(ctx, audit.Filter{Node: "n1", Types: types, AfterSeq: 1, WithoutDetail: true})
	if err != nil {
		t.Fatal(err)
	}
	if !ok || upTo != 41 || len(got) != 20 || !reflect.DeepEqual(got, want) {
		t.Fatalf("Recent(n1) = %d events up to %d (ok %v), want the database's %d up to 41", len(got), upTo, ok, len(want))
	}
	// 70 more events for n1: its tail keeps the newest 64.
	evs = nil
	for i := range 70 {
		evs = append(evs, ev("n1", audit.ActionPlanned, fmt.Sprintf("q%d", i)))
	}
	if _, err := st.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := st.Recent("n1", 41, types); ok {
		t.Fatal("Recent answered past the node's tail")
	}
	got, _, ok = st.Recent("n1", 100, types)
	want, _ = st.Query(ctx, audit.Filter{Node: "n1", Types: types, AfterSeq: 100, WithoutDetail: true})
	if !ok || len(got) != 11 || !reflect.DeepEqual(got, want) {
		t.Fatalf("Recent(n1, 100) = %d events (ok %v), want the database's %d", len(got), ok, len(want))
	}
}
