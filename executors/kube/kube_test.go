package kube_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
	"github.com/remedyhq/remedy/executors/kube/migrate"
	"github.com/remedyhq/remedy/test/kubeenv"
)

var kenv kubeenv.Shared

func TestMain(m *testing.M) { os.Exit(kenv.Run(m)) }

// cluster is the registry of cluster actions against the shared API server.
type cluster struct {
	t      *testing.T
	client kubernetes.Interface
	reg    *executors.Registry
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	env := kenv.Get(t)
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	reg := executors.NewRegistry()
	if err := kube.Register(reg, c, kube.Options{Identity: "remedy-test",
		Migrate: migrate.Options{RetryInterval: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, client: c, reg: reg}
}

func (c *cluster) run(action, node, params string, dry bool) executors.Result {
	c.t.Helper()
	e, target, err := c.reg.Get(action)
	if err != nil {
		c.t.Fatal(err)
	}
	if target != executors.InCluster {
		c.t.Fatalf("%s target %s, want %s", action, target, executors.InCluster)
	}
	req := executors.Request{ID: action + "-" + node, Action: action, Node: node, Params: json.RawMessage(params),
		DryRun: dry, CorrelationID: "corr-" + node, Reason: "test " + action}
	return e.Execute(context.Background(), req)
}

func (c *cluster) node(name string) *corev1.Node {
	c.t.Helper()
	n, err := c.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *cluster) newNode(name string, labels map[string]string) {
	c.t.Helper()
	if _, err := kubeenv.CreateNode(context.Background(), c.client, name, labels); err != nil {
		c.t.Fatal(err)
	}
}

// events lists the reasons of the Events about an object, sorted.
func (c *cluster) events(ns, kind, name string) []string {
	c.t.Helper()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name}.AsSelector().String()
	list, err := c.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason)
	}
	slices.Sort(out) // timestamps have second resolution: compare as a sorted list
	return out
}

func want(t *testing.T, res executors.Result, status executors.Status, msg string) {
	t.Helper()
	if res.Status != status || !strings.Contains(res.Message, msg) {
		t.Fatalf("result %s %q, want %s containing %q", res.Status, res.Message, status, msg)
	}
}

func TestCordonUncordon(t *testing.T) {
	c := newCluster(t)
	c.newNode("cordon-a", nil)

	want(t, c.run("node.cordon", "cordon-a", `{}`, true), executors.DryRun, "would cordon node cordon-a")
	if c.node("cordon-a").Spec.Unschedulable {
		t.Fatal("dry run cordoned the node")
	}

	res := c.run("node.cordon", "cordon-a", `{}`, false)
	want(t, res, executors.Succeeded, "cordoned node cordon-a")
	if res.Before["unschedulable"] != "false" || res.After["unschedulable"] != "true" || res.After["cordonedBy"] != "remedy-test" {
		t.Errorf("before %v after %v", res.Before, res.After)
	}
	n := c.node("cordon-a")
	if !n.Spec.Unschedulable {
		t.Fatal("node not cordoned")
	}
	for k, v := range map[string]string{
		kubeaction.AnnotationCordonedBy:    "remedy-test",
		kubeaction.AnnotationReason:        "test node.cordon",
		kubeaction.AnnotationCorrelationID: "corr-cordon-a",
	} {
		if n.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, n.Annotations[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339, n.Annotations[kubeaction.AnnotationCordonedAt]); err != nil {
		t.Errorf("cordoned-at: %v", err)
	}
	want(t, c.run("node.cordon", "cordon-a", `{}`, false), executors.Succeeded, "already cordoned by remedy-test")

	want(t, c.run("node.uncordon", "cordon-a", `{}`, true), executors.DryRun, "would uncordon")
	want(t, c.run("node.uncordon", "cordon-a", `{}`, false), executors.Succeeded, "uncordoned node cordon-a")
	n = c.node("cordon-a")
	if n.Spec.Unschedulable || n.Annotations[kubeaction.AnnotationCordonedBy] != "" || n.Annotations[kubeaction.AnnotationCordonedAt] != "" {
		t.Errorf("after uncordon: unschedulable %v annotations %v", n.Spec.Unschedulable, n.Annotations)
	}
	if got := c.events("", "Node", "cordon-a"); !slices.Equal(got, []string{"RemedyCordoned", "RemedyUncordoned"}) {
		t.Errorf("events %v, want one cordon and one uncordon", got)
	}
	want(t, c.run("node.uncordon", "cordon-a", `{}`, false), executors.Succeeded, "is not cordoned")
	want(t, c.run("node.cordon", "no-such-node", `{}`, false), executors.Failed, "not found")
}

func TestNeverUncordonsAPersonsCordon(t *testing.T) {
	c := newCluster(t)
	c.newNode("cordon-human", nil)
	ctx := context.Background()
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, "cordon-human", "application/merge-patch+json",
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// remedy's cordon of an already cordoned node claims nothing...
	want(t, c.run("node.cordon", "cordon-human", `{}`, false), executors.Succeeded, "already cordoned by someone else")
	// ...so its uncordon refuses, dry run or not.
	for _, dry := range []bool{true, false} {
		res := c.run("node.uncordon", "cordon-human", `{}`, dry)
		want(t, res, executors.Refused, "cordoned by someone else, not remedy")
	}
	n := c.node("cordon-human")
	if !n.Spec.Unschedulable || n.Annotations[kubeaction.AnnotationCordonedBy] != "" {
		t.Fatalf("a person's cordon changed: unschedulable %v annotations %v", n.Spec.Unschedulable, n.Annotations)
	}
	if got := c.events("", "Node", "cordon-human"); len(got) != 0 {
		t.Errorf("events %v, want none", got)
	}

	// A person who takes over remedy's cordon (removes the claim) keeps it too.
	c.newNode("cordon-taken", nil)
	want(t, c.run("node.cordon", "cordon-taken", `{}`, false), executors.Succeeded, "cordoned node")
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, "cordon-taken", "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"remedy.dev/cordoned-by":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	want(t, c.run("node.uncordon", "cordon-taken", `{}`, false), executors.Refused, "not remedy")
	if !c.node("cordon-taken").Spec.Unschedulable {
		t.Fatal("uncordoned a node a person took over")
	}
}

func TestTaintUntaint(t *testing.T) {
	c := newCluster(t)
	c.newNode("taint-a", nil)
	ctx := context.Background()
	n := c.node("taint-a")
	n.Spec.Taints = []corev1.Taint{{Key: "team.example/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}}
	if _, err := c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ours := `{"key":"remedy.dev/nic-degraded","value":"true","effect":"NoSchedule"}`
	want(t, c.run("node.taint", "taint-a", ours, true), executors.DryRun, "would taint")
	if len(c.node("taint-a").Spec.Taints) != 1 {
		t.Fatal("dry run tainted")
	}
	want(t, c.run("node.taint", "taint-a", ours, false), executors.Succeeded, "tainted node taint-a with remedy.dev/nic-degraded=true:NoSchedule")
	want(t, c.run("node.taint", "taint-a", ours, false), executors.Succeeded, "already has taint")
	n = c.node("taint-a")
	if len(n.Spec.Taints) != 2 || n.Annotations[kubeaction.AnnotationTaints] != "remedy.dev/nic-degraded:NoSchedule" {
		t.Fatalf("taints %v annotation %q", n.Spec.Taints, n.Annotations[kubeaction.AnnotationTaints])
	}

	// The foreign taint is neither changed nor removed.
	want(t, c.run("node.taint", "taint-a", `{"key":"team.example/gpu","value":"false","effect":"NoSchedule"}`, false),
		executors.Refused, "set by someone else")
	want(t, c.run("node.untaint", "taint-a", `{"key":"team.example/gpu","effect":"NoSchedule"}`, false),
		executors.Refused, "was not added by remedy")

	want(t, c.run("node.untaint", "taint-a", `{"key":"remedy.dev/nic-degraded","effect":"NoSchedule"}`, false),
		executors.Succeeded, "removed taint")
	n = c.node("taint-a")
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "team.example/gpu" || n.Annotations[kubeaction.AnnotationTaints] != "" {
		t.Fatalf("after untaint: taints %v annotations %v", n.Spec.Taints, n.Annotations)
	}
	if got := c.events("", "Node", "taint-a"); !slices.Equal(got, []string{"RemedyTainted", "RemedyUntainted"}) {
		t.Errorf("events %v", got)
	}
}

func TestLabel(t *testing.T) {
	c := newCluster(t)
	c.newNode("label-a", map[string]string{"team.example/owner": "net"})
	want(t, c.run("node.label", "label-a", `{"set":{"remedy.dev/nic-degraded":"true"}}`, true), executors.DryRun, "would change labels")
	want(t, c.run("node.label", "label-a", `{"set":{"remedy.dev/nic-degraded":"true"}}`, false), executors.Succeeded, "remedy.dev/nic-degraded=true")
	n := c.node("label-a")
	if n.Labels["remedy.dev/nic-degraded"] != "true" || n.Annotations[kubeaction.AnnotationLabels] != "remedy.dev/nic-degraded" {
		t.Fatalf("labels %v annotations %v", n.Labels, n.Annotations)
	}
	want(t, c.run("node.label", "label-a", `{"remove":["team.example/owner"]}`, false), executors.Refused, "were not set by remedy")
	want(t, c.run("node.label", "label-a", `{"set":{"team.example/owner":"remedy"}}`, false), executors.Refused, "were not set by remedy")
	want(t, c.run("node.label", "label-a", `{"remove":["remedy.dev/nic-degraded"]}`, false), executors.Succeeded, "remedy.dev/nic-degraded-")
	n = c.node("label-a")
	if _, ok := n.Labels["remedy.dev/nic-degraded"]; ok || n.Labels["team.example/owner"] != "net" {
		t.Fatalf("labels %v", n.Labels)
	}
	if got := c.events("", "Node", "label-a"); !slices.Equal(got, []string{"RemedyLabeled", "RemedyLabeled"}) {
		t.Errorf("events %v", got)
	}
}

// migrateFixture is a node with three replicas of "web" under a budget allowing one
// disruption, a DaemonSet pod, a mirror pod and one "batch" pod.
func migrateFixture(t *testing.T, c *cluster, node, ns string, allowed int32) {
	t.Helper()
	ctx := context.Background()
	c.newNode(node, nil)
	if err := kubeenv.EnsureNamespace(ctx, c.client, ns); err != nil {
		t.Fatal(err)
	}
	pods := []kubeenv.PodSpec{
		{Name: "web-1", Labels: map[string]string{"app": "web"}, OwnerKind: "ReplicaSet"},
		{Name: "web-2", Labels: map[string]string{"app": "web"}, OwnerKind: "ReplicaSet"},
		{Name: "batch-1", Labels: map[string]string{"app": "batch"}, OwnerKind: "Job"},
		{Name: "agent-x", Labels: map[string]string{"app": "agent"}, OwnerKind: "DaemonSet"},
		{Name: "static-x", Labels: map[string]string{"app": "static"}, OwnerKind: "Node",
			Annotations: map[string]string{migrate.MirrorPodAnnotation: "abc"}},
	}
	for _, p := range pods {
		p.Namespace, p.Node = ns, node
		if _, err := kubeenv.CreateRunningPod(ctx, c.client, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kubeenv.CreatePDB(ctx, c.client, ns, "web", map[string]string{"app": "web"}, 2, allowed); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) podNames(ns string) []string {
	c.t.Helper()
	list, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

func TestMigrateRespectsBudgetUntilDeadline(t *testing.T) {
	c := newCluster(t)
	migrateFixture(t, c, "mig-a", "mig-a", 1)

	// Dry run asks the API server: one web pod may go now, the second would be refused
	// once the first is gone — but a dry run changes nothing, so both are admitted.
	res := c.run("workload.migrate", "mig-a", `{"selector":"app=web","gracePeriodSeconds":0}`, true)
	want(t, res, executors.DryRun, "would evict")
	if res.After["would-evict"] != "mig-a/web-1,mig-a/web-2" {
		t.Errorf("dry run after %v", res.After)
	}
	if got := c.podNames("mig-a"); len(got) != 5 {
		t.Fatalf("dry run evicted: %v", got)
	}

	start := time.Now()
	res = c.run("workload.migrate", "mig-a", `{"selector":"app=web","timeout":"2s","gracePeriodSeconds":0}`, false)
	took := time.Since(start)
	want(t, res, executors.Failed, "incomplete")
	// Both evictions race for the one disruption the budget allows; either may win.
	gone, blocked := strings.TrimPrefix(res.After["gone"], "mig-a/"), strings.TrimPrefix(res.After["blocked"], "mig-a/")
	if !(gone == "web-1" && blocked == "web-2") && !(gone == "web-2" && blocked == "web-1") {
		t.Fatalf("after %v: %s", res.After, res.Message)
	}
	if !strings.Contains(res.Message, "mig-a/"+blocked+" blocked after") || !strings.Contains(res.Message, "disruption budget") {
		t.Errorf("message %q lacks the retries and the budget", res.Message)
	}
	if took < 2*time.Second || took > 5*time.Second {
		t.Errorf("took %s, want the 2s deadline", took)
	}
	if got := c.podNames("mig-a"); !slices.Equal(got, []string{"agent-x", "batch-1", "static-x", blocked}) {
		t.Errorf("pods left %v", got)
	}
	if got := c.events("mig-a", "Pod", gone); !slices.Equal(got, []string{"RemedyEvicted"}) {
		t.Errorf("%s events %v", gone, got)
	}
	if got := c.events("mig-a", "Pod", blocked); !slices.Equal(got, []string{"RemedyEvictionBlocked"}) {
		t.Errorf("%s events %v", blocked, got)
	}
	if got := c.events("", "Node", "mig-a"); !slices.Equal(got, []string{"RemedyMigrateIncomplete"}) {
		t.Errorf("node events %v", got)
	}
}

func TestMigrateRetries429UntilBudgetAllows(t *testing.T) {
	c := newCluster(t)
	migrateFixture(t, c, "mig-b", "mig-b", 0)
	ctx := context.Background()
	go func() {
		// The disruption controller's part: the budget frees up a second later.
		time.Sleep(time.Second)
		if _, err := kubeenv.SetPDBAllowed(ctx, c.client, "mig-b", "web", 2, 2); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	res := c.run("workload.migrate", "mig-b", `{"pods":["mig-b/web-2","mig-b/web-1"],"maxPods":1,"timeout":"20s","gracePeriodSeconds":0}`, false)
	want(t, res, executors.Succeeded, "mig-b/web-2 gone after")
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Errorf("took %s, want just over the second the budget was exhausted", took)
	}
	if got := c.podNames("mig-b"); !slices.Equal(got, []string{"agent-x", "batch-1", "static-x", "web-1"}) {
		t.Errorf("pods left %v (maxPods 1 in the given order moves web-2 only)", got)
	}
}

func TestMigrateRefusesUnmanagedAndLocalData(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	c.newNode("mig-c", nil)
	if err := kubeenv.EnsureNamespace(ctx, c.client, "mig-c"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []kubeenv.PodSpec{
		{Name: "bare"},
		{Name: "cache", OwnerKind: "ReplicaSet", EmptyDir: true},
	} {
		p.Namespace, p.Node = "mig-c", "mig-c"
		if _, err := kubeenv.CreateRunningPod(ctx, c.client, p); err != nil {
			t.Fatal(err)
		}
	}
	res := c.run("workload.migrate", "mig-c", `{"gracePeriodSeconds":0}`, false)
	want(t, res, executors.Refused, "nothing evicted: pods without a controller (set force): mig-c/bare; pods with emptyDir data (set deleteEmptyDirData): mig-c/cache")
	if got := c.podNames("mig-c"); len(got) != 2 {
		t.Fatalf("refusal evicted: %v", got)
	}
	res = c.run("workload.migrate", "mig-c", `{"gracePeriodSeconds":0,"force":true,"deleteEmptyDirData":true}`, false)
	want(t, res, executors.Succeeded, "migrated")
	if got := c.podNames("mig-c"); len(got) != 0 {
		t.Fatalf("left %v", got)
	}
}

func TestDrain(t *testing.T) {
	c := newCluster(t)
	migrateFixture(t, c, "drain-a", "drain-a", 2)
	res := c.run("node.drain", "drain-a", `{"timeout":"10s","gracePeriodSeconds":0}`, false)
	want(t, res, executors.Succeeded, "cordoned node drain-a; migrated")
	if res.After["unschedulable"] != "true" || res.After["gone"] != "drain-a/batch-1,drain-a/web-1,drain-a/web-2" {
		t.Errorf("after %v", res.After)
	}
	if !strings.Contains(res.Before["skipped"], "drain-a/agent-x (DaemonSet)") || !strings.Contains(res.Before["skipped"], "drain-a/static-x (mirror pod)") {
		t.Errorf("skipped %q", res.Before["skipped"])
	}
	if got := c.podNames("drain-a"); !slices.Equal(got, []string{"agent-x", "static-x"}) {
		t.Errorf("pods left %v", got)
	}
	n := c.node("drain-a")
	if !n.Spec.Unschedulable || n.Annotations[kubeaction.AnnotationCordonedBy] != "remedy-test" {
		t.Errorf("node not cordoned by remedy: %v", n.Annotations)
	}
	if got := c.events("", "Node", "drain-a"); !slices.Equal(got, []string{"RemedyCordoned", "RemedyMigrated"}) {
		t.Errorf("node events %v", got)
	}
}
