package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/demo"
)

// TestDemoFromAnywhere runs `remedy demo` as a new user would, outside the repository:
// the samples and the policy library are built in, every sample is decided, nothing is
// an unknown action, the PSI cordon is approved and recorded as unavailable (no
// cluster), the VM freeze restarts irqbalance, and the dry runs say what they would do.
func TestDemoFromAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the engine and four agents")
	}
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := demo.Run(ctx, demo.Options{Timeout: 30 * time.Second}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, bad := range []string{"unknown action", "warning:", " failed "} {
		if strings.Contains(got, bad) {
			t.Errorf("the demo says %q:\n%s", bad, got)
		}
	}
	for _, want := range []string{
		"approved node.cordon on aks-nodepool1-00000004 as demo-operator",
		"unavailable       059268a083dd9d46  no Kubernetes cluster: would run node.cordon on node aks-nodepool1-00000004",
		"aks-nodepool1-00000003   vm_freeze     act              irqbalance.restart (low): VM freeze (FreezeScheduled)",
		"aks-nodepool1-00000002   packet_drops  act ",
		"aks-nodepool1-00000001   irq_skew      act ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo does not say %q:\n%s", want, got)
		}
	}
}
