package conditions_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/remedyhq/remedy/engine/kube/conditions"
	"github.com/remedyhq/remedy/test/kubeenv"
	"github.com/remedyhq/remedy/wire/signal"
)

var kenv kubeenv.Shared

func TestMain(m *testing.M) { os.Exit(kenv.Run(m)) }

// sink records what was submitted; it fails the first failures calls.
type sink struct {
	mu       sync.Mutex
	failures int
	got      []signal.Signal
	calls    int
}

func (s *sink) Submit(_ context.Context, sigs []signal.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failures > 0 {
		s.failures--
		return errors.New("journal unavailable")
	}
	for _, sig := range sigs {
		if err := sig.Validate(); err != nil {
			return err
		}
	}
	s.got = append(s.got, sigs...)
	return nil
}

func (s *sink) wait(t *testing.T, n int) []signal.Signal {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := append([]signal.Signal(nil), s.got...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d signals, want %d: %+v", len(got), n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConditionsBecomeSignals(t *testing.T) {
	env := kenv.Get(t)
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range []string{"cond-a", "cond-b"} {
		if _, err := kubeenv.CreateNode(ctx, c, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Already firing before the watch starts: reported once it syncs.
	freeze := corev1.NodeCondition{Type: "VMEventScheduled", Status: corev1.ConditionTrue, Reason: "Freeze", Message: "Freeze in 15s"}
	if err := kubeenv.SetNodeCondition(ctx, c, "cond-a", freeze); err != nil {
		t.Fatal(err)
	}

	s := &sink{failures: 2} // the first submissions fail and must be retried
	factory := informers.NewSharedInformerFactory(c, 0)
	w, err := conditions.New(factory, s, conditions.Options{Rules: []conditions.Rule{
		{Type: "VMEventScheduled"},
		{Type: "KernelDeadlock", Kind: "kernel_deadlock"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }() // Shutdown waits for the stop channel
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	got := s.wait(t, 1)
	first := got[0]
	if first.Status != signal.Firing || first.Node != "cond-a" || first.Kind != signal.KindVMFreeze || first.Source != "kubernetes" ||
		first.Labels["condition"] != "VMEventScheduled" || first.Labels["reason"] != "Freeze" || first.Annotations["message"] != "Freeze in 15s" ||
		first.StartsAt.IsZero() || first.Fingerprint != conditions.Fingerprint("cond-a", "VMEventScheduled") {
		t.Fatalf("first signal %+v", first)
	}

	// A heartbeat that changes nothing makes no signal; an unwatched type neither.
	if err := kubeenv.SetNodeCondition(ctx, c, "cond-a", freeze); err != nil {
		t.Fatal(err)
	}
	if err := kubeenv.SetNodeCondition(ctx, c, "cond-b", corev1.NodeCondition{Type: "FrequentKubeletRestart", Status: corev1.ConditionTrue}); err != nil {
		t.Fatal(err)
	}
	// The second watched type, with its own kind.
	if err := kubeenv.SetNodeCondition(ctx, c, "cond-b", corev1.NodeCondition{Type: "KernelDeadlock", Status: corev1.ConditionTrue, Reason: "DockerHung"}); err != nil {
		t.Fatal(err)
	}
	got = s.wait(t, 2)
	if got[1].Node != "cond-b" || got[1].Kind != "kernel_deadlock" || got[1].Status != signal.Firing {
		t.Fatalf("second signal %+v", got[1])
	}

	// Cleared: resolved, with the firing's start (so both share the incident) and an end.
	time.Sleep(1100 * time.Millisecond) // transition times have second resolution
	if err := kubeenv.SetNodeCondition(ctx, c, "cond-a", corev1.NodeCondition{Type: "VMEventScheduled", Status: corev1.ConditionFalse, Reason: "NoEvent"}); err != nil {
		t.Fatal(err)
	}
	got = s.wait(t, 3)
	res := got[2]
	if res.Status != signal.Resolved || res.Node != "cond-a" || !res.StartsAt.Equal(first.StartsAt) || !res.EndsAt.After(res.StartsAt) ||
		res.Fingerprint != first.Fingerprint || res.Key() == first.Key() {
		t.Fatalf("resolved signal %+v (firing %+v)", res, first)
	}

	// The node goes away: its firing condition resolves.
	if err := c.CoreV1().Nodes().Delete(ctx, "cond-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got = s.wait(t, 4)
	if got[3].Node != "cond-b" || got[3].Status != signal.Resolved || got[3].Kind != "kernel_deadlock" {
		t.Fatalf("deleted node signal %+v", got[3])
	}

	time.Sleep(300 * time.Millisecond)
	s.mu.Lock()
	n, calls := len(s.got), s.calls
	s.mu.Unlock()
	if n != 4 || calls != 6 {
		t.Errorf("%d signals in %d submissions, want 4 in 6 (2 failed and retried)", n, calls)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRulesAreChecked(t *testing.T) {
	factory := informers.NewSharedInformerFactory(nil, 0)
	tests := []struct {
		rules []conditions.Rule
		err   string
	}{
		{[]conditions.Rule{{Kind: "x"}}, "conditions: rule without a condition type"},
		{[]conditions.Rule{{Type: "A"}, {Type: "A"}}, "conditions: condition type A listed twice"},
	}
	for _, tt := range tests {
		_, err := conditions.New(factory, &sink{}, conditions.Options{Rules: tt.rules})
		if err == nil || err.Error() != tt.err {
			t.Errorf("rules %+v: err %v, want %q", tt.rules, err, tt.err)
		}
	}
	if _, err := conditions.New(factory, nil, conditions.Options{}); err == nil {
		t.Error("nil sink accepted")
	}
}
