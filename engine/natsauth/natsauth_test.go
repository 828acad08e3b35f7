package natsauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/natsauth"
	"github.com/remedyhq/remedy/engine/transport"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/test/kubeenv"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
)

var kenv kubeenv.Shared

func TestMain(m *testing.M) { os.Exit(kenv.Run(m)) }

const (
	ns       = "remedy-system"
	agentSA  = "remedy-agent"
	audience = natsauth.DefaultAudience
)

// env is a real kube-apiserver, a real nats-server configured for auth callout (the
// engine its one auth user), and the callout service on the engine's connection.
type env struct {
	ctx  context.Context
	kube kubernetes.Interface
	srv  *server.Server
	js   jetstream.JetStream // the engine's
}

func start(t testing.TB) *env { return startWith(t, func(o *natsauth.Options) {}) }

// startWith starts an env whose callout options edit may change.
func startWith(t testing.TB, edit func(*natsauth.Options)) *env {
	t.Helper()
	ke := kenv.Get(t)
	kc, err := kubernetes.NewForConfig(ke.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := kubeenv.EnsureNamespace(ctx, kc, ns); err != nil {
		t.Fatal(err)
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := issuer.PublicKey()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users:       []*server.User{{Username: "engine", Password: "engine-pw"}},
		AuthCallout: &server.AuthCallout{Issuer: pub, AuthUsers: []string{"engine"}},
		AuthTimeout: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	enc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("engine", "engine-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(enc.Close)
	js, _ := jetstream.New(enc)
	if err := bus.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	o := natsauth.Options{
		Issuer:   issuer,
		Reviewer: natsauth.KubeReviewer{Client: kc, Namespace: ns, ServiceAccount: agentSA},
	}
	edit(&o)
	svc, err := natsauth.Start(enc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	return &env{ctx: ctx, kube: kc, srv: srv, js: js}
}

// agentPod creates a node (unless it exists) and an agent pod on it, and returns the
// pod's projected token for audience.
func (e *env) agentPod(t testing.TB, namespace, sa, node, aud string) string {
	t.Helper()
	if _, err := kubeenv.CreateNode(e.ctx, e.kube, node, nil); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	if err := kubeenv.EnsureNamespace(e.ctx, e.kube, namespace); err != nil {
		t.Fatal(err)
	}
	pod := "agent-" + strings.NewReplacer(".", "-", "_", "-").Replace(node) + "-" + sa
	if _, err := kubeenv.CreateRunningPod(e.ctx, e.kube, kubeenv.PodSpec{Namespace: namespace, Name: pod, Node: node, ServiceAccount: sa}); err != nil &&
		!strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	tok, err := kubeenv.PodToken(e.ctx, e.kube, namespace, sa, pod, aud)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// connect connects with a token.
func (e *env) connect(token string, opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(e.srv.ClientURL(), append([]nats.Option{nats.Token(token), nats.MaxReconnects(0)}, opts...)...)
}

// The token of an agent pod on node X (an EKS-style name) gets a user confined to X's
// subjects: the real agent, connecting with the token file, receives and answers an
// action for X, and the same token can neither read nor speak for node Y.
func TestAgentTokenGetsOnlyItsNodesSubjects(t *testing.T) {
	e := start(t)
	const x, y = "ip-10-0-0-1.ec2.internal", "node-y"
	tok := e.agentPod(t, ns, agentSA, x, audience)
	e.agentPod(t, ns, agentSA, y, audience)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: t.TempDir()})...); err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(actx, agent.Options{Node: x, NATSURL: e.srv.ClientURL(), NATSTokenFile: tokenFile, StateDir: t.TempDir(), Registry: reg})
	}()
	defer func() {
		stopAgent()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	params, _ := json.Marshal(map[string]any{"key": "net.core.netdev_max_backlog", "value": 8192})
	req := executors.Request{ID: "natsauth-1", Action: "sysctl.set", Node: x, Params: params, DryRun: true, Deadline: time.Now().Add(time.Minute)}
	if err := (transport.Dispatcher{JS: e.js}).Dispatch(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := testenv.NextResult(t, e.ctx, e.js, x); got.ID != req.ID || got.Node != x || got.Status == executors.Refused {
		t.Fatalf("result %+v; want %s from %s", got, req.ID, x)
	}

	onErr, errs := testenv.AsyncErrors()
	nc, err := e.connect(tok, onErr, nats.CustomInboxPrefix(bus.AgentInboxPrefix(x)))
	if err != nil {
		t.Fatalf("connect with the agent's token: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(e.ctx, "remedy.signals.ip-10-0-0-1_ec2_internal.irq_skew", []byte(`{}`)); err != nil {
		t.Errorf("X may publish its own signals: %v", err)
	}
	for _, subj := range []string{
		bus.ActionSubject(x), // forge an action, even for itself
		bus.ActionSubject(y),
		bus.ResultSubject(y), // speak for another node
		"remedy.signals.node-y.irq_skew",
		"$JS.API.CONSUMER.CREATE.REMEDY_ACTIONS.agent-node-y.remedy.actions.node-y",
		"$JS.API.CONSUMER.CREATE.REMEDY_ACTIONS." + bus.AgentConsumer(x) + ".remedy.actions.node-y",
		"$JS.API.CONSUMER.MSG.NEXT.REMEDY_ACTIONS.agent-node-y",
		"$JS.API.CONSUMER.DELETE.REMEDY_ACTIONS.agent-node-y",
		"$JS.API.STREAM.PURGE.REMEDY_ACTIONS",
		natsauth.Subject, // answer other agents' authorization requests
	} {
		testenv.Denied(t, nc, errs, "publish to", subj, func() error { return nc.Publish(subj, []byte(`{}`)) })
	}
	for _, subj := range []string{bus.ActionSubject(y), natsauth.Subject, "_INBOX.>", bus.AgentInboxPrefix(y) + ".>"} {
		testenv.Denied(t, nc, errs, "subscribe to", subj, func() error { _, err := nc.Subscribe(subj, func(*nats.Msg) {}); return err })
	}
}

// Tokens of another namespace, another ServiceAccount or another audience, and tokens
// bound to no pod or to a pod that is gone, are refused: the connection fails, and the
// reviewer says why.
func TestRefusedTokens(t *testing.T) {
	e := start(t)
	rev := natsauth.KubeReviewer{Client: e.kube, Namespace: ns, ServiceAccount: agentSA}
	gone := e.agentPod(t, ns, agentSA, "node-gone", audience)
	pods, err := e.kube.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-gone"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods on node-gone: %v %v", pods, err)
	}
	zero := int64(0)
	if err := e.kube.CoreV1().Pods(ns).Delete(e.ctx, pods.Items[0].Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	unbound, err := kubeenv.PodToken(e.ctx, e.kube, ns, agentSA, "", audience)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"other namespace", e.agentPod(t, "elsewhere", agentSA, "node-a", audience),
			"token of system:serviceaccount:elsewhere:remedy-agent, want system:serviceaccount:remedy-system:remedy-agent"},
		{"other service account", e.agentPod(t, ns, "default", "node-a", audience),
			"token of system:serviceaccount:remedy-system:default, want system:serviceaccount:remedy-system:remedy-agent"},
		{"other audience", e.agentPod(t, ns, agentSA, "node-a", "https://kubeenv.local"), "token not authenticated: "},
		{"no pod", unbound, "token is not bound to a pod (use a projected ServiceAccount token)"},
		{"pod gone", gone, "token not authenticated: "},
		{"not a token", "hunter2", "token not authenticated: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rev.Review(e.ctx, tc.token)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Review: %v; want %q", err, tc.want)
			}
			nc, err := e.connect(tc.token)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Errorf("connect: %v; want an authorization violation", err)
			}
		})
	}
	if nc, err := e.connect(""); err == nil {
		nc.Close()
		t.Error("connected without a token")
	}
}

// A node that joins after the engine started works at once: its agent's token is
// reviewed on connect, with no configuration written anywhere.
func TestNodeJoinedAfterStartConnects(t *testing.T) {
	e := start(t)
	const late = "node-joined-late"
	if _, err := e.kube.CoreV1().Nodes().Get(e.ctx, late, metav1.GetOptions{}); err == nil {
		t.Fatal("node exists before the test creates it")
	}
	tok := e.agentPod(t, ns, agentSA, late, audience)
	onErr, errs := testenv.AsyncErrors()
	nc, err := e.connect(tok, onErr)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(bus.ActionSubject(late))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(e.ctx, bus.ActionSubject(late), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(10 * time.Second); err != nil || string(m.Data) != "hello" {
		t.Fatalf("the late node's action: %v %v", m, err)
	}
	select {
	case err := <-errs:
		t.Fatalf("permission error: %v", err)
	default:
	}
}

// seen records the tokens a reviewer was asked about.
type seen struct {
	natsauth.Reviewer
	mu     sync.Mutex
	tokens []string
}

func (s *seen) Review(ctx context.Context, token string) (natsauth.Identity, error) {
	s.mu.Lock()
	s.tokens = append(s.tokens, token)
	s.mu.Unlock()
	return s.Reviewer.Review(ctx, token)
}

func (s *seen) saw(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.tokens, token)
}

// A user expires (here after 2 s, in a cluster with its token): the server disconnects
// the agent, which reconnects with the token the kubelet has rotated into the file since,
// and goes on receiving its actions.
func TestAgentReconnectsWithTheRotatedToken(t *testing.T) {
	var rev *seen
	e := startWith(t, func(o *natsauth.Options) {
		rev = &seen{Reviewer: o.Reviewer}
		o.Reviewer, o.MaxTTL = rev, 2*time.Second
	})
	const node = "node-rotating"
	first := e.agentPod(t, ns, agentSA, node, audience)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: t.TempDir()})...); err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(actx, agent.Options{Node: node, NATSURL: e.srv.ClientURL(), NATSTokenFile: tokenFile, StateDir: t.TempDir(), Registry: reg})
	}()
	defer func() {
		stopAgent()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	testenv.Eventually(t, 20*time.Second, "the agent's first connection", func() bool { return rev.saw(first) })
	pods, err := e.kube.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("agent pod: %v %v", pods, err)
	}
	rotated, err := kubeenv.PodToken(e.ctx, e.kube, ns, agentSA, pods.Items[0].Name, audience)
	if err != nil || rotated == first {
		t.Fatalf("rotated token: %v (same as the first: %v)", err, rotated == first)
	}
	if err := os.WriteFile(tokenFile, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "a reconnection with the rotated token", func() bool { return rev.saw(rotated) })
	req := executors.Request{ID: "after-rotation", Action: "sysctl.set", Node: node, DryRun: true, Deadline: time.Now().Add(time.Minute),
		Params: json.RawMessage(`{"key":"net.core.netdev_max_backlog","value":8192}`)}
	if err := (transport.Dispatcher{JS: e.js}).Dispatch(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := testenv.NextResult(t, e.ctx, e.js, node); got.ID != req.ID || got.Status == executors.Refused {
		t.Fatalf("result after rotation %+v", got)
	}
}
