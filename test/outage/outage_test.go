// Package outage checks that remedy loses nothing while NATS is down: webhooks stay
// durable (the audit log is the intake journal, so they keep answering 200), actions
// planned during the outage are dispatched by the sweep once NATS is back, actions the
// killed server lost are published again, and each runs exactly once.
package outage

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/loadgen"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
)

type natsProc struct {
	cmd  *exec.Cmd
	logs bytes.Buffer
}

// startNATS runs nats-server (the version remedy embeds) with JetStream on a fixed port and store dir, so
// a restart finds its streams again.
func startNATS(t *testing.T, bin string, port int, dir string) *natsProc {
	t.Helper()
	p := &natsProc{}
	p.cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "nats-server listening", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// postAlerts posts webhooks from..to-1 of o, each a packet-drops alert the test policy
// answers with an action (cause backlog), and fails unless each is acknowledged.
func postAlerts(t *testing.T, url string, o loadgen.Options, from, to int, why string) {
	t.Helper()
	for i := from; i < to; i++ {
		body := bytes.ReplaceAll(loadgen.Payload(o, i), []byte(`"cause":"ring"`), []byte(`"cause":"backlog"`))
		resp, err := http.Post(url+"/webhooks/alertmanager", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook %d answered %d %s", i, resp.StatusCode, why)
		}
	}
}

func (p *natsProc) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

func TestNATSRestartDuringStorm(t *testing.T) {
	testenv.Heavy(t)
	bin := testenv.NATSServerBin(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	ns := startNATS(t, bin, port, filepath.Join(dir, "nats"))
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "engine"), NATSURL: url, Listen: "127.0.0.1:0",
		PolicyDir: filepath.Join(testenv.RepoRoot(), "test", "e2e", "testdata", "policies"), DryRun: true,
		SweepInterval: 200 * time.Millisecond, RedispatchAfter: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	const nodes, alerts = 5, 500
	var wg sync.WaitGroup
	actx, stopAgents := context.WithCancel(ctx)
	defer func() { stopAgents(); wg.Wait() }()
	for n := range nodes {
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
			t.Fatal(err)
		}
		node := fmt.Sprintf("bench-node-%d", n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = agent.Run(actx, agent.Options{Node: node, NATSURL: url, StateDir: filepath.Join(dir, node), Registry: reg})
		}()
	}
	o := loadgen.Options{AlertsPerWebhook: 1, Nodes: nodes, Seed: "outage"}
	post := func(from, to int) {
		postAlerts(t, a.URL(), o, from, to, "during the NATS outage; it must stay durable")
	}
	post(0, alerts/2)
	ns.stop() // NATS goes away mid-storm
	post(alerts/2, alerts)
	time.Sleep(time.Second) // the sweep tries, and fails, to dispatch
	ns = startNATS(t, bin, port, filepath.Join(dir, "nats"))
	defer ns.stop()

	count := func(typ audit.Type) map[string]int {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: typ, Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, e := range evs {
			m[e.ActionID+e.CorrelationID]++
		}
		return m
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(count(audit.ActionResult)) < alerts {
		if time.Now().After(deadline) {
			for _, name := range []string{bus.StreamActions, bus.StreamResults} {
				if st, err := a.JS.Stream(ctx, name); err == nil {
					info, _ := st.Info(ctx)
					t.Logf("stream %s: %d msgs, first %d last %d", name, info.State.Msgs, info.State.FirstSeq, info.State.LastSeq)
					for ci := range st.ListConsumers(ctx).Info() {
						t.Logf("  consumer %s: delivered %d, ack floor %d, pending %d, ack pending %d, redelivered %d",
							ci.Name, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending, ci.NumRedelivered)
					}
				}
			}
			t.Fatalf("after NATS came back: %d decisions, %d planned, %d dispatched, %d results of %d",
				len(count(audit.Decision)), len(count(audit.ActionPlanned)), len(count(audit.Dispatched)),
				len(count(audit.ActionResult)), alerts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(count(audit.Decision)); n != alerts {
		t.Errorf("%d decisions, want %d", n, alerts)
	}
	for id, n := range count(audit.ActionPlanned) {
		if n != 1 {
			t.Errorf("action %s planned %d times", id, n)
		}
	}
	for id, n := range count(audit.ActionResult) {
		if n != 1 {
			t.Errorf("action %s has %d results; ran or was reported more than once", id, n)
		}
	}
}
