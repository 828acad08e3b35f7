package cluster_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/test/kubeenv"
)

// A policy that moves the pods the signal's selector label names, with a short deadline
// and no approval, so that each behaviour of workload.migrate shows on its own.
const migratePolicy = `package remedy

decisions contains {
	"action": "workload.migrate",
	"params": {"selector": input.signal.labels.selector, "timeout": "6s"},
	"risk": "high",
	"reason": sprintf("moving %s", [input.signal.labels.selector]),
} if {
	input.signal.kind == "psi"
	input.signal.status == "firing"
}
`

// TestMigrationOnAWholeClusterAsDocumented: workload.migrate on the whole cluster behaves
// as docs/kubernetes.md says. A StatefulSet's pod is evicted and its controller brings it
// back, same name, on another node; a pod without a controller and a pod with emptyDir
// data make the action refused with nothing evicted; a PDB that allows no disruption is
// retried until the deadline, then the action fails with the pods "blocked", still
// there (never deleted by force), the node keeps its cordon and carries a
// RemedyMigrateIncomplete Event for a person to act on.
func TestMigrationOnAWholeClusterAsDocumented(t *testing.T) {
	k := startCluster(t, 3)
	x, others := "kwok-node-0", []string{"kwok-node-1", "kwok-node-2"}
	for _, n := range others {
		k.setUnschedulable(t, n, true)
	}
	// A StatefulSet of one, a pod without a controller, a Deployment with emptyDir data,
	// and a Deployment whose PDB allows no disruption: all on x.
	one := int32(1)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{Replicas: &one, ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}}, Spec: kubeenv.KwokPodSpec()}},
	}
	if _, err := k.c.AppsV1().StatefulSets("default").Create(k.ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lonely := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lonely", Namespace: "default", Labels: map[string]string{"app": "lonely"}}, Spec: kubeenv.KwokPodSpec()}
	lonely.Spec.NodeName = x
	if _, err := k.c.CoreV1().Pods("default").Create(k.ctx, lonely, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cache := kubeenv.Deployment("default", "cache", 1, map[string]string{"app": "cache"})
	cache.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	if _, err := k.c.AppsV1().Deployments("default").Create(k.ctx, cache, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k.env.WaitFor(k.ctx, "db-0, lonely and cache Running on "+x, func() (bool, error) {
		n := 0
		for _, sel := range []string{"app=db", "app=lonely", "app=cache"} {
			for _, p := range k.pods(t, sel) {
				if ready(&p) && p.Spec.NodeName == x {
					n++
				}
			}
		}
		return n == 3, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range others {
		k.setUnschedulable(t, n, false)
	}
	k.deployOn(t, x, others, "strict", 2, 2)
	k.setUnschedulable(t, x, true) // a person cordoned it; migrate moves pods regardless

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "migrate.rego"), []byte(migratePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startEngine(t, k, dir)
	dbUID := k.pods(t, "app=db")[0].UID

	for _, tc := range []struct {
		selector string
		status   executors.Status
		message  string
	}{
		{"app=db", executors.Succeeded, "migrated from node kwok-node-0: default/db-0 gone"},
		{"app=lonely", executors.Refused, "migrate: nothing evicted: pods without a controller (set force): default/lonely"},
		{"app=cache", executors.Refused, "migrate: nothing evicted: pods with emptyDir data (set deleteEmptyDirData): default/cache-"},
		{"app=strict", executors.Failed, "migration from node kwok-node-0 incomplete after "},
	} {
		t.Run(tc.selector, func(t *testing.T) {
			postSelector(t, a, x, tc.selector)
			res := resultFor(t, k, a, tc.selector)
			if res.Status != tc.status || !strings.HasPrefix(res.Message, tc.message) {
				t.Fatalf("got %s %q\nwant %s %q...", res.Status, res.Message, tc.status, tc.message)
			}
			t.Logf("%s: %s", res.Status, res.Message)
		})
	}

	// The StatefulSet brought db-0 back, a new pod of the same name, elsewhere.
	if err := k.env.WaitFor(k.ctx, "db-0 back on another node", func() (bool, error) {
		ps := k.pods(t, "app=db")
		return len(ps) == 1 && ps[0].UID != dbUID && ps[0].Spec.NodeName != x && ready(&ps[0]), nil
	}); err != nil {
		t.Fatal(err)
	}
	// Refused: nothing evicted.
	for _, sel := range []string{"app=lonely", "app=cache"} {
		if ps := k.pods(t, sel); len(ps) != 1 || ps[0].Spec.NodeName != x || !ready(&ps[0]) {
			t.Errorf("%s: %d pods, want the one on %s untouched", sel, len(ps), x)
		}
	}
	// Blocked by the budget until the deadline: both pods still there, nothing forced.
	strict := k.pods(t, "app=strict")
	if len(strict) != 2 {
		t.Fatalf("%d strict pods, want 2", len(strict))
	}
	for _, p := range strict {
		if p.Spec.NodeName != x || p.DeletionTimestamp != nil {
			t.Errorf("strict pod %s on %s deleting %v: want untouched", p.Name, p.Spec.NodeName, p.DeletionTimestamp != nil)
		}
	}
	n, err := k.c.CoreV1().Nodes().Get(k.ctx, x, metav1.GetOptions{})
	if err != nil || !n.Spec.Unschedulable {
		t.Errorf("node %s lost its cordon: %v", x, err)
	}
	evs, err := k.c.CoreV1().Events("default").List(k.ctx, metav1.ListOptions{FieldSelector: "reason=RemedyMigrateIncomplete"})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].InvolvedObject.Name != x || !strings.Contains(evs.Items[0].Message, "blocked") {
		t.Errorf("RemedyMigrateIncomplete events: %v %v", evs, err)
	}
}
