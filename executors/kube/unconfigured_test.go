package kube_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube"
)

// Without a cluster every cluster action is still known: its parameters are checked as
// the real action checks them, and running it changes nothing and says what to configure.
func TestUnconfiguredSaysWhatToConfigure(t *testing.T) {
	reg := executors.NewRegistry()
	if err := reg.Add(executors.InCluster, kube.Unconfigured()...); err != nil {
		t.Fatal(err)
	}
	want := []string{"node.cordon", "node.drain", "node.label", "node.taint", "node.uncordon", "node.untaint", "workload.migrate"}
	if got := reg.Actions(); !equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	if _, err := reg.Check("workload.migrate", json.RawMessage(`{"maxPods": -1}`)); !errors.Is(err, executors.ErrBadParams) {
		t.Errorf("bad params checked: %v", err)
	}
	e, _, err := reg.Get("node.cordon")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dry  bool
		want string
	}{
		{false, "no Kubernetes cluster: did not run node.cordon on node n1; start the engine with --kubeconfig FILE or --in-cluster"},
		{true, "no Kubernetes cluster: would run node.cordon on node n1; start the engine with --kubeconfig FILE or --in-cluster"},
	} {
		res := e.Execute(t.Context(), executors.Request{ID: "a1", Action: "node.cordon", Node: "n1", DryRun: tc.dry, CorrelationID: "c"})
		if res.Status != executors.Unavailable || res.Message != tc.want || res.ID != "a1" || res.Node != "n1" {
			t.Errorf("dry run %v: got %s %q", tc.dry, res.Status, res.Message)
		}
	}
	if got := len(kube.Unconfigured("node.cordon", "node.uncordon")); got != len(want)-2 {
		t.Errorf("%d unconfigured besides the two given, want %d", got, len(want)-2)
	}
}
