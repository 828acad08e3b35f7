package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
)

func auditServer(t *testing.T, authorize func(*http.Request) error) (*api.Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := sqlite.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, err = st.Append(context.Background(),
		audit.Event{Type: audit.SignalReceived, CorrelationID: "inc-1", Node: "n1", Actor: audit.ActorAgent, Key: "signal:1"},
		audit.Event{Type: audit.Decision, CorrelationID: "inc-1", Node: "n1", Actor: audit.ActorEngine, Key: "decision:1"},
		audit.Event{Type: audit.ApprovalGranted, CorrelationID: "inc-1", Node: "n1", Actor: audit.UserActor("alice")},
		audit.Event{Type: audit.SignalReceived, CorrelationID: "inc-2", Node: "n2", Actor: audit.ActorAgent, Key: "signal:2"},
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(api.Options{Webhook: http.NotFoundHandler(), Store: st, Authorize: authorize}))
	t.Cleanup(srv.Close)
	return &api.Client{BaseURL: srv.URL, Token: "t"}, path
}

func seqs(evs []audit.Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func TestAuditEventsFilters(t *testing.T) {
	c, _ := auditServer(t, nil)
	for _, tc := range []struct {
		query string
		want  []int64
		err   string
	}{
		{"", []int64{4, 3, 2, 1}, ""},
		{"actor=user:alice", []int64{3}, ""},
		{"node=n1&order=asc&after_seq=1", []int64{2, 3}, ""},
		{"correlation_id=inc-2", []int64{4}, ""},
		{"order=up", nil, `remedy server: 400 Bad Request: order: "up" is neither asc nor desc`},
		{"after_seq=x", nil, `remedy server: 400 Bad Request: after_seq: "x" is not a seq`},
	} {
		q, _ := url.ParseQuery(tc.query)
		evs, err := c.Events(context.Background(), q)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err = %v, want %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(seqs(evs), tc.want) {
			t.Errorf("%q: seqs = %v, %v; want %v", tc.query, seqs(evs), err, tc.want)
		}
	}
}

func TestAuditIncidentExportVerify(t *testing.T) {
	c, path := auditServer(t, nil)
	ctx := context.Background()
	tl, err := c.Incident(ctx, "inc-1")
	if err != nil || !reflect.DeepEqual(seqs(tl), []int64{1, 2, 3}) {
		t.Fatalf("incident = %v, %v", seqs(tl), err)
	}
	var buf bytes.Buffer
	if err := c.Export(ctx, url.Values{"node": {"n1"}}, &buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 3 {
		t.Fatalf("export = %d lines:\n%s", n, buf.String())
	}
	rep, err := c.Verify(ctx)
	if err != nil || !rep.OK() || rep.Rows != 4 {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	rep, err = c.Verify(ctx)
	if err != nil || rep.Break == nil || rep.Break.Error() != "audit chain broken at seq 3: content does not match its hash (row edited)" {
		t.Fatalf("verify after edit = %+v, %v", rep, err)
	}
}

func TestAuditAuthorize(t *testing.T) {
	c, _ := auditServer(t, func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer good" {
			return errors.New("a valid bearer token is required")
		}
		return nil
	})
	ctx := context.Background()
	want := "remedy server: 401 Unauthorized: a valid bearer token is required"
	if _, err := c.Events(ctx, nil); err == nil || err.Error() != want {
		t.Fatalf("events without a token: err = %v", err)
	}
	if err := c.Export(ctx, nil, &bytes.Buffer{}); err == nil || err.Error() != want {
		t.Fatalf("export without a token: err = %v", err)
	}
	c.Token = "good"
	if evs, err := c.Events(ctx, nil); err != nil || len(evs) != 4 {
		t.Fatalf("events with a token = %d, %v", len(evs), err)
	}
}
