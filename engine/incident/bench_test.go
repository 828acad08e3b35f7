package incident_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/incident"
)

// BenchmarkPage renders the incidents page over a SQLite log of
// $REMEDY_INCIDENT_BENCH_ROWS events (default 1,000,000: about 174,000 incidents on
// 1,000 nodes, one event a millisecond), as a browser asks for it: the whole HTTP
// handler, with the switches, the open incidents of the last 24 hours and one page of 50.
func BenchmarkPage(b *testing.B) {
	rows := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("REMEDY_INCIDENT_BENCH_ROWS")); err == nil && n > 0 {
		rows = n
	}
	st := openSQLite(b)
	start := time.Now()
	n, end := fill(b, st, rows)
	b.Logf("loaded %d rows (%d incidents) in %v", rows, n, time.Since(start).Round(time.Millisecond))
	h := incident.Handler(incident.Options{Store: st, Reader: st, Now: func() time.Time { return end },
		State: func() guard.State { return guard.State{Tripped: []string{}} },
		Auth: incident.AuthFuncs{ViewerFunc: func(*http.Request) (incident.Viewer, error) {
			return incident.Viewer{Name: "bench", Role: "viewer"}, nil
		}}})
	ts := func(d time.Duration) string { return end.Add(-d).Format(time.RFC3339Nano) }
	for _, c := range []struct{ name, path string }{
		{"list", "/incidents"},
		{"list-node", "/incidents?node=node-0042"},
		{"list-kind", "/incidents?kind=psi"},
		{"list-not_fixed", "/incidents?outcome=not_fixed"},
		{"list-refused-last-5m", "/incidents?outcome=refused&since=5m"},
		{"list-page-100", "/incidents?limit=100&until=" + ts(8*time.Minute)},
		{"incident", fmt.Sprintf("/incidents/inc-%07d", n/2)},
		{"effectiveness-1m", "/incidents/effectiveness?since=" + ts(time.Minute) + "&until=" + ts(0)},
		{"effectiveness-all", "/incidents/effectiveness?since=" + t0.Format(time.RFC3339) + "&until=" + ts(-time.Second)},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", c.path, rec.Code, rec.Body.String())
				}
			}
		})
	}
}
