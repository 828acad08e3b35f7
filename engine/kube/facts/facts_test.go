package facts_test

import (
	"context"
	"net/http"
	"os"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	core "github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/kube/facts"
	"github.com/remedyhq/remedy/executors/kube/kubeaction"
	"github.com/remedyhq/remedy/test/kubeenv"
)

var kenv kubeenv.Shared

func TestMain(m *testing.M) { os.Exit(kenv.Run(m)) }

const zone = "topology.kubernetes.io/zone"

type countingRT struct {
	rt    http.RoundTripper
	calls *atomic.Int64
}

func (c countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return c.rt.RoundTrip(r)
}

func TestFactsFromInformerCache(t *testing.T) {
	env := kenv.Get(t)
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	nodes := []struct {
		name, zone string
		cordon     string // "", "remedy", "person"
	}{
		{"facts-a", "eu-1a", ""},
		{"facts-b", "eu-1a", "remedy"},
		{"facts-c", "eu-1b", "person"},
	}
	for _, n := range nodes {
		if _, err := kubeenv.CreateNode(ctx, admin, n.name, map[string]string{zone: n.zone}); err != nil {
			t.Fatal(err)
		}
		patch := ""
		switch n.cordon {
		case "remedy":
			patch = `{"spec":{"unschedulable":true},"metadata":{"annotations":{"` + kubeaction.AnnotationCordonedBy + `":"remedy-0"}}}`
		case "person":
			patch = `{"spec":{"unschedulable":true}}`
		}
		if patch != "" {
			if _, err := admin.CoreV1().Nodes().Patch(ctx, n.name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := kubeenv.EnsureNamespace(ctx, admin, "facts"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []kubeenv.PodSpec{
		{Name: "a-1", Node: "facts-a"},
		{Name: "a-2", Node: "facts-a"},
		{Name: "a-done", Node: "facts-a", Phase: corev1.PodSucceeded},
		{Name: "b-1", Node: "facts-b"},
	} {
		p.Namespace = "facts"
		if _, err := kubeenv.CreateRunningPod(ctx, admin, p); err != nil {
			t.Fatal(err)
		}
	}

	var calls atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingRT{rt, &calls} }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	p, err := facts.New(factory, facts.Options{GroupLabels: []string{zone, "pool"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Node(ctx, "facts-a"); err != facts.ErrNotSynced {
		t.Fatalf("before sync: err %v, want ErrNotSynced", err)
	}
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }() // Shutdown waits for the stop channel
	if err := p.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}

	got, err := p.Node(ctx, "facts-a")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Known || got.PodCount != 2 || got.AllocatableCPU != 3 || got.CPUs != 4 || got.Unschedulable || got.CordonedBy != "" ||
		got.Labels[zone] != "eu-1a" || len(got.Conditions) != 1 || got.Conditions[0] != (core.Condition{Type: "Ready", Status: "True", Reason: "KubeletReady"}) {
		t.Errorf("facts-a: %+v", got)
	}
	for name, by := range map[string]string{"facts-b": facts.ByRemedy, "facts-c": facts.ByOther} {
		got, err := p.Node(ctx, name)
		if err != nil || !got.Unschedulable || got.CordonedBy != by {
			t.Errorf("%s: cordonedBy %q unschedulable %v err %v, want %q", name, got.CordonedBy, got.Unschedulable, err, by)
		}
	}
	if got, err := p.Node(ctx, "facts-nope"); err != nil || got.Known || got.Name != "facts-nope" {
		t.Errorf("unknown node: %+v %v", got, err)
	}
	cl, err := p.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCluster := core.Cluster{Nodes: 3, Cordoned: 2, CordonedBy: map[string]map[string]int{zone: {"eu-1a": 1, "eu-1b": 1}, "pool": {}}}
	if !reflect.DeepEqual(cl, wantCluster) {
		t.Errorf("cluster %+v, want %+v", cl, wantCluster)
	}

	// Answers come from the cache: a thousand questions, no API call.
	before := calls.Load()
	for range 1000 {
		if _, err := p.Node(ctx, "facts-a"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Cluster(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("%d API calls while answering from the cache", n)
	}

	// Changes arrive through the watch.
	if _, err := kubeenv.CreateRunningPod(ctx, admin, kubeenv.PodSpec{Namespace: "facts", Name: "a-3", Node: "facts-a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Nodes().Patch(ctx, "facts-a", "application/merge-patch+json", []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := p.Node(ctx, "facts-a")
		cl, _ := p.Cluster(ctx)
		if got.PodCount == 3 && got.CordonedBy == facts.ByOther && cl.Cordoned == 3 && cl.CordonedBy[zone]["eu-1a"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch did not deliver: node %+v cluster %+v", got, cl)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
