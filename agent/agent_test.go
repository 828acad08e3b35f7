package agent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/signed"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
)

// counter is an executor that counts real executions.
type counter struct{ n atomic.Int32 }

func (c *counter) Action() string                    { return "test.count" }
func (c *counter) CheckParams(json.RawMessage) error { return nil }
func (c *counter) Execute(_ context.Context, r executors.Request) executors.Result {
	c.n.Add(1)
	return executors.Finish(r, time.Now(), executors.Result{Status: executors.Succeeded, Message: "counted"})
}

// The agent runs each action id once, across redeliveries and restarts, and reports
// the same result every time.
func TestActionRunsOnceAcrossRedeliveryAndRestart(t *testing.T) {
	const node = "ip-10-0-0-1.ec2.internal" // an EKS node name: dots must not split subjects
	ctx, ns, nc, js := testenv.JetStream(t)
	c := &counter{}
	state := t.TempDir()
	pub, key, _ := ed25519.GenerateKey(nil)
	runAgent := func() (stop func()) {
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, c); err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := agent.Run(actx, agent.Options{Node: node, NATSURL: ns.ClientURL(), StateDir: state, Registry: reg, VerifyKey: pub}); err != nil {
				t.Error(err)
			}
		}()
		return func() { acancel(); <-done }
	}
	publishWith := func(req executors.Request, msgID string, k ed25519.PrivateKey) {
		b, err := signed.Seal(req, k)
		if err != nil {
			t.Fatal(err)
		}
		// A distinct message id defeats the stream's duplicate window, as a redelivery
		// after the window would.
		if err := bus.Publish(ctx, js, bus.ActionSubject(req.Node), msgID, b); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(req executors.Request, msgID string) { publishWith(req, msgID, key) }
	results := make(chan executors.Result, 10)
	sub, err := nc.Subscribe(bus.ResultSubject(node), func(m *nats.Msg) {
		var r executors.Result
		_ = json.Unmarshal(m.Data, &r)
		results <- r
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// next returns the next result for an action id; re-reports of earlier ids (an
	// unacked delivery redelivered after a restart) are allowed and skipped.
	next := func(id string) executors.Result {
		for {
			select {
			case r := <-results:
				if r.ID == id {
					return r
				}
			case <-ctx.Done():
				t.Fatalf("no result for %s", id)
			}
		}
	}

	stop := runAgent()
	req := executors.Request{ID: "a1", Action: "test.count", Node: node, CorrelationID: "c1", Deadline: time.Now().Add(time.Minute)}
	// Forged copies, published straight on NATS, are refused and reported, and do not
	// keep the real action from running.
	_, otherKey, _ := ed25519.GenerateKey(nil)
	publishWith(req, "forged-unsigned", nil)
	if r := next("a1"); r.Status != executors.Refused || r.Message != "action is not signed" {
		t.Fatalf("unsigned action: %+v", r)
	}
	publishWith(req, "forged-key", otherKey)
	if r := next("a1"); r.Status != executors.Refused || r.Message != "action signature does not verify" {
		t.Fatalf("wrongly signed action: %+v", r)
	}
	if c.n.Load() != 0 {
		t.Fatal("a forged action ran")
	}
	publish(req, "m1")
	if r := next("a1"); r.Status != executors.Succeeded || r.ID != "a1" || r.CorrelationID != "c1" {
		t.Fatalf("first result = %+v", r)
	}
	publish(req, "m2") // redelivered
	if r := next("a1"); r.Status != executors.Succeeded || r.Message != "counted" {
		t.Fatalf("second result = %+v", r)
	}
	stop()
	stop = runAgent() // restarted agent, same state dir
	publish(req, "m3")
	if r := next("a1"); r.Status != executors.Succeeded {
		t.Fatalf("third result = %+v", r)
	}
	expired := executors.Request{ID: "a2", Action: "test.count", Node: node, Deadline: time.Now().Add(-time.Second)}
	publish(expired, "m4")
	if r := next("a2"); r.Status != executors.Expired || !strings.HasPrefix(r.Message, "deadline ") {
		t.Fatalf("expired result = %+v", r)
	}
	unknown := executors.Request{ID: "a3", Action: "rm.rf", Node: node}
	publish(unknown, "m5")
	if r := next("a3"); r.Status != executors.Refused || r.Message != `unknown action "rm.rf"` {
		t.Fatalf("unknown action result = %+v", r)
	}
	stop()
	if n := c.n.Load(); n != 1 {
		t.Fatalf("executed %d times, want exactly 1", n)
	}
}

// The node agent must stay lean: none of the engine's heavy dependencies may be linked
// into remedy-agent.
func TestAgentDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/remedyhq/remedy/cmd/remedy-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/open-policy-agent/opa",
		"k8s.io/client-go",
		"k8s.io/apimachinery",
		"github.com/nats-io/nats-server",
		"modernc.org/sqlite",
		"github.com/jackc/pgx",
		"github.com/lib/pq",
		"github.com/mattn/go-sqlite3",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("remedy-agent links %s", dep)
			}
		}
	}
}
