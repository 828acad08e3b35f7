// Package replicas_test runs remedy as several replicas on one audit store, the way an
// HA deployment does, and races the people and loops that decide a held action.
package replicas_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/approval"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/postgres/pgtest"
	"github.com/remedyhq/remedy/wire/signal"
)

var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func startReplica(ctx context.Context, t *testing.T, dsn string) *app.App {
	t.Helper()
	dir := t.TempDir()
	a, err := app.Start(ctx, app.Options{DataDir: dir, PolicyDir: "testdata/policies", Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", AuditDSN: dsn, PolicyReload: -1, SweepInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// Two replicas on one store: a person approving on one while another rejects on the
// other, and an expiry loop on a third, for 100 held actions at once. Every action ends
// with exactly one final decision; none is both rejected (or expired) and planned.
func TestApproveRejectExpireRaces(t *testing.T) {
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "shared-audit.db") }},
		{"postgres", func(t *testing.T) string { return pg.Database(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() {
				t.Skip("replica races start two engines")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			dsn := tc.dsn(t)
			a, b := startReplica(ctx, t, dsn), startReplica(ctx, t, dsn)
			const n = 100
			ids := holdActions(ctx, t, a, n)
			// The expiry loop sees the requests' TTL passed; the people do not.
			later := approval.New(approval.Options{Store: b.Store, Engine: b.Engine, Guards: b.Guards,
				Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
			alice := approval.Identity{Name: "alice", Role: approval.Approver}
			bob := approval.Identity{Name: "bob", Role: approval.Approver}
			var wg sync.WaitGroup
			unexpected := make(chan error, 3*n)
			answer := func(err error) {
				if err != nil && !errors.Is(err, approval.ErrNotPending) {
					unexpected <- err
				}
			}
			done := make(chan struct{})
			var loops sync.WaitGroup
			for range 2 {
				loops.Go(func() {
					for {
						_, err := later.ExpireDue(ctx)
						answer(err)
						select {
						case <-done:
							return
						default:
						}
					}
				})
			}
			// A third of the actions: the people come a little after the expiry loop started.
			for i, id := range ids {
				var delay time.Duration
				if i%3 == 0 {
					delay = time.Duration(i) * time.Millisecond
				}
				wg.Go(func() {
					time.Sleep(delay)
					_, err := a.Approvals.Approve(ctx, id, alice, "looks right")
					answer(err)
				})
				wg.Go(func() {
					time.Sleep(delay)
					_, err := b.Approvals.Reject(ctx, id, bob, "not now")
					answer(err)
				})
			}
			wg.Wait()
			close(done)
			loops.Wait()
			close(unexpected)
			for err := range unexpected {
				t.Fatalf("a racer got %v; want success or %v", err, approval.ErrNotPending)
			}
			checkOneOutcome(ctx, t, a.Store, ids)
		})
	}
}

// holdActions submits n signals that the policy holds for approval and waits until each
// is a held ledger row.
func holdActions(ctx context.Context, t *testing.T, a *app.App, n int) []string {
	t.Helper()
	var sigs []signal.Signal
	for i := range n {
		sigs = append(sigs, signal.Signal{Source: "test", Kind: signal.KindPacketDrops, Node: fmt.Sprintf("node-%03d", i),
			Status: signal.Firing, Fingerprint: fmt.Sprintf("fp-%d", i), StartsAt: time.Now().UTC()})
	}
	if err := a.Engine.Submit(ctx, sigs); err != nil {
		t.Fatal(err)
	}
	for {
		rows, err := a.Store.Actions(ctx, audit.ActionFilter{States: []audit.State{audit.StateHeld}, Limit: 10 * n})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == n {
			ids := make([]string, n)
			for i := range rows {
				ids[i] = rows[i].ID
			}
			return ids
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d actions held", len(rows), n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkOneOutcome asserts that the log and the ledger agree on one final decision per
// action, and that only approved actions were planned.
func checkOneOutcome(ctx context.Context, t *testing.T, st audit.Store, ids []string) {
	t.Helper()
	count := map[string]map[audit.Type]int{}
	evs, err := st.Query(ctx, audit.Filter{Types: []audit.Type{audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired,
		audit.ActionPlanned}, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if count[ev.ActionID] == nil {
			count[ev.ActionID] = map[audit.Type]int{}
		}
		count[ev.ActionID][ev.Type]++
	}
	outcomes := map[audit.State]int{}
	for _, id := range ids {
		c := count[id]
		finals := c[audit.ApprovalGranted] + c[audit.ApprovalRejected] + c[audit.ApprovalExpired]
		if finals != 1 {
			t.Errorf("%s: %d final decisions recorded (%v); want 1", id, finals, c)
		}
		if (c[audit.ApprovalRejected] > 0 || c[audit.ApprovalExpired] > 0) && c[audit.ActionPlanned] > 0 {
			t.Errorf("%s: rejected or expired, and planned (%v)", id, c)
		}
		if c[audit.ApprovalGranted] != c[audit.ActionPlanned] {
			t.Errorf("%s: approved %d times, planned %d times", id, c[audit.ApprovalGranted], c[audit.ActionPlanned])
		}
		row, err := st.Action(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]audit.State{true: audit.StateRejected}[c[audit.ApprovalRejected] > 0]
		if c[audit.ApprovalExpired] > 0 {
			want = audit.StateExpired
		}
		switch {
		case want != "" && row.State != want:
			t.Errorf("%s: the log says %s, the ledger %s", id, want, row.State)
		case want == "" && (row.State == audit.StateHeld || row.State == audit.StateRejected):
			t.Errorf("%s: approved, but the ledger says %s", id, row.State)
		}
		outcomes[row.State]++
	}
	t.Logf("outcomes: %v", outcomes)
}
