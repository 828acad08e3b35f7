package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/incident"
)

// The incidents read API answers from the same store as the audit API, behind the same
// authorization.
func TestIncidentsAPI(t *testing.T) {
	c, _ := auditServer(t, func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer t" {
			return errors.New("a valid bearer token is required")
		}
		return nil
	})
	ctx := context.Background()
	var page incident.Page
	if err := c.Call(ctx, http.MethodGet, "/api/v1/incidents?node=n1", nil, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Incidents) != 1 || page.Incidents[0].ID != "inc-1" || page.Incidents[0].Outcome != incident.NoAction {
		t.Errorf("incidents %+v", page.Incidents)
	}
	var inc incident.Incident
	if err := c.Call(ctx, http.MethodGet, "/api/v1/incidents/inc-1", nil, &inc); err != nil {
		t.Fatal(err)
	}
	if len(inc.Steps) != 3 || inc.Steps[2].Stage != incident.StageApproval || inc.Steps[2].Actor != "user:alice" {
		t.Errorf("incident %+v", inc)
	}
	rep, err := c.Report(ctx, url.Values{"since": {"24h"}})
	if err != nil || rep.Total.Tried != 0 || rep.ByAction == nil || !rep.Since.Before(rep.Until) {
		t.Errorf("report %+v, %v", rep, err)
	}
	for path, want := range map[string]string{
		"/api/v1/incidents/inc-9":          "404 Not Found: no incident inc-9",
		"/api/v1/incidents?outcome=great":  `outcome "great": want one of`,
		"/api/v1/incidents?since=soon":     `since: "soon" is neither a duration`,
		"/api/v1/report?since=1h&until=2h": "since must be before until",
		"/api/v1/report?until=2026-13-01":  `until: "2026-13-01" is neither`,
	} {
		var v any
		if err := c.Call(ctx, http.MethodGet, path, nil, &v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	anon := &api.Client{BaseURL: c.BaseURL}
	if _, err := anon.Report(ctx, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without a token: %v", err)
	}
}

// A store that cannot list incidents is told plainly.
func TestIncidentsAPINeedsAReader(t *testing.T) {
	srv := httptest.NewServer(api.Handler(api.Options{Webhook: http.NotFoundHandler(), Store: plainStore{}}))
	defer srv.Close()
	_, err := (&api.Client{BaseURL: srv.URL}).Report(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "501 Not Implemented: this audit store cannot list incidents") {
		t.Errorf("got %v", err)
	}
}

type plainStore struct{ audit.Store }
