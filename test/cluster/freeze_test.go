package cluster_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/test/kubeenv"
)

// TestFreezeConditionOnALiveCluster: a cloud's node-problem detector sets FreezeScheduled
// on a node the field has labelled IRQ-skewed; the engine's node-condition source (the
// --node-conditions default) turns it into a vm_freeze signal and the shipped library
// decides irqbalance.restart. The condition clearing resolves the signal, closing the
// incident (same correlation id).
func TestFreezeConditionOnALiveCluster(t *testing.T) {
	k := startCluster(t, 2)
	x := "kwok-node-1"
	if _, err := k.c.CoreV1().Nodes().Patch(k.ctx, x, "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"remedy.dev/irq-skewed":"true"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	a := startEngineWith(t, k, "../../policies", nil)
	set := func(status corev1.ConditionStatus) {
		t.Helper()
		if err := kubeenv.SetNodeCondition(k.ctx, k.c, x, corev1.NodeCondition{Type: "FreezeScheduled", Status: status,
			Reason: "AzureScheduledEvent", Message: "Freeze scheduled"}); err != nil {
			t.Fatal(err)
		}
	}
	set(corev1.ConditionTrue)
	var firing audit.Event
	if err := k.env.WaitFor(k.ctx, "the freeze decided", func() (bool, error) {
		evs, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.Decision, Kind: "vm_freeze"})
		if err != nil || len(evs) == 0 {
			return false, err
		}
		firing = evs[0]
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	planned, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.ActionPlanned, CorrelationID: firing.CorrelationID})
	if firing.Outcome != "act" || err != nil || len(planned) != 1 || planned[0].Action != "irqbalance.restart" || planned[0].Node != x {
		t.Fatalf("decision %s, planned %+v (%v)", firing.Outcome, planned, err)
	}
	set(corev1.ConditionFalse)
	if err := k.env.WaitFor(k.ctx, "the freeze resolved", func() (bool, error) {
		evs, err := a.Store.Query(k.ctx, audit.Filter{Type: audit.SignalReceived, CorrelationID: firing.CorrelationID})
		for _, ev := range evs {
			if ev.Outcome == "resolved" {
				return true, nil
			}
		}
		return false, err
	}); err != nil {
		t.Fatal(err)
	}
}
