package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/transport"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/executors/signed"
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
	t.Setenv("NATS_AGENT_PASSWORD", readSecret(t, root, "overlays/ha/secrets/nats-agent-password"))
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
	if got := len(o.Users); got != 1+len(testNodes) {
		t.Errorf("%d users, want the engine and %d nodes", got, len(testNodes))
	}
	for _, u := range o.Users {
		if u.Password == "" || strings.HasPrefix(u.Password, "$") {
			t.Errorf("user %s: password not taken from the environment (%q)", u.Username, u.Password)
		}
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

// TestNATSPerNodePermissions runs a real nats-server with the users gen-secrets.sh wrote
// and the real agent of node-a: the agent receives and answers an action signed with the
// generated key, and node-a's credentials can neither read node-b's actions nor speak
// for node-b nor forge actions.
func TestNATSPerNodePermissions(t *testing.T) {
	root := tree(t)
	enginePW := readSecret(t, root, "overlays/ha/secrets/nats-engine-password")
	agentPW := readSecret(t, root, "overlays/ha/secrets/nats-agent-password")
	t.Setenv("NATS_ENGINE_PASSWORD", enginePW)
	t.Setenv("NATS_AGENT_PASSWORD", agentPW)

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
	addr := strings.TrimPrefix(ns.ClientURL(), "nats://")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The engine: streams, and an action for node-a signed with the generated key.
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
	key, err := signed.LoadPrivateKey(filepath.Join(root, "base/secrets/dispatch.key"))
	if err != nil {
		t.Fatalf("gen-secrets.sh's signing key: %v", err)
	}
	pub, err := signed.LoadPublicKey(filepath.Join(root, "base/secrets/dispatch.pub"))
	if err != nil {
		t.Fatalf("gen-secrets.sh's verify key: %v", err)
	}

	// node-a's agent, connected as the DaemonSet connects (user = node name).
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: t.TempDir()})...); err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- agent.Run(actx, agent.Options{
			Node:      nodeA,
			NATSURL:   "nats://" + nodeA + ":" + url.QueryEscape(agentPW) + "@" + addr,
			StateDir:  t.TempDir(),
			Registry:  reg,
			VerifyKey: pub,
			Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
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
	cons, err := ejs.CreateOrUpdateConsumer(ctx, bus.StreamResults, jetstream.ConsumerConfig{
		FilterSubject: bus.ResultSubject(nodeA), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got *executors.Result
	for m := range batch.Messages() {
		var r executors.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatalf("result: %v: %s", err, m.Data())
		}
		got = &r
	}
	if got == nil {
		t.Fatalf("no result from node-a's agent within 30s (its consumer, fetch, ack or result publish was refused?) %v", batch.Error())
	}
	if got.ID != req.ID || got.Status == executors.Refused {
		t.Fatalf("result %s %s: %s; want %s, not refused (the generated key pair must verify)", got.ID, got.Status, got.Message, req.ID)
	}

	// node-a's credentials, used directly.
	errs := make(chan error, 32)
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(nodeA, agentPW),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
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
	denied := func(op, subject string, do func() error) {
		t.Helper()
		if err := do(); err != nil {
			if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				return
			}
			t.Fatalf("%s %s: %v", op, subject, err)
		}
		_ = nc.Flush()
		deadline := time.After(3 * time.Second)
		for {
			select {
			case err := <-errs:
				s := strings.ToLower(err.Error())
				if strings.Contains(s, "permissions violation") && strings.Contains(s, strings.ToLower(subject)) {
					return
				}
			case <-deadline:
				t.Errorf("node-a could %s %s", op, subject)
				return
			}
		}
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
	} {
		denied("publish to", subj, func() error { return nc.Publish(subj, []byte(`{}`)) })
	}
	denied("subscribe to", "remedy.actions.node-b", func() error {
		_, err := nc.Subscribe("remedy.actions.node-b", func(*nats.Msg) {})
		return err
	})
	if _, err := ejs.Consumer(ctx, bus.StreamActions, bus.AgentConsumer("node-b")); err == nil {
		t.Error("a consumer for node-b exists: node-a created it")
	}
	if c, err := nats.Connect(ns.ClientURL(), nats.UserInfo(nodeA, "wrong")); err == nil {
		c.Close()
		t.Error("node-a connected with a wrong password")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
