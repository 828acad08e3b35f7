package agent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/signed"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
)

// ranOn records on which agent each action id ran.
type ranOn struct {
	node string
	mu   *sync.Mutex
	ran  map[string]string
}

func (r ranOn) Action() string                    { return "test.count" }
func (r ranOn) CheckParams(json.RawMessage) error { return nil }
func (r ranOn) Execute(_ context.Context, req executors.Request) executors.Result {
	r.mu.Lock()
	r.ran[req.ID] = r.node
	r.mu.Unlock()
	return executors.Finish(req, time.Now(), executors.Result{Status: executors.Succeeded})
}

// Nodes a.b and a_b are two nodes on the bus (they shared the subject token a_b before
// NodeToken was injective): each agent gets only its own actions, and an action signed
// for one node that reaches the other's agent is refused there, in that agent's name,
// and not run.
func TestNodesWithDotAndUnderscoreGetOnlyTheirActions(t *testing.T) {
	ctx, ns, nc, js := testenv.JetStream(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	var mu sync.Mutex
	ran := map[string]string{}
	nodes := []string{"a.b", "a_b"}
	var wg sync.WaitGroup
	actx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	for _, node := range nodes {
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, ranOn{node: node, mu: &mu, ran: ran}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := agent.Run(actx, agent.Options{Node: node, NATSURL: ns.ClientURL(), StateDir: t.TempDir(), Registry: reg, VerifyKey: pub}); err != nil {
				t.Error(err)
			}
		}()
	}
	type report struct {
		subject string
		res     executors.Result
	}
	results := make(chan report, 10)
	sub, err := nc.Subscribe(bus.ResultsPrefix+".>", func(m *nats.Msg) {
		var r executors.Result
		_ = json.Unmarshal(m.Data, &r)
		results <- report{m.Subject, r}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	send := func(subjectNode string, req executors.Request) {
		b, err := signed.Seal(req, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Publish(ctx, js, bus.ActionSubject(subjectNode), "action:"+req.ID+":"+subjectNode, b); err != nil {
			t.Fatal(err)
		}
	}
	next := func(id string) report {
		t.Helper()
		for {
			select {
			case r := <-results:
				if r.res.ID == id {
					return r
				}
			case <-ctx.Done():
				t.Fatalf("no result for %s", id)
			}
		}
	}
	for _, node := range nodes {
		id := "act-" + node
		send(node, executors.Request{ID: id, Action: "test.count", Node: node})
		r := next(id)
		if r.res.Status != executors.Succeeded || r.res.Node != node || r.subject != bus.ResultSubject(node) {
			t.Errorf("action for %s: %+v on %s", node, r.res, r.subject)
		}
	}
	// Signed for a.b, published on a_b's subject (a misroute): a_b's agent refuses it.
	send("a_b", executors.Request{ID: "misrouted", Action: "test.count", Node: "a.b"})
	r := next("misrouted")
	if r.res.Status != executors.Refused || r.res.Node != "a_b" || r.subject != bus.ResultSubject("a_b") ||
		r.res.Message != `action for node "a.b" delivered to the agent of "a_b"` {
		t.Errorf("misrouted action: %+v on %s", r.res, r.subject)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{"act-a.b": "a.b", "act-a_b": "a_b"}
	if len(ran) != len(want) || ran["act-a.b"] != "a.b" || ran["act-a_b"] != "a_b" {
		t.Errorf("ran %v, want %v", ran, want)
	}
}
