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

	tok := agentToken(t, ctx, kc, "node-app")
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

// On the embedded server the engine configures the callout itself: an agent pod's token
// connects to its client port, a made-up token and a password-less client do not.
func TestEmbeddedNATSWithAuthCallout(t *testing.T) {
	env := kubeenv.Require(t, kubeenv.Options{})
	kc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	issuer, _ := nkeys.CreateAccount()
	a, err := app.Start(ctx, app.Options{DataDir: t.TempDir(), PolicyDir: minimalPolicyDir(t), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1",
		Kube:     &kube.Options{Config: env.Config, Identity: "engine-0"},
		NATSAuth: &app.NATSAuth{Issuer: issuer, Namespace: "remedy-system", ServiceAccount: "remedy-agent"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	tok := agentToken(t, ctx, kc, "node-embedded")
	nc, err := nats.Connect(a.NATSURL(), nats.Token(tok))
	if err != nil {
		t.Fatalf("agent token: %v", err)
	}
	nc.Close()
	for _, opt := range []nats.Option{nats.Token("made-up"), nats.UserInfo("engine", "guess")} {
		if nc, err := nats.Connect(a.NATSURL(), opt, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Error("connected without an agent token")
		}
	}
}

// Without a cluster to review tokens with, Start refuses the callout.
func TestNATSAuthNeedsACluster(t *testing.T) {
	issuer, _ := nkeys.CreateAccount()
	_, err := app.Start(context.Background(), app.Options{DataDir: t.TempDir(), PolicyDir: minimalPolicyDir(t), Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", NATSAuth: &app.NATSAuth{Issuer: issuer, Namespace: "remedy-system", ServiceAccount: "remedy-agent"}})
	const want = "nats auth callout: needs the Kubernetes API for token reviews (--kubeconfig or --in-cluster)"
	if err == nil || err.Error() != want {
		t.Errorf("no cluster: %v; want %q", err, want)
	}
}

// agentToken creates node and an agent pod on it and returns the pod's projected token.
func agentToken(t *testing.T, ctx context.Context, kc kubernetes.Interface, node string) string {
	t.Helper()
	if err := kubeenv.EnsureNamespace(ctx, kc, "remedy-system"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeenv.CreateNode(ctx, kc, node, nil); err != nil {
		t.Fatal(err)
	}
	pod := "agent-" + node
	if _, err := kubeenv.CreateRunningPod(ctx, kc, kubeenv.PodSpec{Namespace: "remedy-system", Name: pod, Node: node, ServiceAccount: "remedy-agent"}); err != nil {
		t.Fatal(err)
	}
	tok, err := kubeenv.PodToken(ctx, kc, "remedy-system", "remedy-agent", pod, natsauth.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
