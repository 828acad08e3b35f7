package txn_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/txn"
)

// mem is an in-memory setting whose writes can be made to fail or to read back differently.
type mem struct {
	name    string
	vals    map[string]string
	failOn  string // a value whose write fails
	err     error
	clampTo string // when set, every write stores this instead
	writes  *int
}

func (m mem) Name() string                         { return m.name }
func (m mem) Read(context.Context) (string, error) { return m.vals[m.name], nil }
func (m mem) Write(_ context.Context, v string) error {
	*m.writes++
	if v == m.failOn {
		return m.err
	}
	if m.clampTo != "" {
		v = m.clampTo
	}
	m.vals[m.name] = v
	return nil
}

func TestApply(t *testing.T) {
	eio := syscall.EIO
	type step struct {
		name, want, failOn, clampTo string
		err                         error
		skip                        bool
	}
	tests := []struct {
		name       string
		start      map[string]string
		steps      []step
		dry        bool
		cancel     bool
		status     executors.Status
		msg        string
		end        map[string]string
		wantWrites int
	}{
		{
			name:   "applies and verifies",
			start:  map[string]string{"a": "1", "b": "2"},
			steps:  []step{{name: "a", want: "10"}, {name: "b", want: "20"}},
			status: executors.Succeeded, msg: "set a 1->10, b 2->20",
			end: map[string]string{"a": "10", "b": "20"}, wantWrites: 2,
		},
		{
			name:   "same values are a no-op",
			start:  map[string]string{"a": "1", "b": "2"},
			steps:  []step{{name: "a", want: "1"}, {name: "b", want: "2"}},
			status: executors.Succeeded, msg: "no change: 2 setting(s) already hold the wanted values",
			end: map[string]string{"a": "1", "b": "2"},
		},
		{
			name:   "only differing values are written",
			start:  map[string]string{"a": "1", "b": "2"},
			steps:  []step{{name: "a", want: "1"}, {name: "b", want: "3"}},
			status: executors.Succeeded, msg: "set b 2->3",
			end: map[string]string{"a": "1", "b": "3"}, wantWrites: 1,
		},
		{
			name:   "dry run writes nothing",
			start:  map[string]string{"a": "1", "b": "2"},
			steps:  []step{{name: "a", want: "10"}, {name: "b", want: "2"}},
			dry:    true,
			status: executors.DryRun, msg: "would set a 1->10",
			end: map[string]string{"a": "1", "b": "2"},
		},
		{
			name:   "dry run of values already held",
			start:  map[string]string{"a": "1"},
			steps:  []step{{name: "a", want: "1"}},
			dry:    true,
			status: executors.DryRun, msg: "no change: 1 setting(s) already hold the wanted values",
			end: map[string]string{"a": "1"},
		},
		{
			name:   "a failed write half way rolls back the earlier ones",
			start:  map[string]string{"a": "1", "b": "2", "c": "3"},
			steps:  []step{{name: "a", want: "10"}, {name: "b", want: "20"}, {name: "c", want: "30", failOn: "30", err: errors.New("write c: boom")}},
			status: executors.RolledBack, msg: "write c: boom; restored 2 setting(s)",
			end: map[string]string{"a": "1", "b": "2", "c": "3"}, wantWrites: 5,
		},
		{
			name:   "a failed first write changes nothing",
			start:  map[string]string{"a": "1"},
			steps:  []step{{name: "a", want: "10", failOn: "10", err: errors.New("write a: boom")}},
			status: executors.Failed, msg: "write a: boom; nothing was changed",
			end: map[string]string{"a": "1"}, wantWrites: 1,
		},
		{
			name:   "a failed verify rolls back",
			start:  map[string]string{"a": "1", "b": "2"},
			steps:  []step{{name: "a", want: "10"}, {name: "b", want: "100", clampTo: "64"}},
			status: executors.RolledBack, msg: "verify b: read back 64, want 100; restored 2 setting(s)",
			end: map[string]string{"a": "1", "b": "64"}, wantWrites: 4,
		},
		{
			name:   "a failed rollback is reported",
			start:  map[string]string{"a": "1", "b": "2"},
			steps:  []step{{name: "a", want: "10", failOn: "1", err: errors.New("write a: stuck")}, {name: "b", want: "20", failOn: "20", err: errors.New("write b: boom")}},
			status: executors.Failed, msg: "write b: boom; rollback failed: write a: stuck",
			end: map[string]string{"a": "10", "b": "2"}, wantWrites: 3,
		},
		{
			name:   "a skippable write error is skipped",
			start:  map[string]string{"a": "1", "b": "2"},
			steps:  []step{{name: "a", want: "10", failOn: "10", err: eio, skip: true}, {name: "b", want: "20"}},
			status: executors.Succeeded, msg: "set b 2->20; skipped a (input/output error)",
			end: map[string]string{"a": "1", "b": "20"}, wantWrites: 2,
		},
		{
			name:   "a cancelled context writes nothing",
			start:  map[string]string{"a": "1"},
			steps:  []step{{name: "a", want: "10"}},
			cancel: true,
			status: executors.Failed, msg: "aborted: context canceled; nothing was changed",
			end: map[string]string{"a": "1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vals := maps.Clone(tc.start)
			writes := 0
			var cs []txn.Change
			for _, s := range tc.steps {
				c := txn.Change{Setting: mem{name: s.name, vals: vals, failOn: s.failOn, err: s.err, clampTo: s.clampTo, writes: &writes}, Want: s.want}
				if s.skip {
					c.Skip = func(err error) bool { return errors.Is(err, syscall.EIO) }
				}
				cs = append(cs, c)
			}
			ctx, cancel := context.WithCancel(t.Context())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			out := txn.Apply(ctx, cs, tc.dry)
			if out.Status != tc.status || out.Message != tc.msg {
				t.Errorf("got %s %q, want %s %q", out.Status, out.Message, tc.status, tc.msg)
			}
			if !maps.Equal(vals, tc.end) {
				t.Errorf("node holds %v, want %v", vals, tc.end)
			}
			if !maps.Equal(out.Before, tc.start) {
				t.Errorf("before %v, want %v", out.Before, tc.start)
			}
			if writes != tc.wantWrites {
				t.Errorf("%d writes, want %d", writes, tc.wantWrites)
			}
		})
	}
}

func TestExecuteRefusesAndFails(t *testing.T) {
	req := executors.Request{ID: "a1", Action: "x"}
	res := txn.Execute(t.Context(), req, func(context.Context) ([]txn.Change, error) {
		return nil, txn.Refuse("eth9: %w", os.ErrNotExist)
	})
	if res.Status != executors.Refused || res.Message != "eth9: file does not exist" || res.ID != "a1" {
		t.Errorf("refusal: %+v", res)
	}
	res = txn.Execute(t.Context(), req, func(context.Context) ([]txn.Change, error) {
		return nil, errors.New("read online cpus: boom")
	})
	if res.Status != executors.Failed || res.Message != "read online cpus: boom" {
		t.Errorf("failure: %+v", res)
	}
}

func TestFileNeverCreates(t *testing.T) {
	dir := t.TempDir()
	f := txn.File{Key: "k", Path: filepath.Join(dir, "missing")}
	err := f.Write(t.Context(), "1")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("write to a missing file: %v", err)
	}
	if _, err := os.Stat(f.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the write created %s", f.Path)
	}
}
