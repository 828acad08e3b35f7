package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/webhooks/bearer"
)

// TestMetricsAndPolicyBehindTheToken: with a token configured, /metrics and
// /api/v1/policy need it (they stayed open with --approvers before); MetricsOpen keeps
// /metrics open for scrapers that cannot send one, never the policy.
func TestMetricsAndPolicyBehindTheToken(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package remedy\n\ndecisions := []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	authorize := func(r *http.Request) error {
		if !bearer.Matches(r, "viewer-token") {
			return errors.New("a valid bearer token is required")
		}
		return nil
	}
	for _, open := range []bool{false, true} {
		srv := httptest.NewServer(api.Handler(api.Options{Webhook: http.NotFoundHandler(), Policy: policy.NewHolder(pol),
			Gatherer: prometheus.NewRegistry(), Authorize: authorize, MetricsOpen: open}))
		for _, tc := range []struct {
			path, auth string
			want       int
		}{
			{"/metrics", "", map[bool]int{false: 401, true: 200}[open]},
			{"/metrics", "Bearer viewer-token", 200},
			{"/metrics", "BEARER viewer-token", 200},
			{"/api/v1/policy", "", 401},
			{"/api/v1/policy", "Bearer nope", 401},
			{"/api/v1/policy", "bearer viewer-token", 200},
			{"/healthz", "", 200},
		} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("open=%v %s %q: %d, want %d", open, tc.path, tc.auth, resp.StatusCode, tc.want)
			}
		}
		srv.Close()
	}
}
