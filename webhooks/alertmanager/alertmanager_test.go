package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/remedyhq/remedy/wire/signal"
)

type recordSink struct {
	mu   sync.Mutex
	got  []signal.Signal
	fail error
}

func (s *recordSink) Submit(_ context.Context, sigs []signal.Signal) error {
	if s.fail != nil {
		return s.fail
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, sigs...)
	return nil
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../engine/demo/samples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMappingOfSamplePayloads(t *testing.T) {
	for _, tc := range []struct {
		file string
		kind signal.Kind
		node string
	}{
		{"irq_skew.json", signal.KindIRQSkew, "aks-nodepool1-00000001"},
		{"packet_drops.json", signal.KindPacketDrops, "aks-nodepool1-00000002"},
		{"vm_freeze.json", signal.KindVMFreeze, "aks-nodepool1-00000003"},
		{"psi.json", signal.KindPSI, "aks-nodepool1-00000004"},
	} {
		msg, err := Decode(bytes.NewReader(fixture(t, tc.file)))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		sigs := DefaultMapping().Signals(msg)
		if len(sigs) != 1 {
			t.Fatalf("%s: %d signals", tc.file, len(sigs))
		}
		s := sigs[0]
		if s.Kind != tc.kind || s.Node != tc.node || s.Status != signal.Firing || s.Source != Source {
			t.Errorf("%s: got kind=%s node=%s status=%s", tc.file, s.Kind, s.Node, s.Status)
		}
		if !s.EndsAt.IsZero() {
			t.Errorf("%s: firing alert's zero endsAt must stay zero, got %v", tc.file, s.EndsAt)
		}
		if len(s.Raw) == 0 || s.Fingerprint == "" {
			t.Errorf("%s: raw payload and fingerprint must be kept", tc.file)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
	}
}

func TestMappingRules(t *testing.T) {
	m := DefaultMapping()
	for _, tc := range []struct {
		labels map[string]string
		kind   signal.Kind
		node   string
	}{
		{map[string]string{"alertname": "NodeIRQSkew", "kubernetes_node": "k1"}, signal.KindIRQSkew, "k1"},
		{map[string]string{"alertname": "Whatever", "remedy_kind": "psi", "node": "n"}, signal.KindPSI, "n"},
		{map[string]string{"alertname": "KubeNodeNotReady", "instance": "10.1.2.3:9100"}, "kube_node_not_ready", "10.1.2.3"},
		{map[string]string{"alertname": "X", "instance": "host-a"}, "x", "host-a"},
		{map[string]string{"alertname": "NoNode"}, "no_node", ""},
	} {
		if k := m.kindOf(tc.labels); k != tc.kind {
			t.Errorf("kindOf(%v) = %q, want %q", tc.labels, k, tc.kind)
		}
		if n := m.nodeOf(tc.labels); n != tc.node {
			t.Errorf("nodeOf(%v) = %q, want %q", tc.labels, n, tc.node)
		}
	}
}

func TestHandler(t *testing.T) {
	ok := string(fixture(t, "irq_skew.json"))
	for _, tc := range []struct {
		name        string
		method      string
		ctype       string
		auth        string
		body        string
		token       string
		sinkErr     error
		maxAlerts   int
		wantCode    int
		wantBody    string
		wantSignals int
	}{
		{name: "ok", body: ok, wantCode: 200, wantBody: `{"status":"recorded","alerts":1}`, wantSignals: 1},
		{name: "ok with charset", ctype: "application/json; charset=utf-8", body: ok, wantCode: 200, wantSignals: 1},
		{name: "GET", method: "GET", wantCode: 405, wantBody: `{"error":"method GET not allowed, use POST"}`},
		{name: "wrong content type", ctype: "text/plain", body: ok, wantCode: 415,
			wantBody: `{"error":"content type \"text/plain\" not supported, use application/json"}`},
		{name: "malformed", body: `{"alerts":[`, wantCode: 400, wantBody: `{"error":"decode webhook: unexpected EOF"}`},
		{name: "empty", body: ``, wantCode: 400, wantBody: `{"error":"empty body"}`},
		{name: "no alerts", body: `{"version":"4","alerts":[]}`, wantCode: 400, wantBody: `{"error":"payload has no alerts"}`},
		{name: "version 3", body: `{"version":"3","alerts":[{}]}`, wantCode: 400,
			wantBody: `{"error":"unsupported webhook version \"3\" (want \"4\")"}`},
		{name: "trailing", body: ok + `{}`, wantCode: 400, wantBody: `{"error":"trailing data after JSON payload"}`},
		{name: "too large", body: `{"alerts":[` + strings.Repeat(`{},`, 400000) + `{}]}`, wantCode: 413,
			wantBody: `{"error":"body of 1200015 bytes exceeds the limit of 1048576"}`},
		{name: "no token", token: "s3cret", body: ok, wantCode: 401, wantBody: `{"error":"missing or invalid bearer token"}`},
		{name: "wrong token", token: "s3cret", auth: "Bearer nope", body: ok, wantCode: 401},
		{name: "right token", token: "s3cret", auth: "Bearer s3cret", body: ok, wantCode: 200, wantSignals: 1},
		{name: "lower-case bearer", token: "s3cret", auth: "bearer s3cret", body: ok, wantCode: 200, wantSignals: 1},
		{name: "no content type", ctype: "-", body: ok, wantCode: 415,
			wantBody: `{"error":"content type \"\" not supported, use application/json"}`},
		{name: "bad content type", ctype: "application/json; =", body: ok, wantCode: 415},
		{name: "too many alerts", maxAlerts: 2, body: `{"version":"4","alerts":[{},{},{}]}`, wantCode: 413,
			wantBody: `{"error":"3 alerts exceed the limit of 2 per webhook (set max_alerts in Alertmanager's webhook_configs)"}`},
		{name: "at the alert limit", maxAlerts: 1, body: ok, wantCode: 200, wantSignals: 1},
		{name: "not recorded", body: ok, sinkErr: errors.New("disk full"), wantCode: 503,
			wantBody: `{"error":"not recorded, retry: disk full"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordSink{fail: tc.sinkErr}
			h := NewHandler(Options{Sink: sink, BearerToken: tc.token, MaxAlerts: tc.maxAlerts})
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/webhooks/alertmanager", strings.NewReader(tc.body))
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (body %s)", rec.Code, tc.wantCode, rec.Body)
			}
			if tc.wantBody != "" && strings.TrimSpace(rec.Body.String()) != tc.wantBody {
				t.Fatalf("body = %s, want %s", rec.Body, tc.wantBody)
			}
			if len(sink.got) != tc.wantSignals {
				t.Fatalf("sink got %d signals, want %d", len(sink.got), tc.wantSignals)
			}
			if ra := rec.Header().Get("Retry-After"); (tc.wantCode == 503) != (ra != "") {
				t.Fatalf("Retry-After %q with %d", ra, tc.wantCode)
			}
		})
	}
}

// TestDefaultMaxAlerts: 8 MiB of alerts (172 MB of audit rows in the issue) is refused
// before anything is recorded.
func TestDefaultMaxAlerts(t *testing.T) {
	sink := &recordSink{}
	h := NewHandler(Options{Sink: sink, MaxBody: 8 << 20})
	body := `{"version":"4","alerts":[` + strings.Repeat(`{"labels":{"alertname":"A","node":"n"}},`, DefaultMaxAlerts) + `{}]}`
	req := httptest.NewRequest(http.MethodPost, "/webhooks/alertmanager", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || len(sink.got) != 0 || !strings.Contains(rec.Body.String(), "1001 alerts exceed the limit of 1000 per webhook") {
		t.Fatalf("%d %s, %d signals", rec.Code, rec.Body, len(sink.got))
	}
}

// TestPersonRaisingAnAlert: a person's token (Identify) admits the webhook and makes
// them the requester of every alert, whatever the alerts' labels claim; the webhook
// token leaves the labels as they are.
func TestPersonRaisingAnAlert(t *testing.T) {
	identify := func(tok string) (string, bool) {
		return map[string]string{"alice-token": "alice"}[tok], tok == "alice-token"
	}
	body := `{"version":"4","alerts":[{"labels":{"alertname":"NodeVMFreeze","node":"n1","remedy_requested_by":"bob"}},{"labels":{"alertname":"NodeVMFreeze","node":"n2"}}]}`
	for _, tc := range []struct {
		auth string
		code int
		want []string
	}{
		{"Bearer alice-token", 200, []string{"alice", "alice"}},
		{"Bearer hook-token", 200, []string{"bob", ""}},
		{"Bearer mallory", 401, nil},
	} {
		sink := &recordSink{}
		h := NewHandler(Options{Sink: sink, BearerToken: "hook-token", Identify: identify})
		req := httptest.NewRequest(http.MethodPost, "/webhooks/alertmanager", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", tc.auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var got []string
		for _, s := range sink.got {
			got = append(got, s.Labels[RequesterLabel])
		}
		if rec.Code != tc.code || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %d, requesters %q", tc.auth, rec.Code, got)
		}
	}
}

// A chunked body has no Content-Length: the limit must still hold while reading.
func TestHandlerChunkedTooLarge(t *testing.T) {
	sink := &recordSink{}
	srv := httptest.NewServer(NewHandler(Options{Sink: sink, MaxBody: 1024}))
	defer srv.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"alerts":[` + strings.Repeat(`{},`, 1000) + `{}]}`))
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || len(sink.got) != 0 {
		t.Fatalf("status %d, %d signals", resp.StatusCode, len(sink.got))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(fixture(f, "irq_skew.json"))
	f.Add(fixture(f, "psi.json"))
	f.Add([]byte(`{"version":"4","alerts":[{"labels":{"alertname":"A"}}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		msg, err := Decode(bytes.NewReader(in))
		if err != nil {
			return
		}
		sigs := DefaultMapping().Signals(msg)
		if len(sigs) != len(msg.Alerts) {
			t.Fatalf("%d alerts mapped to %d signals", len(msg.Alerts), len(sigs))
		}
		for _, s := range sigs {
			_ = s.Validate() // must not panic; invalid signals are recorded as rejected
			_ = s.Key()
		}
	})
}
