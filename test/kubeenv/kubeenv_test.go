package kubeenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/test/kubeenv"
)

func TestStartServesAPIAndKubectl(t *testing.T) {
	start := time.Now()
	env := kubeenv.Require(t, kubeenv.Options{})
	t.Logf("control plane ready in %s", time.Since(start).Round(time.Millisecond))

	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("server version %q, want v1.37.2 (the build stamps it)", v.GitVersion)
	}
	ctx := context.Background()
	if err := kubeenv.EnsureNamespace(ctx, c, "probe"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, "probe", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace round trip: %v", err)
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; the kubeconfig check needs it")
	}
	manifest := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe, namespace: probe}\ndata: {a: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "-f", manifest).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configmap/probe created (server dry run)") {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
	}
}

func TestMissingBinariesSayHowToBuild(t *testing.T) {
	_, err := kubeenv.Start(context.Background(), kubeenv.Options{BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "hack/deps.d/30-kube.sh") {
		t.Fatalf("err = %v, want the build hint", err)
	}
}

// TestWholeCluster starts the whole-cluster mode: kwok nodes turn Ready, a Deployment's
// pods are scheduled and Running, the disruption controller fills a PDB's status, and a
// pod deleted from a node is re-created by its ReplicaSet.
func TestWholeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("whole cluster: skipped under -short")
	}
	start := time.Now()
	env := kubeenv.Require(t, kubeenv.Options{Cluster: true, Nodes: 3})
	t.Logf("whole cluster with 3 Ready kwok nodes in %s", time.Since(start).Round(time.Millisecond))
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	labels := map[string]string{"app": "web"}
	if _, err := c.AppsV1().Deployments("default").Create(ctx, kubeenv.Deployment("default", "web", 4, labels), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := env.WaitAvailable(ctx, c, "default", "web"); err != nil {
		t.Fatal(err)
	}
	t.Logf("4 replicas available in %s", time.Since(start).Round(time.Millisecond))
	minAvailable := intstr.FromInt32(3)
	if _, err := c.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitFor(ctx, "the disruption controller", func() (bool, error) {
		p, err := c.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == 4 && p.Status.DisruptionsAllowed == 1, err
	}); err != nil {
		t.Fatal(err)
	}
	pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 4 {
		t.Fatalf("%d pods: %v", len(pods.Items), err)
	}
	gone := pods.Items[0].Name
	if err := c.CoreV1().Pods("default").Delete(ctx, gone, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitFor(ctx, "the replacement pod", func() (bool, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Name == gone {
				return false, nil
			}
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
				running++
			}
		}
		return running == 4, nil
	}); err != nil {
		t.Fatal(err)
	}
}
