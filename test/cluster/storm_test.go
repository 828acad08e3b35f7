package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/kube"
	"github.com/remedyhq/remedy/engine/kube/conditions"
)

const stormPolicy = `package remedy

decisions contains {"action": "node.cordon", "params": {}, "risk": "low", "reason": "storm test"} if {
	input.signal.kind == "psi"
	input.signal.status == "firing"
}
`

const stormGuards = `blast_radius: [{name: cluster, max_nodes: 5}]
storm: {nodes: 50, window: 5m}
`

// TestStormOnAThousandNodes: 1,000 kwok nodes, two cordoned by people, and PSI alerts for
// every node in one webhook burst. A node watch on the API server sees at no instant more
// than the blast radius's 5 nodes cordoned (people's included), the storm breaker trips,
// and every alert has exactly one decision. Times and the test process's peak RSS (the
// engine runs in it) are logged for BENCHMARKS.md.
func TestStormOnAThousandNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000-node storm: skipped under -short")
	}
	k := startCluster(t, 0)
	const n = 1000
	start := time.Now()
	names, err := k.env.AddNodes(k.ctx, "storm-", n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kwok nodes Ready in %s", n, time.Since(start).Round(time.Millisecond))
	k.setUnschedulable(t, names[10], true)
	k.setUnschedulable(t, names[20], true)

	// The cordon count at every change the API server reports.
	var mu sync.Mutex
	cordoned, peak := map[string]bool{}, 0
	l, err := k.c.CoreV1().Nodes().List(k.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range l.Items {
		if node.Spec.Unschedulable {
			cordoned[node.Name] = true
		}
	}
	w, err := k.c.CoreV1().Nodes().Watch(k.ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			node, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			mu.Lock()
			if ev.Type != watch.Deleted && node.Spec.Unschedulable {
				cordoned[node.Name] = true
			} else {
				delete(cordoned, node.Name)
			}
			peak = max(peak, len(cordoned))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })

	dir := t.TempDir()
	pol := filepath.Join(dir, "policy")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pol, "storm.rego"), []byte(stormPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	guards := filepath.Join(dir, "guards.yaml")
	if err := os.WriteFile(guards, []byte(stormGuards), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(k.ctx, app.Options{
		DataDir: filepath.Join(dir, "data"), PolicyDir: pol, GuardsFile: guards, Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1",
		PolicyReload: -1, SweepInterval: 500 * time.Millisecond, MaxBody: 8 << 20,
		Kube: &kube.Options{Config: k.env.Config, Identity: "remedy-storm", Conditions: []conditions.Rule{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)

	alerts := make([]map[string]any, n)
	for i, name := range names {
		alerts[i] = map[string]any{"status": "firing",
			"labels":      map[string]string{"alertname": "NodeCPUPressureHigh", "node": name, "resource": "cpu"},
			"annotations": map[string]string{"value": "55"}, "startsAt": alertStart, "endsAt": "0001-01-01T00:00:00Z",
			"fingerprint": fmt.Sprintf("storm-%d", i)}
	}
	body, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "remedy", "alerts": alerts})
	burst := time.Now()
	postWebhook(t, a, body)
	var tripped time.Duration
	if err := k.env.WaitFor(k.ctx, "every alert decided", func() (bool, error) {
		if tripped == 0 && len(a.Guards.State().Tripped) > 0 {
			tripped = time.Since(burst)
		}
		evs, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.Decision, Limit: 10 * n})
		return err == nil && len(evs) >= n, err
	}); err != nil {
		t.Fatal(err)
	}
	decided := time.Since(burst)
	evs, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.Decision, Limit: 10 * n})
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	for _, ev := range evs {
		perNode[ev.Node]++
	}
	for _, name := range names {
		if perNode[name] != 1 {
			t.Errorf("%s: %d decisions, want 1", name, perNode[name])
		}
	}
	if st := a.Guards.State(); len(st.Tripped) != 1 || st.Tripped[0] != "psi" {
		t.Errorf("breaker: %+v", st)
	}
	// Let the allowed cordons land, then read the peak.
	time.Sleep(2 * time.Second)
	results, _ := a.Store.Query(k.ctx, audit.Filter{Type: audit.ActionResult, Action: "node.cordon", Limit: 10 * n})
	mu.Lock()
	p, now := peak, len(cordoned)
	mu.Unlock()
	t.Logf("burst of %d: breaker tripped after %s, all decided after %s; %d cordons by remedy, at most %d nodes cordoned at once (%d now); peak RSS %s",
		n, tripped.Round(time.Millisecond), decided.Round(time.Millisecond), len(results), p, now, peakRSS())
	real := 0
	for _, r := range results {
		if strings.Contains(string(r.Detail), `"message":"cordoned node `) {
			real++
		}
	}
	// The two people's nodes get a cordon decision too, answered "already cordoned by
	// someone else; left as it is": remedy itself cordons 3.
	if p > 5 || real != 3 {
		t.Errorf("%d nodes cordoned at once (limit 5, 2 by people), %d cordons by remedy (want 3)", p, real)
	}
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "?"
}
