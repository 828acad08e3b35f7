package rbac_test

import (
	"context"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/remedyhq/remedy/engine/natsauth"
	"github.com/remedyhq/remedy/test/kubeenv"
)

// The engine's auth callout runs on deploy/rbac plus overlays/ha/natsauth-rbac.yaml alone:
// as the engine's ServiceAccount, in RBAC mode, it reviews an agent pod's token and
// finds the pod's node.
func TestNATSAuthRunsOnItsRBACAlone(t *testing.T) {
	env := kubeenv.Require(t, kubeenv.Options{Authorization: "RBAC"})
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kubeenv.EnsureNamespace(ctx, admin, ns); err != nil {
		t.Fatal(err)
	}
	apply(t, admin, "clusterrole.yaml")
	apply(t, admin, "../overlays/ha/natsauth-rbac.yaml")
	for deadline := time.Now().Add(10 * time.Second); !can(t, admin, authzv1.ResourceAttributes{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"}); {
		if time.Now().After(deadline) {
			t.Fatal("the natsauth ClusterRole never took effect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := kubeenv.CreateNode(ctx, admin, "rbac-natsauth", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeenv.CreateRunningPod(ctx, admin, kubeenv.PodSpec{Namespace: ns, Name: "remedy-agent-x", Node: "rbac-natsauth", ServiceAccount: "remedy-agent"}); err != nil {
		t.Fatal(err)
	}
	tok, err := kubeenv.PodToken(ctx, admin, ns, "remedy-agent", "remedy-agent-x", natsauth.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	engine, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := natsauth.KubeReviewer{Client: engine, Namespace: ns, ServiceAccount: "remedy-agent"}.Review(ctx, tok)
	if err != nil || id.Node != "rbac-natsauth" {
		t.Fatalf("review as the engine: %+v, %v; want node rbac-natsauth", id, err)
	}
}
