// Package rbac_test checks that deploy/rbac grants the engine exactly what it uses: every
// cluster action, the node facts, the condition source and leader election run as the
// engine's ServiceAccount against a real kube-apiserver in RBAC mode, and what the engine
// never needs is forbidden.
package rbac_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/remedyhq/remedy/engine/kube/facts"
	"github.com/remedyhq/remedy/engine/kube/leader"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube"
	"github.com/remedyhq/remedy/executors/kube/migrate"
	"github.com/remedyhq/remedy/test/kubeenv"
)

const (
	ns = "remedy-system"
	sa = "system:serviceaccount:remedy-system:remedy-engine"
)

// apply creates the RBAC objects of one manifest file in ns.
func apply(t *testing.T, c kubernetes.Interface, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var meta metav1.TypeMeta
		if err := json.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ClusterRole":
			var o rbacv1.ClusterRole
			mustDecode(t, doc, &o)
			_, err = c.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			mustDecode(t, doc, &o)
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
		case "Role":
			var o rbacv1.Role
			mustDecode(t, doc, &o)
			_, err = c.RbacV1().Roles(ns).Create(ctx, &o, metav1.CreateOptions{})
		case "RoleBinding":
			var o rbacv1.RoleBinding
			mustDecode(t, doc, &o)
			_, err = c.RbacV1().RoleBindings(ns).Create(ctx, &o, metav1.CreateOptions{})
		default:
			t.Fatalf("%s: unexpected kind %q", file, meta.Kind)
		}
		if err != nil {
			t.Fatalf("%s: create %s: %v", file, meta.Kind, err)
		}
	}
}

func mustDecode(t *testing.T, doc json.RawMessage, into any) {
	t.Helper()
	if err := json.Unmarshal(doc, into); err != nil {
		t.Fatal(err)
	}
}

// can asks the API server whether the engine may do something.
func can(t *testing.T, admin kubernetes.Interface, attr authzv1.ResourceAttributes) bool {
	t.Helper()
	r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{User: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &attr},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

func TestEngineRunsOnItsRBACAlone(t *testing.T) {
	env := kubeenv.Require(t, kubeenv.Options{Authorization: "RBAC"})
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kubeenv.EnsureNamespace(ctx, admin, ns); err != nil {
		t.Fatal(err)
	}
	apply(t, admin, "clusterrole.yaml")
	apply(t, admin, "leader-election.yaml")
	// The RBAC authorizer learns of new roles through its own watch.
	for deadline := time.Now().Add(10 * time.Second); !can(t, admin, authzv1.ResourceAttributes{Verb: "patch", Resource: "nodes"}); {
		if time.Now().After(deadline) {
			t.Fatal("the engine's ClusterRole never took effect")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Fixtures, as an administrator.
	if _, err := kubeenv.CreateNode(ctx, admin, "rbac-a", map[string]string{"topology.kubernetes.io/zone": "z1"}); err != nil {
		t.Fatal(err)
	}
	if err := kubeenv.EnsureNamespace(ctx, admin, "shop"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web-1", "web-2"} {
		if _, err := kubeenv.CreateRunningPod(ctx, admin, kubeenv.PodSpec{Namespace: "shop", Name: name, Node: "rbac-a",
			Labels: map[string]string{"app": "web"}, OwnerKind: "ReplicaSet"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kubeenv.CreatePDB(ctx, admin, "shop", "web", map[string]string{"app": "web"}, 2, 1); err != nil {
		t.Fatal(err)
	}

	// Everything else as the engine's ServiceAccount.
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	engine, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	factory := informers.NewSharedInformerFactory(engine, 0)
	fp, err := facts.New(factory, facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }() // Shutdown waits for the stop channel
	syncCtx, cancelSync := context.WithTimeout(ctx, 10*time.Second)
	defer cancelSync()
	if err := fp.WaitForSync(syncCtx); err != nil {
		t.Fatalf("informers as the engine: %v", err)
	}
	if n, err := fp.Node(ctx, "rbac-a"); err != nil || !n.Known || n.PodCount != 2 {
		t.Fatalf("facts as the engine: %+v %v", n, err)
	}

	reg := executors.NewRegistry()
	if err := kube.Register(reg, engine, kube.Options{Identity: "remedy-engine-0", Migrate: migrate.Options{RetryInterval: 100 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct{ action, params string }{
		{"node.cordon", `{}`},
		{"node.uncordon", `{}`},
		{"node.taint", `{"key":"remedy.dev/t","value":"1","effect":"NoSchedule"}`},
		{"node.untaint", `{"key":"remedy.dev/t","effect":"NoSchedule"}`},
		{"node.label", `{"set":{"remedy.dev/l":"1"}}`},
		{"workload.migrate", `{"pods":["shop/web-1"],"gracePeriodSeconds":0,"timeout":"10s"}`},
		{"node.drain", `{"gracePeriodSeconds":0,"timeout":"1s"}`}, // web-2 is held by the budget
	}
	for _, s := range steps {
		for _, dry := range []bool{true, false} {
			e, _, err := reg.Get(s.action)
			if err != nil {
				t.Fatal(err)
			}
			res := e.Execute(ctx, executors.Request{ID: s.action, Action: s.action, Node: "rbac-a", Params: json.RawMessage(s.params),
				DryRun: dry, CorrelationID: "rbac", Reason: "rbac test"})
			ok := res.Status == executors.Succeeded || res.Status == executors.DryRun
			if s.action == "node.drain" && !dry {
				ok = res.Status == executors.Failed && res.After["blocked"] == "shop/web-2"
			}
			if !ok || strings.Contains(res.Message, "forbidden") {
				t.Errorf("%s (dry run %v) as the engine: %s %s", s.action, dry, res.Status, res.Message)
			}
		}
	}
	// The Events were recorded (a forbidden Event is only logged by the actions).
	evs, err := admin.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range evs.Items {
		if e.ReportingInstance == "remedy-engine-0" {
			reasons = append(reasons, e.Reason)
		}
	}
	for _, want := range []string{"RemedyCordoned", "RemedyUncordoned", "RemedyTainted", "RemedyUntainted", "RemedyLabeled",
		"RemedyEvicted", "RemedyMigrated", "RemedyEvictionBlocked", "RemedyMigrateIncomplete"} {
		if !slices.Contains(reasons, want) {
			t.Errorf("no %s Event recorded as the engine (got %v)", want, reasons)
		}
	}

	led := make(chan struct{})
	lctx, stopLeading := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- leader.Run(lctx, engine, leader.Config{Namespace: ns, Name: "remedy-engine", Identity: "remedy-engine-0",
			LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond},
			func(ctx context.Context) { close(led); <-ctx.Done() })
	}()
	select {
	case <-led:
	case <-time.After(10 * time.Second):
		t.Fatal("leader election as the engine did not acquire the Lease")
	}
	stopLeading()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lease, err := admin.CoordinationV1().Leases(ns).Get(ctx, "remedy-engine", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "" {
		t.Errorf("lease not released: %+v %v", lease, err)
	}

	// And nothing more.
	denied := []authzv1.ResourceAttributes{
		{Verb: "delete", Resource: "pods", Namespace: "shop"},
		{Verb: "update", Resource: "nodes", Subresource: "status"},
		{Verb: "delete", Resource: "nodes"},
		{Verb: "get", Resource: "secrets", Namespace: ns},
		{Verb: "list", Resource: "secrets"},
		{Verb: "create", Resource: "pods", Namespace: "shop"},
		{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: ns, Name: "someone-elses"},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"},
		{Verb: "get", Group: "policy", Resource: "poddisruptionbudgets", Namespace: "shop"},
	}
	for _, a := range denied {
		if can(t, admin, a) {
			t.Errorf("the engine may %s %s/%s in %q; it should not", a.Verb, a.Resource, a.Subresource, a.Namespace)
		}
	}
	if _, err := engine.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list pods: %v", err)
	}
	if err := engine.CoreV1().Pods("shop").Delete(ctx, "web-2", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("delete pod as the engine: %v, want forbidden", err)
	}
}
