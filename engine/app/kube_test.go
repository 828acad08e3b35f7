package app_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/kube"
	"github.com/remedyhq/remedy/engine/kube/leader"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
	"github.com/remedyhq/remedy/test/kubeenv"
)

const freezePolicy = `package remedy

decisions contains {"action": "node.cordon", "risk": "low", "reason": "vm freeze scheduled"} if {
	input.signal.status == "firing"
	input.signal.kind == "vm_freeze"
	not input.node.unschedulable
}
`

// TestNodeConditionCordonsThroughTheEngine drives the whole cluster path: a freeze
// condition on a real API server's node becomes a signal, the engine's policy decides
// node.cordon (reading the node's facts from the informer cache), and the engine runs it
// against the API server, under leader election.
func TestNodeConditionCordonsThroughTheEngine(t *testing.T) {
	env := kubeenv.Require(t, kubeenv.Options{})
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := kubeenv.CreateNode(ctx, admin, "node-f", map[string]string{"topology.kubernetes.io/zone": "z1"}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "p.rego"), []byte(freezePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	guards := filepath.Join(dir, "guards.yaml")
	if err := os.WriteFile(guards, []byte("blast_radius: [{name: cluster, max_nodes: 5}]\napproval: {min_risk: none}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(ctx, app.Options{DataDir: filepath.Join(dir, "data"), PolicyDir: pdir, Listen: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", GuardsFile: guards,
		Kube: &kube.Options{Config: env.Config, Identity: "engine-0",
			LeaderElection: &leader.Config{Namespace: "default", Name: "remedy-engine", LeaseDuration: 2 * time.Second,
				RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()

	if err := kubeenv.SetNodeCondition(ctx, admin, "node-f", corev1.NodeCondition{Type: "VMEventScheduled",
		Status: corev1.ConditionTrue, Reason: "Freeze", Message: "Freeze scheduled in 15s"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := admin.CoreV1().Nodes().Get(ctx, "node-f", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable {
			if n.Annotations[kubeaction.AnnotationCordonedBy] != "engine-0" || n.Annotations[kubeaction.AnnotationReason] != "vm freeze scheduled" ||
				n.Annotations[kubeaction.AnnotationCorrelationID] == "" {
				t.Errorf("annotations %v", n.Annotations)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the freeze condition did not lead to a cordon within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	lease, err := admin.CoordinationV1().Leases("default").Get(ctx, "remedy-engine", metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != "engine-0" {
		t.Fatalf("lease %v err %v", lease, err)
	}
	a.Stop()
	lease, err = admin.CoordinationV1().Leases("default").Get(ctx, "remedy-engine", metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != "" {
		t.Errorf("lease not released on stop: holder %v err %v", lease.Spec.HolderIdentity, err)
	}
}
