// Package cluster_test runs remedy against a whole cluster without containers
// (test/kubeenv's cluster mode: kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler and kwok): workload migration seen to finish while a PDB holds.
package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/approval"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/kube"
	"github.com/remedyhq/remedy/engine/kube/conditions"
	"github.com/remedyhq/remedy/engine/report"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube/migrate"
	"github.com/remedyhq/remedy/test/kubeenv"
)

type cluster struct {
	env *kubeenv.Env
	c   kubernetes.Interface
	ctx context.Context
}

func startCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("whole cluster: skipped under -short")
	}
	start := time.Now()
	env := kubeenv.Require(t, kubeenv.Options{Cluster: true, Nodes: nodes})
	t.Logf("whole cluster with %d kwok nodes in %s", nodes, time.Since(start).Round(time.Millisecond))
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return &cluster{env: env, c: c, ctx: ctx}
}

// setUnschedulable cordons or uncordons a node by hand, as a person would.
func (k *cluster) setUnschedulable(t *testing.T, node string, on bool) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%v}}`, on)
	if _, err := k.c.CoreV1().Nodes().Patch(k.ctx, node, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// deployOn creates a Deployment whose pods all land on node (the others cordoned while
// it starts), and a PDB with minAvailable over it.
func (k *cluster) deployOn(t *testing.T, node string, others []string, name string, replicas int32, minAvailable int) {
	t.Helper()
	for _, n := range others {
		k.setUnschedulable(t, n, true)
	}
	labels := map[string]string{"app": name}
	if _, err := k.c.AppsV1().Deployments("default").Create(k.ctx, kubeenv.Deployment("default", name, replicas, labels), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k.env.WaitAvailable(k.ctx, k.c, "default", name); err != nil {
		t.Fatal(err)
	}
	for _, n := range others {
		k.setUnschedulable(t, n, false)
	}
	ma := intstr.FromInt(minAvailable)
	if _, err := k.c.PolicyV1().PodDisruptionBudgets("default").Create(k.ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &ma, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k.env.WaitFor(k.ctx, "the disruption controller", func() (bool, error) {
		p, err := k.c.PolicyV1().PodDisruptionBudgets("default").Get(k.ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == replicas, err
	}); err != nil {
		t.Fatal(err)
	}
}

func (k *cluster) pods(t *testing.T, selector string) []corev1.Pod {
	t.Helper()
	l, err := k.c.CoreV1().Pods("default").List(k.ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

func ready(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// availability watches the pods of selector and records, at every change the API server
// reports, how many are available (Running, Ready, not terminating): its minimum is
// what the PDB must hold.
type availability struct {
	mu   sync.Mutex
	pods map[string]bool
	min  int
	seen int
	stop func()
	done chan struct{}
}

func (k *cluster) watchAvailable(t *testing.T, selector string) *availability {
	t.Helper()
	l, err := k.c.CoreV1().Pods("default").List(k.ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	a := &availability{pods: map[string]bool{}, done: make(chan struct{})}
	for i := range l.Items {
		a.pods[l.Items[i].Name] = ready(&l.Items[i])
	}
	a.min = a.count()
	w, err := k.c.CoreV1().Pods("default").Watch(k.ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	a.stop = w.Stop
	go func() {
		defer close(a.done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			a.mu.Lock()
			if ev.Type == watch.Deleted {
				delete(a.pods, p.Name)
			} else {
				a.pods[p.Name] = ready(p)
			}
			a.seen++
			a.min = min(a.min, a.count())
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() { a.stop(); <-a.done })
	return a
}

func (a *availability) count() int {
	n := 0
	for _, r := range a.pods {
		if r {
			n++
		}
	}
	return n
}

func (a *availability) minimum() (int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.min, a.seen
}

func startEngine(t *testing.T, k *cluster, policyDir string) *app.App {
	t.Helper()
	return startEngineWith(t, k, policyDir, []conditions.Rule{})
}

// startEngineWith starts the engine on the cluster with these node-condition rules (nil:
// the defaults, as --node-conditions has them).
func startEngineWith(t *testing.T, k *cluster, policyDir string, rules []conditions.Rule) *app.App {
	t.Helper()
	dir := t.TempDir()
	a, err := app.Start(k.ctx, app.Options{
		DataDir: filepath.Join(dir, "data"), PolicyDir: policyDir, Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1",
		PolicyReload: -1, SweepInterval: 500 * time.Millisecond,
		Kube: &kube.Options{Config: k.env.Config, Identity: "remedy-test", Conditions: rules,
			Migrate: migrate.Options{RetryInterval: 500 * time.Millisecond, PollInterval: 200 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// postPSI posts node-level CPU pressure on node, sustained for ten minutes, naming the
// pods under the highest pressure.
func postPSI(t *testing.T, a *app.App, node string, pods []string) {
	t.Helper()
	postAlert(t, a, node, "psi-"+node, map[string]string{"top_pods": strings.Join(pods, ",")})
}

// postSelector posts node-level CPU pressure whose selector label names the pods to move
// (for migratePolicy).
func postSelector(t *testing.T, a *app.App, node, selector string) {
	t.Helper()
	postAlert(t, a, node, "psi-"+selector, map[string]string{"selector": selector})
}

func postAlert(t *testing.T, a *app.App, node, fingerprint string, extra map[string]string) {
	t.Helper()
	postAlertStatus(t, a, node, fingerprint, "firing", extra)
}

// alertStart is when every test alert started firing: ten minutes ago, sustained.
var alertStart = time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)

func postAlertStatus(t *testing.T, a *app.App, node, fingerprint, status string, extra map[string]string) {
	t.Helper()
	labels := map[string]string{"alertname": "NodeCPUPressureHigh", "node": node, "resource": "cpu"}
	for k, v := range extra {
		labels[k] = v
	}
	endsAt := "0001-01-01T00:00:00Z"
	if status == "resolved" {
		endsAt = time.Now().UTC().Format(time.RFC3339)
	}
	body, _ := json.Marshal(map[string]any{
		"version": "4", "status": status, "receiver": "remedy", "groupKey": "{}:{alertname=\"NodeCPUPressureHigh\"}",
		"alerts": []map[string]any{{
			"status":      status,
			"labels":      labels,
			"annotations": map[string]string{"summary": "CPU some avg60 at 55%", "value": "55"},
			"startsAt":    alertStart,
			"endsAt":      endsAt,
			"fingerprint": fingerprint,
		}},
	})
	postWebhook(t, a, body)
}

// postWebhook posts an Alertmanager webhook body to the engine.
func postWebhook(t *testing.T, a *app.App, body []byte) {
	t.Helper()
	resp, err := http.Post(a.URL()+"/webhooks/alertmanager", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %s", resp.Status)
	}
}

// approve approves the held action, once it is held.
func approve(t *testing.T, k *cluster, a *app.App, action string) {
	t.Helper()
	var id string
	if err := k.env.WaitFor(k.ctx, action+" held for approval", func() (bool, error) {
		held, err := a.Approvals.List(k.ctx, false)
		for _, r := range held {
			if r.Held.Request.Action == action {
				id = r.ID
				return true, nil
			}
		}
		return false, err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Approvals.Approve(k.ctx, id, approval.Identity{Name: "alice", Role: approval.Approver}, "test"); err != nil {
		t.Fatal(err)
	}
}

// resultFor waits for the result of the migration whose reason names selector.
func resultFor(t *testing.T, k *cluster, a *app.App, selector string) executors.Result {
	t.Helper()
	var res executors.Result
	if err := k.env.WaitFor(k.ctx, "the migration of "+selector, func() (bool, error) {
		planned, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.ActionPlanned, Action: "workload.migrate"})
		if err != nil {
			return false, err
		}
		for _, p := range planned {
			var req executors.Request
			if json.Unmarshal(p.Detail, &req) != nil || req.Reason != "moving "+selector {
				continue
			}
			evs, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.ActionResult, CorrelationID: p.CorrelationID})
			if err != nil || len(evs) == 0 {
				return false, err
			}
			return true, json.Unmarshal(evs[0].Detail, &res)
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	return res
}

// result waits for the action's result in the audit log.
func result(t *testing.T, k *cluster, a *app.App, action string) executors.Result {
	t.Helper()
	var res executors.Result
	ctx, cancel := context.WithTimeout(k.ctx, time.Minute)
	defer cancel()
	if err := k.env.WaitFor(ctx, action+" result", func() (bool, error) {
		evs, err := a.Store.Query(ctx, audit.Filter{Type: audit.ActionResult, Action: action})
		if err != nil || len(evs) == 0 {
			return false, err
		}
		return true, json.Unmarshal(evs[0].Detail, &res)
	}); err != nil {
		evs, _ := a.Store.Query(k.ctx, audit.Filter{Limit: 1000})
		var b strings.Builder
		_ = report.Table(&b, evs)
		t.Fatalf("%v; audit log:\n%s", err, b.String())
	}
	return res
}

// TestPSIMigratesAWorkloadWhileItsPDBHolds: node-level CPU pressure on kwok-node-0,
// where all three pods of a Deployment run under a PDB of minAvailable 2. The shipped
// library cordons the node and moves the pods (both approved by a person); the pods
// leave the node and run on the other two, while available replicas never drop below 2
// at any change the API server reports; the audit trail names each pod moved.
func TestPSIMigratesAWorkloadWhileItsPDBHolds(t *testing.T) {
	k := startCluster(t, 3)
	x, others := "kwok-node-0", []string{"kwok-node-1", "kwok-node-2"}
	k.deployOn(t, x, others, "web", 3, 2)
	var names []string
	for _, p := range k.pods(t, "app=web") {
		if p.Spec.NodeName != x {
			t.Fatalf("pod %s on %s, want %s", p.Name, p.Spec.NodeName, x)
		}
		names = append(names, "default/"+p.Name)
	}
	avail := k.watchAvailable(t, "app=web")
	a := startEngine(t, k, "../../policies")
	start := time.Now()
	postPSI(t, a, x, names)

	approve(t, k, a, "node.cordon")
	if res := result(t, k, a, "node.cordon"); res.Status != executors.Succeeded {
		t.Fatalf("cordon: %s %s", res.Status, res.Message)
	}
	approve(t, k, a, "workload.migrate")
	res := result(t, k, a, "workload.migrate")
	if res.Status != executors.Succeeded {
		t.Fatalf("migrate: %s %s", res.Status, res.Message)
	}
	t.Logf("PSI to all pods moved: %s (%s)", time.Since(start).Round(time.Millisecond), res.Message)
	moved := strings.Split(res.After["gone"], ",")
	sort.Strings(moved)
	if strings.Join(moved, ",") != strings.Join(names, ",") {
		t.Errorf("audit: moved %v, want %v", moved, names)
	}
	if err := k.env.WaitAvailable(k.ctx, k.c, "default", "web"); err != nil {
		t.Fatal(err)
	}
	for _, p := range k.pods(t, "app=web") {
		if p.Spec.NodeName == x || !ready(&p) {
			t.Errorf("pod %s on %s ready %v: want Running elsewhere", p.Name, p.Spec.NodeName, ready(&p))
		}
	}
	if n, err := k.c.CoreV1().Nodes().Get(k.ctx, x, metav1.GetOptions{}); err != nil || !n.Spec.Unschedulable {
		t.Errorf("node %s not cordoned: %v", x, err)
	}
	// The runbook's end: the pressure resolves, verification says the cordon fixed it,
	// and the shipped library uncordons the node remedy cordoned.
	postAlertStatus(t, a, x, "psi-"+x, "resolved", map[string]string{"top_pods": strings.Join(names, ",")})
	if res := result(t, k, a, "node.uncordon"); res.Status != executors.Succeeded {
		t.Fatalf("uncordon: %s %s", res.Status, res.Message)
	}
	if n, err := k.c.CoreV1().Nodes().Get(k.ctx, x, metav1.GetOptions{}); err != nil || n.Spec.Unschedulable {
		t.Errorf("node %s still cordoned after the pressure resolved: %v", x, err)
	}
	if err := k.env.WaitFor(k.ctx, "verification fixed", func() (bool, error) {
		evs, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.Verification, Action: "node.cordon"})
		return err == nil && len(evs) == 1 && evs[0].Outcome == "fixed", err
	}); err != nil {
		t.Error(err)
	}
	lowest, changes := avail.minimum()
	t.Logf("available replicas: lowest %d over %d pod changes", lowest, changes)
	if lowest < 2 || changes == 0 {
		t.Errorf("available replicas dropped to %d (minAvailable 2) over %d changes", lowest, changes)
	}
}
