package loadgen

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/test/testenv"
)

func TestRunCountsAndPercentiles(t *testing.T) {
	srv := httptest.NewServer(BareHandler())
	defer srv.Close()
	r, err := Run(context.Background(), Options{URL: srv.URL, Conns: 4, AlertsPerWebhook: 3, Webhooks: 200, Seed: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Webhooks != 200 || r.Alerts != 600 || r.Errors != 0 || r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max {
		t.Fatalf("report = %+v", r)
	}
}

// A short bench against the in-process engine decides every alert it acknowledged.
func TestBenchEndToEnd(t *testing.T) {
	testenv.Heavy(t)
	var out strings.Builder
	err := Bench(context.Background(), BenchOptions{
		PolicyDir: testenv.RepoRoot() + "/policies",
		Scenarios: []Options{{Conns: 4, AlertsPerWebhook: 5, Webhooks: 100}},
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "decided 500/500") || !strings.Contains(out.String(), ", 0 errors") {
		t.Fatalf("bench report:\n%s", out.String())
	}
}
