// Package crash proves that nothing acknowledged is lost and nothing runs twice when the
// engine is killed mid-storm: it runs `remedy serve` as a separate process, sends a storm
// of distinct alerts through Alertmanager-format webhooks (retrying what was not
// acknowledged, as Alertmanager does), SIGKILLs the engine at random points several
// times, restarts it, and then checks the audit log and the agent's executions.
package crash

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/engine/loadgen"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/test/testenv"
)

// counting stands in for sysctl.set on the agent: it records how often each action id
// really ran.
type counting struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counting) Action() string                    { return "sysctl.set" }
func (c *counting) CheckParams(json.RawMessage) error { return nil }
func (c *counting) Execute(_ context.Context, r executors.Request) executors.Result {
	c.mu.Lock()
	c.runs[r.ID]++
	c.mu.Unlock()
	return executors.Finish(r, time.Now(), executors.Result{Status: executors.Succeeded})
}

type engineProc struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

func TestKillEngineMidStorm(t *testing.T) {
	testenv.Heavy(t)
	const (
		alerts   = 10000
		perHook  = 10
		webhooks = alerts / perHook
		kills    = 3
		nodes    = 7 // every tenth alert acts: 1,000 actions spread over 7 agents
		actions  = alerts / 10
	)
	dir := t.TempDir()
	bin := filepath.Join(dir, "remedy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/remedyhq/remedy/cmd/remedy").CombinedOutput(); err != nil {
		t.Fatalf("build remedy: %v\n%s", err, out)
	}
	httpPort, natsPort := testenv.FreePort(t), testenv.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	policies, _ := filepath.Abs("testdata/policies")
	start := func() *engineProc {
		p := &engineProc{logs: &bytes.Buffer{}}
		p.cmd = exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--policies", policies,
			"--listen", "127.0.0.1:"+strconv.Itoa(httpPort), "--nats-listen", "127.0.0.1:"+strconv.Itoa(natsPort), "--log-level", "warn")
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "engine ready", func() bool {
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		return p
	}
	kill := func(p *engineProc) {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}

	// The agents run throughout and reconnect to each new engine's NATS server.
	c := &counting{runs: map[string]int{}}
	eng := start()
	ctx, cancel := context.WithCancel(context.Background())
	var agents sync.WaitGroup
	for n := range nodes {
		reg := executors.NewRegistry()
		if err := reg.Add(executors.OnNode, c); err != nil {
			t.Fatal(err)
		}
		node := "bench-node-" + strconv.Itoa(n)
		agents.Add(1)
		go func() {
			defer agents.Done()
			_ = agent.Run(ctx, agent.Options{Node: node, NATSURL: "nats://127.0.0.1:" + strconv.Itoa(natsPort),
				StateDir: filepath.Join(dir, "agent-"+node), Registry: reg})
		}()
	}
	defer func() { cancel(); agents.Wait() }()

	o := loadgen.Options{AlertsPerWebhook: perHook, Nodes: nodes, Seed: "storm"}
	bodies := make([][]byte, webhooks)
	for i := range bodies {
		bodies[i] = loadgen.Payload(o, i)
	}
	var acked sync.Map // webhook index -> true once a 2xx came back
	var ackedCount atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := int(next.Add(1)) - 1
					if i >= webhooks {
						return
					}
					if _, ok := acked.Load(i); ok {
						continue
					}
					resp, err := client.Post(base+"/webhooks/alertmanager", "application/json", bytes.NewReader(bodies[i]))
					if err != nil {
						continue // connection refused or reset: the engine is down, retry in the next round
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						acked.Store(i, true)
						ackedCount.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	}

	for k := range kills {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { send(stop); close(done) }()
		time.Sleep(time.Duration(150+rand.IntN(600)) * time.Millisecond)
		kill(eng)
		close(stop)
		<-done
		t.Logf("kill %d: %d/%d webhooks acknowledged so far", k+1, ackedCount.Load(), webhooks)
		eng = start()
	}
	// Alertmanager keeps retrying until every webhook is acknowledged.
	for round := 0; ackedCount.Load() < webhooks; round++ {
		if round > 20 {
			t.Fatalf("only %d/%d webhooks acknowledged", ackedCount.Load(), webhooks)
		}
		send(make(chan struct{}))
	}
	// Let the engine decide everything and the agent answer every action.
	st := openStore(t, filepath.Join(dir, "data", "audit.db"))
	testenv.Eventually(t, 4*time.Minute, "every alert decided and every action answered", func() bool {
		d := count(t, st, audit.Decision)
		r := count(t, st, audit.ActionResult)
		return d >= alerts && r >= actions
	})
	kill(eng)

	sigs := map[string]int{}
	for _, e := range query(t, st, audit.SignalReceived) {
		sigs[e.CorrelationID]++
	}
	decs := map[string]int{}
	for _, e := range query(t, st, audit.Decision) {
		decs[e.CorrelationID]++
	}
	if len(sigs) != alerts {
		t.Errorf("%d distinct signals recorded, want %d", len(sigs), alerts)
	}
	for corr, n := range sigs {
		if n != 1 || decs[corr] != 1 {
			t.Fatalf("incident %s: %d signal events, %d decisions; want exactly 1 each", corr, n, decs[corr])
		}
	}
	planned := map[string]int{}
	for _, e := range query(t, st, audit.ActionPlanned) {
		planned[e.ActionID]++
	}
	if len(planned) != actions {
		t.Errorf("%d actions planned, want %d", len(planned), actions)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range planned {
		if n != 1 {
			t.Errorf("action %s planned %d times", id, n)
		}
		if c.runs[id] != 1 {
			t.Errorf("action %s ran %d times on the agent, want 1", id, c.runs[id])
		}
	}
	if t.Failed() {
		t.Logf("last engine log:\n%s", eng.logs)
	}
}

func openStore(t *testing.T, path string) audit.Store {
	t.Helper()
	st, err := sqlite.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func query(t *testing.T, st audit.Store, typ audit.Type) []audit.Event {
	t.Helper()
	evs, err := st.Query(context.Background(), audit.Filter{Type: typ, Limit: 1000000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func count(t *testing.T, st audit.Store, typ audit.Type) int { return len(query(t, st, typ)) }
