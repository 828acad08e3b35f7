package kubeenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
