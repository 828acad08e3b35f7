package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/webhooks/mtls"
)

// auditEngine serves the audit API of a SQLite store holding one incident.
func auditEngine(t *testing.T, keys audit.Signer) (url, dbPath string, st audit.Log) {
	t.Helper()
	dbPath = filepath.Join(t.TempDir(), "audit.db")
	st, err := sqlite.Open(dbPath, audit.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	inc := func(d time.Duration, typ audit.Type, actor, outcome string) audit.Event {
		return audit.Event{Time: at.Add(d), Type: typ, CorrelationID: "inc-1", Node: "worker-3", Kind: "irq_skew",
			Action: "irq.spread", Actor: actor, Outcome: outcome, PolicyRev: "abc123"}
	}
	if _, err := st.Append(context.Background(),
		inc(0, audit.SignalReceived, audit.ActorAgent, ""),
		inc(80*time.Millisecond, audit.Decision, audit.ActorEngine, "act"),
		inc(2*time.Minute, audit.ApprovalGranted, "user:alice", audit.OutcomeOK),
		inc(2*time.Minute+time.Second, audit.ActionResult, audit.ActorAgent, audit.OutcomeOK),
		inc(3*time.Minute, audit.Verification, audit.ActorEngine, audit.OutcomeFixed),
		audit.Event{Time: at.Add(time.Hour), Type: audit.Paused, Actor: "user:bob"},
	); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(api.Options{Webhook: http.NotFoundHandler(), Store: st}))
	t.Cleanup(srv.Close)
	return srv.URL, dbPath, st
}

func runCLI(args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), err
}

func TestAuditQueryShow(t *testing.T) {
	url, _, _ := auditEngine(t, nil)
	for _, tc := range []struct {
		args []string
		want []string // lines the output must contain
		err  string
	}{
		{[]string{"audit", "query", "--server", url, "--actor", "user:alice", "-o", "jsonl"},
			[]string{`"seq":3`, `"actor":"user:alice"`}, ""},
		{[]string{"audit", "query", "--server", url, "--type", "verification"},
			[]string{"SEQ", "verification", "fixed"}, ""},
		{[]string{"audit", "query", "--server", url, "-o", "yaml", "--type", "verification"}, []string{"- action: irq.spread", "  outcome: fixed"}, ""},
		{[]string{"audit", "query", "--server", url, "-o", "xml"}, nil, `invalid argument "xml" for "-o, --output" flag: "xml": use table, json, yaml, jsonl`},
		{[]string{"audit", "query", "--server", url, "-o", "json", "--follow"}, nil, `-o json cannot follow: use table or jsonl`},
		{[]string{"audit", "show", "--server", url, "inc-1"}, []string{
			"incident inc-1  node worker-3  kind irq_skew  policy abc123",
			"+80ms", "approval.granted", "user:alice", "+3m0s", "verification"}, ""},
		{[]string{"audit", "show", "inc-2", "--server", url}, nil, `no audit events for correlation id "inc-2"`},
		{[]string{"audit", "show", "--server", url}, nil, "accepts 1 arg(s), received 0"},
		{[]string{"audit", "frobnicate"}, nil, `unknown command "frobnicate" for "remedy audit"`},
	} {
		out, err := runCLI(tc.args...)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err = %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v\n%s", tc.args, err, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

func TestAuditVerifyAndExport(t *testing.T) {
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	keys := audit.NewEd25519Signer(ed25519.NewKeyFromSeed(seed))
	url, dbPath, st := auditEngine(t, keys)
	if _, err := st.Retain(context.Background(), time.Date(2026, 11, 26, 1, 1, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("audit", "verify", "--server", url)
	if err != nil || !strings.HasPrefix(out, "intact: 5 rows, seq 3..7, head ") ||
		!strings.Contains(out, "rows 1..2 removed by retention (before 2026-11-26T01:01:00Z), checkpoint signed by "+keys.KeyID()) {
		t.Fatalf("verify = %v\n%s", err, out)
	}
	// An export verifies offline with the public key alone.
	dir := t.TempDir()
	export := filepath.Join(dir, "audit.jsonl")
	if out, err := runCLI("audit", "export", "--server", url, "--out-file", export); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	pub := filepath.Join(dir, "audit.pub")
	if err := os.WriteFile(pub, []byte(audit.PublicKey(keys)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("audit", "verify", "--export-file", export, "--key-file", pub); err != nil || !strings.HasPrefix(out, "intact: 5 rows") {
		t.Fatalf("verify export = %v\n%s", err, out)
	}
	// The old flag name still works.
	if out, err := runCLI("audit", "verify", "--file", export, "--key-file", pub); err != nil || !strings.HasPrefix(out, "intact: 5 rows") {
		t.Fatalf("verify --file = %v\n%s", err, out)
	}
	// The SQLite file verifies offline, without an engine, and is not written to.
	before, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("audit", "verify", "--db", dbPath, "--key-file", pub); err != nil || !strings.HasPrefix(out, "intact: 5 rows, seq 3..7") {
		t.Fatalf("verify --db = %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(dbPath); !bytes.Equal(before, after) {
		t.Error("verify --db changed the database file")
	}
	out, err = runCLI("audit", "verify", "--db", dbPath, "--key-file", pub, "-o", "json")
	var rep audit.VerifyReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Rows != 5 || rep.Checkpoint == nil {
		t.Fatalf("verify --db -o json = %v\n%s", err, out)
	}
	missing := filepath.Join(dir, "missing.db")
	if _, err := runCLI("audit", "verify", "--db", missing); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("verify --db of a missing file: err = %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Error("verify --db created the missing file")
	}
	if _, err := runCLI("audit", "verify", "--db", pub); err == nil {
		t.Error("verify --db of a key file: no error")
	}
	// Without the key the checkpoint cannot vouch for the removed rows.
	out, err = runCLI("audit", "verify", "--file", export)
	if !errors.Is(err, errChainBroken) || out != "BROKEN at seq 3: rows 1..2 were removed and their checkpoint (seq 7) cannot vouch for them: "+
		"checkpoint signature cannot be checked: no key configured (4 rows checked)\n" {
		t.Fatalf("verify export without key = %v\n%s", err, out)
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_events SET outcome = 'ok' WHERE seq = 5`); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI("audit", "verify", "--server", url)
	if !errors.Is(err, errChainBroken) || out != "BROKEN at seq 5: content does not match its hash (row edited) (2 rows checked)\n" {
		t.Fatalf("verify after edit = %v\n%s", err, out)
	}
	out, err = runCLI("audit", "verify", "--db", dbPath, "--key-file", pub)
	if !errors.Is(err, errChainBroken) || out != "BROKEN at seq 5: content does not match its hash (row edited) (2 rows checked)\n" {
		t.Fatalf("verify --db after edit = %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("ed25519:"+base64.StdEncoding.EncodeToString([]byte("short"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI("audit", "verify", "--file", export, "--key-file", bad); err == nil || !errors.Is(err, audit.ErrBadKey) {
		t.Fatalf("verify with a bad key: err = %v", err)
	}
}

func TestAuditFollow(t *testing.T) {
	url, _, st := auditEngine(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"audit", "query", "--server", url, "--follow", "--interval", "20ms", "--limit", "2", "-o", "jsonl"}, &out, &out)
	}()
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 2 })
	if _, err := st.Append(context.Background(), audit.Event{Type: audit.Resumed, Actor: "user:bob"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, want := range []string{`"seq":5`, `"seq":6`, `"seq":7`} {
		if !strings.Contains(lines[i], want) {
			t.Fatalf("line %d = %s, want %s", i, lines[i], want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The CLI reaches an engine that serves https and requires client certificates
// (serve --tls-cert --tls-key --tls-client-ca) with --tls-ca, --tls-cert and --tls-key.
func TestCLIOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testenv.NewCA(t, "server-ca"), testenv.NewCA(t, "operator-ca")
	scert, skey := serverCA.Issue(t, "remedy", true)
	ccert, ckey := clientCA.Issue(t, "alice", false)
	cfg, err := mtls.ServerConfig(mtls.Files{
		Cert:     testenv.WriteFile(t, filepath.Join(dir, "tls.crt"), scert),
		Key:      testenv.WriteFile(t, filepath.Join(dir, "tls.key"), skey),
		ClientCA: testenv.WriteFile(t, filepath.Join(dir, "client-ca.crt"), clientCA.PEM),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, st := auditEngine(t, nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Handler(api.Options{Webhook: http.NotFoundHandler(), Store: st}), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln) //nolint:errcheck // closed below
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String()
	ca := testenv.WriteFile(t, filepath.Join(dir, "ca.crt"), serverCA.PEM)
	cert := testenv.WriteFile(t, filepath.Join(dir, "alice.crt"), ccert)
	key := testenv.WriteFile(t, filepath.Join(dir, "alice.key"), ckey)

	out, err := runCLI("audit", "show", "--server", url, "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "inc-1") // the old names still work
	if err != nil || !strings.Contains(out, "incident inc-1") {
		t.Fatalf("with the client certificate: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-ca-file", ca}, "certificate required"},             // no client certificate: refused in the handshake
		{[]string{"--tls-cert-file", cert, "--tls-key-file", key}, "x509:"}, // the engine's CA not trusted
		{[]string{"--tls-ca-file", ca, "--tls-cert-file", cert}, "--tls-cert-file and --tls-key-file go together"},
		{[]string{"--tls-ca-file", filepath.Join(dir, "nope.crt")}, "--tls-ca-file: open"},
	} {
		out, err := runCLI(append([]string{"audit", "show", "--server", url, "inc-1"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to mention %q\n%s", tc.args, err, tc.want, out)
		}
	}
}
