package guard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/guard/guardtest"
	"github.com/remedyhq/remedy/executors"
)

const cordonPolicy = `package remedy

decisions contains {"action": "node.cordon", "risk": "low", "reason": "vm frozen"} if {
	input.signal.status == "firing"
	input.signal.kind == "vm_freeze"
}
`

// TestStormOfAlertsStaysWithinBlastRadius sends alerts for 100 nodes through the real
// webhook, engine, SQLite audit log and embedded NATS: at most max_nodes are cordoned,
// the storm breaker trips, and every refusal is audited with its reason.
func TestStormOfAlertsStaysWithinBlastRadius(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole engine")
	}
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	must(t, os.MkdirAll(pdir, 0o755))
	must(t, os.WriteFile(filepath.Join(pdir, "p.rego"), []byte(cordonPolicy), 0o644))
	guards := filepath.Join(dir, "guards.yaml")
	must(t, os.WriteFile(guards, []byte(`
blast_radius: [{name: cluster, max_nodes: 5}, {name: zone, group_by: zone, max_percent: 10}]
storm: {nodes: 20, window: 5m}
approval: {min_risk: none}
`), 0o644))
	nodes := map[string]facts.Node{}
	for i := range 100 {
		nodes[fmt.Sprintf("node-%03d", i)] = facts.Node{Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%4)}}
	}
	// Two nodes are already cordoned by a person: they count.
	for _, n := range []string{"node-098", "node-099"} {
		f := nodes[n]
		f.Unschedulable, f.CordonedBy = true, "other"
		nodes[n] = f
	}
	cordon := &guardtest.Cordon{}
	ctx := context.Background()
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "data"), PolicyDir: pdir, Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", GuardsFile: guards, Facts: facts.Static{Nodes: nodes},
		ClusterExecutors: []executors.Executor{cordon}, SweepInterval: 200 * time.Millisecond})
	must(t, err)
	defer a.Stop()

	start := time.Now()
	var wg sync.WaitGroup
	for b := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var alerts []map[string]any
			for i := b * 10; i < b*10+10; i++ {
				alerts = append(alerts, map[string]any{"status": "firing", "fingerprint": fmt.Sprintf("fp%03d", i),
					"labels":   map[string]string{"alertname": "vm_freeze", "node": fmt.Sprintf("node-%03d", i)},
					"startsAt": start.Add(-time.Minute).Format(time.RFC3339)})
			}
			body, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "remedy", "alerts": alerts})
			resp, err := http.Post(a.URL()+"/webhooks/alertmanager", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("webhook: %s", resp.Status)
			}
		}()
	}
	wg.Wait()

	var decisions []audit.Event
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		decisions, err = a.Store.Query(ctx, audit.Filter{Type: audit.Decision, Limit: 1000})
		must(t, err)
		if len(decisions) == 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(decisions) != 100 {
		t.Fatalf("%d decisions after 30s, want 100", len(decisions))
	}
	took := time.Since(start)
	// Refused for good (blast radius), or paused by the open breaker: waiting in the
	// ledger until a person resumes the kind, or their deadline.
	refused, err := a.Store.Query(ctx, audit.Filter{Types: []audit.Type{audit.GuardRefused, audit.ActionPaused}, Limit: 1000})
	must(t, err)
	reasons := map[string]int{}
	for _, e := range refused {
		reasons[e.Outcome]++
	}
	results, err := a.Store.Query(ctx, audit.Filter{Type: audit.ActionResult, Action: "node.cordon", Limit: 1000})
	must(t, err)
	// The cluster limit is 5 and two nodes were already out: remedy takes out at most 3
	// more (cordoning an already cordoned node takes out nothing).
	fresh := 0
	for n := range cordon.Nodes() {
		if !nodes[n].Unschedulable {
			fresh++
		}
	}
	if n := cordon.Calls(); fresh > 3 || len(results) != int(n) {
		t.Errorf("cordoned %d schedulable nodes (%d calls, %d results), want at most 3", fresh, n, len(results))
	}
	if len(refused)+cordon.Calls() != 100 {
		t.Errorf("%d refused + %d cordoned != 100 decisions", len(refused), cordon.Calls())
	}
	st := a.Guards.State()
	if len(st.Tripped) != 1 || st.Tripped[0] != "vm_freeze" {
		t.Errorf("breaker state = %+v", st)
	}
	if reasons["storm"] < 100-21 || reasons["blast_radius"] == 0 {
		t.Errorf("refusals by reason = %v", reasons)
	}
	paused, err := a.Store.Query(ctx, audit.Filter{Type: audit.Paused})
	must(t, err)
	if len(paused) != 1 || paused[0].Kind != "vm_freeze" || paused[0].Actor != audit.ActorEngine {
		t.Errorf("breaker audit = %+v", paused)
	}
	t.Logf("100 alerts decided in %s: %d cordoned, refusals %v", took.Round(time.Millisecond), cordon.Calls(), reasons)
	for n, c := range cordon.Nodes() {
		if c != 1 {
			// Not a blast-radius question (one node), but worth seeing: the sweep and
			// decide can both dispatch one in-cluster action.
			t.Logf("%s cordoned %d times", n, c)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
