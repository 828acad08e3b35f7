// Package mtls_test runs the engine behind webhooks/mtls: a real Alertmanager and real
// clients over mutual TLS, refusals in the handshake, and certificates reloaded on change.
package mtls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/webhooks/mtls"
)

// client trusts serverCA and presents the given client certificate (none if nil).
func client(t *testing.T, serverCA *testenv.CA, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Presented whatever CAs the server names, so that the server's verification
		// (not the client's choice) is what refuses a foreign certificate.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// TestMutualTLSWebhook serves a real engine with --tls-cert, --tls-key, --tls-client-ca
// and a webhook token: a client without a certificate, or with one from another CA, is
// refused in the handshake and nothing reaches the audit log; the right certificate
// without the token gets 401; with both the alert is recorded.
func TestMutualTLSWebhook(t *testing.T) {
	testenv.Heavy(t)
	dir := t.TempDir()
	const token = "mtls-test-token"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, serverCA, clientCA := startTLSEngine(ctx, t, dir, token)
	otherCA := testenv.NewCA(t, "intruder-ca")
	if got := a.URL(); got != "https://"+a.Addr() {
		t.Fatalf("URL %s, want https", got)
	}
	body, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "engine", "demo", "samples", "irq_skew.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(c *http.Client, tok string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL()+"/webhooks/alertmanager", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	signals := func() int {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.SignalReceived})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}

	if code, err := post(client(t, serverCA, nil, nil), token); err == nil {
		t.Fatalf("no client certificate: answered %d, want a refused handshake", code)
	} else {
		t.Logf("no client certificate: %v", err)
	}
	ocert, okey := otherCA.Issue(t, "intruder", false)
	if code, err := post(client(t, serverCA, ocert, okey), token); err == nil {
		t.Fatalf("certificate of another CA: answered %d, want a refused handshake", code)
	} else {
		t.Logf("certificate of another CA: %v", err)
	}
	// A server certificate of the right CA is not a client certificate either.
	ccert, ckey := clientCA.Issue(t, "alertmanager", false)
	good := client(t, serverCA, ccert, ckey)
	if code, err := post(good, ""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("right certificate, no token: %d %v, want 401", code, err)
	}
	if n := signals(); n != 0 {
		t.Fatalf("%d signals recorded from refused requests", n)
	}
	if code, err := post(good, token); err != nil || code != http.StatusOK {
		t.Fatalf("right certificate and token: %d %v, want 200", code, err)
	}
	if n := signals(); n != 1 {
		t.Fatalf("%d signals recorded, want 1", n)
	}
}

// TestReloadsChangedFiles rotates the server certificate and the client CA on disk: the
// next handshake serves the new certificate and accepts only the new CA's clients; a
// broken file keeps the last good configuration.
func TestReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2, cca1, cca2 := testenv.NewCA(t, "s1"), testenv.NewCA(t, "s2"), testenv.NewCA(t, "c1"), testenv.NewCA(t, "c2")
	files := mtls.Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	installs := 0
	install := func(server, clients *testenv.CA) {
		installs++
		c, k := server.Issue(t, "remedy", true)
		testenv.WriteFile(t, files.Cert, c)
		testenv.WriteFile(t, files.Key, k)
		testenv.WriteFile(t, files.ClientCA, clients.PEM)
		// Make the change visible even on a file system with coarse timestamps.
		later := time.Now().Add(time.Duration(installs) * time.Second)
		for _, p := range []string{files.Cert, files.Key, files.ClientCA} {
			if err := os.Chtimes(p, later, later); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(ca1, cca1)
	cfg, err := mtls.ServerConfig(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // closed at the end
	defer srv.Close()
	url := "https://" + ln.Addr().String() + "/"
	get := func(server, clients *testenv.CA) error {
		c, k := clients.Issue(t, "am", false)
		cl := client(t, server, c, k)
		defer cl.CloseIdleConnections()
		resp, err := cl.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(ca1, cca1); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	install(ca2, cca2)
	if err := get(ca1, cca1); err == nil {
		t.Fatal("after rotation the old server certificate and client CA still work")
	}
	if err := get(ca2, cca2); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	testenv.WriteFile(t, files.Cert, []byte("not a certificate"))
	if err := os.Chtimes(files.Cert, time.Now().Add(time.Hour), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := get(ca2, cca2); err != nil {
		t.Fatalf("a broken file replaced the working configuration: %v", err)
	}
}

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := mtls.ServerConfig(mtls.Files{ClientCA: "x"}, nil); err == nil {
		t.Fatal("a client CA without a certificate was accepted")
	}
	c, k := testenv.NewCA(t, "s").Issue(t, "remedy", true)
	files := mtls.Files{Cert: testenv.WriteFile(t, filepath.Join(dir, "c"), c), Key: testenv.WriteFile(t, filepath.Join(dir, "k"), k),
		ClientCA: testenv.WriteFile(t, filepath.Join(dir, "ca"), []byte("garbage"))}
	if _, err := mtls.ServerConfig(files, nil); err == nil {
		t.Fatal("a client CA file without certificates was accepted")
	}
	files.ClientCA = ""
	if _, err := mtls.ServerConfig(files, nil); err != nil {
		t.Fatalf("server-only TLS: %v", err)
	}
}

// TestAlertmanagerDeliversOverMutualTLS runs a real Alertmanager whose webhook_config
// carries the http_config of README's "Mutual TLS" snippet (tls_config with ca_file,
// cert_file, key_file, and the bearer token): a pushed alert reaches the audit log.
func TestAlertmanagerDeliversOverMutualTLS(t *testing.T) {
	testenv.Heavy(t)
	bin := testenv.LookPath(t, "prometheus-alertmanager", "apt-get install prometheus-alertmanager")
	dir := t.TempDir()
	const token = "am-mtls-token"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, serverCA, clientCA := startTLSEngine(ctx, t, dir, token)
	ccert, ckey := clientCA.Issue(t, "alertmanager", false)

	amDir := filepath.Join(dir, "am")
	if err := os.MkdirAll(amDir, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, filepath.Join(amDir, "remedy-ca.crt"), serverCA.PEM)
	testenv.WriteFile(t, filepath.Join(amDir, "client.crt"), ccert)
	testenv.WriteFile(t, filepath.Join(amDir, "client.key"), ckey)
	testenv.WriteFile(t, filepath.Join(amDir, "remedy-token"), []byte(token))
	cfg := `route:
  receiver: remedy
  group_by: [alertname, node]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: remedy
    webhook_configs:
      - url: ` + a.URL() + `/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials_file: ` + filepath.Join(amDir, "remedy-token") + `
          tls_config:
            ca_file: ` + filepath.Join(amDir, "remedy-ca.crt") + `
            cert_file: ` + filepath.Join(amDir, "client.crt") + `
            key_file: ` + filepath.Join(amDir, "client.key") + `
`
	testenv.WriteFile(t, filepath.Join(amDir, "am.yml"), []byte(cfg))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(amDir, "am.yml"), "--storage.path="+filepath.Join(amDir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--web.external-url=http://"+addr, "--log.level=warn")
	var logs testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", logs.String())
		}
	}()
	am := &testenv.Alertmanager{URL: "http://" + addr}
	testenv.Eventually(t, 15*time.Second, "alertmanager ready", func() bool {
		resp, err := http.Get(am.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err := am.Push(ctx, testenv.Alert{Labels: map[string]string{"alertname": "NodeIRQSkew", "node": "node-mtls",
		"remedy_kind": "irq_skew"}, Annotations: map[string]string{"value": "0.25"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the alert recorded over mTLS", func() bool {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.SignalReceived, Node: "node-mtls"})
		return err == nil && len(evs) == 1
	})
}

// startTLSEngine starts an engine serving TLS with a server certificate of a new CA and
// requiring client certificates of another (returned), with a webhook token; it stops
// with the test.
func startTLSEngine(ctx context.Context, t *testing.T, dir, token string) (a *app.App, serverCA, clientCA *testenv.CA) {
	t.Helper()
	serverCA, clientCA = testenv.NewCA(t, "server-ca"), testenv.NewCA(t, "alertmanager-ca")
	scert, skey := serverCA.Issue(t, "remedy", true)
	files := mtls.Files{
		Cert:     testenv.WriteFile(t, filepath.Join(dir, "tls.crt"), scert),
		Key:      testenv.WriteFile(t, filepath.Join(dir, "tls.key"), skey),
		ClientCA: testenv.WriteFile(t, filepath.Join(dir, "client-ca.crt"), clientCA.PEM),
	}
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "data"), PolicyDir: filepath.Join(testenv.RepoRoot(), "policies"),
		Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", DryRun: true, WebhookToken: token, TLS: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a, serverCA, clientCA
}
