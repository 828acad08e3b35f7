package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// BenchmarkStoragePerAlert reports what one decided alert leaves in the embedded store:
// rows and bytes on disk (after a checkpoint), for an alert the policy acts on (signal,
// decision, planned, dispatched, and its ledger row) and for one no rule acts on.
func BenchmarkStoragePerAlert(b *testing.B) {
	for _, kind := range []string{"packet_drops", "psi"} {
		b.Run(kind, func(b *testing.B) {
			const n = 2000
			for b.Loop() {
				dir := b.TempDir()
				v := newEnv(b, dir, false)
				ctx := context.Background()
				for i := range n {
					s := sig(kind, fmt.Sprintf("node-%d", i%500))
					s.Fingerprint = fmt.Sprint(i)
					if err := v.e.Handle(ctx, s); err != nil {
						b.Fatal(err)
					}
				}
				v.store.Close()
				db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "audit.db"))
				if err != nil {
					b.Fatal(err)
				}
				var events, actions, pages, pageSize int64
				if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
					b.Fatal(err)
				}
				_ = db.QueryRow("SELECT COUNT(*) FROM audit_events").Scan(&events)
				_ = db.QueryRow("SELECT COUNT(*) FROM actions").Scan(&actions) // absent before the ledger
				_ = db.QueryRow("PRAGMA page_count").Scan(&pages)
				_ = db.QueryRow("PRAGMA page_size").Scan(&pageSize)
				db.Close()
				b.ReportMetric(float64(events)/n, "events/alert")
				b.ReportMetric(float64(actions)/n, "ledger-rows/alert")
				b.ReportMetric(float64(pages*pageSize)/n, "bytes/alert")
			}
		})
	}
}
