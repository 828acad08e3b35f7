package app_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/kube"
	"github.com/remedyhq/remedy/engine/natsauth"
	"github.com/remedyhq/remedy/test/kubeenv"
)

func minimalPolicyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "policies")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(freezePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// With NATSAuth the engine answers the external server's auth callout: an agent pod's
// token connects, a made-up one does not.
func TestEngineServesNATSAuthCallout(t *testing.T) {
	env := kubeenv.Require(t, kubeenv.Options{})
	kc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	issuer, _ := nkeys.CreateAccount()
	pub, _ := issuer.PublicKey()
	const pw = "engine-pw"
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users:       []*server.User{{Username: "engine", Password: pw}},
		AuthCallout: &server.AuthCallout{Issuer: pub, AuthUsers: []string{"engine"}}, AuthTimeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	natsURL := "nats://engine:" + url.QueryEscape(pw) + "@" + strings.TrimPrefix(ns.ClientURL(), "nats://")
	a, err := app.Start(ctx, app.Options{DataDir: t.TempDir(), PolicyDir: minimalPolicyDir(t), Listen: "127.0.0.1:0", NATSURL: natsURL,
		Kube:     &kube.Options{Config: env.Config, Identity: "engine-0"},
		NATSAuth: &app.NATSAuth{Issuer: issuer, Namespace: "remedy-system", ServiceAccount: "remedy-agent"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()

	if err := kubeenv.EnsureNamespace(ctx, kc, "remedy-system"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeenv.CreateNode(ctx, kc, "node-app", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeenv.CreateRunningPod(ctx, kc, kubeenv.PodSpec{Namespace: "remedy-system", Name: "agent-app", Node: "node-app", ServiceAccount: "remedy-agent"}); err != nil {
		t.Fatal(err)
	}
	tok, err := kubeenv.PodToken(ctx, kc, "remedy-system", "remedy-agent", "agent-app", natsauth.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL(), nats.Token(tok))
	if err != nil {
		t.Fatalf("agent token: %v", err)
	}
	nc.Close()
	if nc, err := nats.Connect(ns.ClientURL(), nats.Token("made-up"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("a made-up token connected")
	}
}

// The callout needs an external server and a cluster; without them Start says so.
func TestNATSAuthNeedsExternalNATSAndCluster(t *testing.T) {
	issuer, _ := nkeys.CreateAccount()
	na := &app.NATSAuth{Issuer: issuer, Namespace: "remedy-system", ServiceAccount: "remedy-agent"}
	_, err := app.Start(context.Background(), app.Options{DataDir: t.TempDir(), PolicyDir: minimalPolicyDir(t), Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", NATSAuth: na})
	const want = "nats auth callout: needs an external NATS server configured for it (--nats-url); the embedded one has no callout"
	if err == nil || err.Error() != want {
		t.Errorf("embedded NATS: %v; want %q", err, want)
	}
}
