package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/natsauth"
	"github.com/remedyhq/remedy/engine/transport"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/executors/signed"
	"github.com/remedyhq/remedy/test/kubeenv"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
)

func readSecret(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestNATSConfigParses: the cluster's nats.conf, with the generated users.conf beside it
// as the StatefulSet mounts it, is a configuration nats-server accepts.
func TestNATSConfigParses(t *testing.T) {
	root := tree(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join(root, "components/nats/nats.conf"), filepath.Join(dir, "nats.conf"))
	copyFile(t, filepath.Join(root, "overlays/ha/secrets/nats-users.conf"), filepath.Join(dir, "auth", "users.conf"))
	t.Setenv("POD_NAME", "remedy-nats-0")
	t.Setenv("NATS_ENGINE_PASSWORD", readSecret(t, root, "overlays/ha/secrets/nats-engine-password"))
	routePW := readSecret(t, root, "overlays/ha/secrets/nats-route-password")
	t.Setenv("NATS_ROUTE_PASSWORD", routePW)
	o, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if o.ServerName != "remedy-nats-0" || !o.JetStream || o.Cluster.Name != "remedy" || o.Cluster.Port != 6222 {
		t.Errorf("server %q jetstream %v cluster %q port %d; want remedy-nats-0, true, remedy, 6222", o.ServerName, o.JetStream, o.Cluster.Name, o.Cluster.Port)
	}
	if o.Cluster.Username != "route" || o.Cluster.Password != routePW {
		t.Errorf("cluster routes authenticate as %q (password from the environment: %v); want route", o.Cluster.Username, o.Cluster.Password == routePW)
	}
	if len(o.Users) != 1 || o.Users[0].Username != "engine" || o.Users[0].Password == "" || strings.HasPrefix(o.Users[0].Password, "$") {
		t.Errorf("users %+v; want only the engine, its password from the environment", o.Users)
	}
	issuer, err := natsauth.LoadIssuer([]byte(readSecret(t, root, "overlays/ha/secrets/nats-callout.nk")))
	if err != nil {
		t.Fatalf("gen-secrets.sh's callout key: %v", err)
	}
	pub, _ := issuer.PublicKey()
	if ac := o.AuthCallout; ac == nil || ac.Issuer != pub || !slices.Equal(ac.AuthUsers, []string{"engine"}) {
		t.Errorf("auth_callout %+v; want issuer %s (the public half of nats-callout.nk), auth_users [engine]", ac, pub)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestNATSAgentsProveTheirNode runs a real nats-server with the configuration
// gen-secrets.sh wrote, the engine's auth callout with the generated key reviewing tokens
// on the real kube-apiserver, and the real agent of node-a connecting as the ha
// DaemonSet does (its pod's projected token): the agent receives and answers an action
// signed with the generated key, node-a's token can neither read node-b's actions nor
// speak for node-b nor forge actions, and node-b, which joins afterwards, is let in with
// nothing re-generated.
func TestNATSAgentsProveTheirNode(t *testing.T) {
	root := tree(t)
	enginePW := readSecret(t, root, "overlays/ha/secrets/nats-engine-password")
	t.Setenv("NATS_ENGINE_PASSWORD", enginePW)
	issuer, err := natsauth.LoadIssuer([]byte(readSecret(t, root, "overlays/ha/secrets/nats-callout.nk")))
	if err != nil {
		t.Fatal(err)
	}
	ke := kenv.Get(t)
	kc, err := kubernetes.NewForConfig(ke.Config)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	copyFile(t, filepath.Join(root, "overlays/ha/secrets/nats-users.conf"), filepath.Join(dir, "users.conf"))
	conf := fmt.Sprintf("host: 127.0.0.1\nport: -1\njetstream { store_dir: %q }\ninclude ./users.conf\n", filepath.Join(dir, "js"))
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The engine: streams, the auth callout, and an action for node-a signed with the
	// generated key.
	enc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("engine", enginePW))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ejs, err := jetstream.New(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, ejs, 1); err != nil {
		t.Fatal(err)
	}
	const agentNS, agentSA = "remedy-system", "remedy-agent" // base/agent.yaml
	svc, err := natsauth.Start(enc, natsauth.Options{Issuer: issuer,
		Reviewer: natsauth.KubeReviewer{Client: kc, Namespace: agentNS, ServiceAccount: agentSA, Audience: "remedy-nats"}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	key, err := signed.LoadPrivateKey(filepath.Join(root, "base/secrets/dispatch.key"))
	if err != nil {
		t.Fatalf("gen-secrets.sh's signing key: %v", err)
	}
	pub, err := signed.LoadPublicKey(filepath.Join(root, "base/secrets/dispatch.pub"))
	if err != nil {
		t.Fatalf("gen-secrets.sh's verify key: %v", err)
	}
	// podToken: the token the kubelet projects into an agent pod on node (overlays/ha/agent.yaml).
	podToken := func(node string) string {
		t.Helper()
		if err := kubeenv.EnsureNamespace(ctx, kc, agentNS); err != nil {
			t.Fatal(err)
		}
		if _, err := kubeenv.CreateNode(ctx, kc, node, nil); err != nil {
			t.Fatal(err)
		}
		pod := "remedy-agent-" + strings.ReplaceAll(node, ".", "-")
		if _, err := kubeenv.CreateRunningPod(ctx, kc, kubeenv.PodSpec{Namespace: agentNS, Name: pod, Node: node, ServiceAccount: agentSA}); err != nil {
			t.Fatal(err)
		}
		tok, err := kubeenv.PodToken(ctx, kc, agentNS, agentSA, pod, "remedy-nats")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tokA := podToken(nodeA)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tokA), 0o600); err != nil {
		t.Fatal(err)
	}

	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: t.TempDir()})...); err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- agent.Run(actx, agent.Options{
			Node:          nodeA,
			NATSURL:       ns.ClientURL(),
			NATSTokenFile: tokenFile,
			StateDir:      t.TempDir(),
			Registry:      reg,
			VerifyKey:     pub,
			Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	}()
	defer func() {
		stopAgent()
		select {
		case err := <-agentDone:
			if err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "context canceled") {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	}()

	params, _ := json.Marshal(map[string]any{"key": "net.core.netdev_max_backlog", "value": 8192})
	req := executors.Request{ID: "deploy-test-1", Action: "sysctl.set", Node: nodeA, Params: params, DryRun: true,
		CorrelationID: "deploy-test", Deadline: time.Now().Add(time.Minute)}
	if err := (transport.Dispatcher{JS: ejs, Key: key}).Dispatch(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := testenv.NextResult(t, ctx, ejs, nodeA); got.ID != req.ID || got.Status == executors.Refused {
		t.Fatalf("result %s %s: %s; want %s, not refused (the generated key pair must verify)", got.ID, got.Status, got.Message, req.ID)
	}

	// node-a's token, used directly.
	onErr, errs := testenv.AsyncErrors()
	nc, err := nats.Connect(ns.ClientURL(), nats.Token(tokA), onErr, nats.CustomInboxPrefix(bus.AgentInboxPrefix(nodeA)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "remedy.signals.node-a_ec2_internal.irq_skew", []byte(`{}`)); err != nil {
		t.Errorf("node-a may publish its own signals: %v", err)
	}
	for _, subj := range []string{
		"remedy.actions.node-b",              // forge an action
		"remedy.actions.node-a_ec2_internal", // ... even for itself
		"remedy.results.node-b",              // speak for another node
		"remedy.signals.node-b.irq_skew",     //
		"$JS.API.CONSUMER.CREATE.REMEDY_ACTIONS.agent-node-b.remedy.actions.node-b",              // read node-b's actions
		"$JS.API.CONSUMER.CREATE.REMEDY_ACTIONS.agent-node-a_ec2_internal.remedy.actions.node-b", // ... through its own consumer
		"$JS.API.CONSUMER.CREATE.REMEDY_ACTIONS.agent-node-a_ec2_internal",                       // ... with the filter in the body
		"$JS.API.CONSUMER.MSG.NEXT.REMEDY_ACTIONS.agent-node-b",
		"$JS.API.CONSUMER.DELETE.REMEDY_ACTIONS.agent-node-b", // delete another node's consumer
		"$JS.API.STREAM.PURGE.REMEDY_ACTIONS",
		"$JS.API.STREAM.DELETE.REMEDY_RESULTS",
		natsauth.Subject, // answer another agent's authorization
	} {
		testenv.Denied(t, nc, errs, "publish to", subj, func() error { return nc.Publish(subj, []byte(`{}`)) })
	}
	for _, subj := range []string{"remedy.actions.node-b", "_INBOX.>", bus.AgentInboxPrefix("node-b") + ".>"} {
		testenv.Denied(t, nc, errs, "subscribe to", subj, func() error {
			_, err := nc.Subscribe(subj, func(*nats.Msg) {})
			return err
		})
	}
	if _, err := ejs.Consumer(ctx, bus.StreamActions, bus.AgentConsumer("node-b")); err == nil {
		t.Error("a consumer for node-b exists: node-a created it")
	}
	if c, err := nats.Connect(ns.ClientURL(), nats.Token("not-a-token")); err == nil {
		c.Close()
		t.Error("connected with a made-up token")
	}

	// node-b joins now: its agent's token is let in for node-b, no file changed.
	nb, err := nats.Connect(ns.ClientURL(), nats.Token(podToken("node-b")))
	if err != nil {
		t.Fatalf("node-b, joined after the engine started: %v", err)
	}
	defer nb.Close()
	if _, err := nb.SubscribeSync(bus.ActionSubject("node-b")); err != nil {
		t.Fatal(err)
	}
	if err := nb.Flush(); err != nil || nb.LastError() != nil {
		t.Fatalf("node-b subscribing to its actions: %v %v", err, nb.LastError())
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
