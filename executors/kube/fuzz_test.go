package kube_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube"
)

// FuzzCheckParams fuzzes the load-time check of every cluster action (the first byte
// picks the action): no panic, every refusal wraps ErrBadParams, and parameters it
// accepts run (in dry run, against a fake cluster with the node) without a panic and
// without being refused for their parameters.
func FuzzCheckParams(f *testing.F) {
	execs := kube.Cluster(fake.NewClientset(), kube.Options{})
	index := map[string]byte{}
	for i, e := range execs {
		index[e.Action()] = byte(i)
	}
	for _, s := range []struct{ action, params string }{
		{"node.cordon", `{}`},
		{"node.uncordon", `{}`},
		{"node.taint", `{"key":"remedy.dev/x","value":"y","effect":"NoSchedule"}`},
		{"node.taint", `{"key":"bad key","effect":"NoSchedule"}`},
		{"node.untaint", `{"key":"remedy.dev/x","effect":"NoSchedule"}`},
		{"node.label", `{"set":{"remedy.dev/nic":"degraded"},"remove":["remedy.dev/old"]}`},
		{"node.label", `{"set":{"node-role.kubernetes.io/control-plane":""}}`},
		{"workload.migrate", `{"selector":"app in (web, api)","pods":["ns/p"],"maxPods":2,"timeout":"90s","gracePeriodSeconds":0}`},
		{"workload.migrate", `{"selector":"app in (web"}`},
		{"node.drain", `{"timeout":"10m","force":true,"deleteEmptyDirData":true}`},
		{"node.drain", `{"gracePeriodSeconds":-1}`},
	} {
		i, ok := index[s.action]
		if !ok {
			f.Fatalf("no cluster action %s", s.action)
		}
		f.Add(i, []byte(s.params))
	}
	f.Fuzz(func(t *testing.T, which byte, params []byte) {
		e := execs[int(which)%len(execs)]
		err := e.CheckParams(params)
		if err != nil {
			if !errors.Is(err, executors.ErrBadParams) {
				t.Fatalf("%s: error does not wrap ErrBadParams: %v", e.Action(), err)
			}
			return
		}
		client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}})
		for _, x := range kube.Cluster(client, kube.Options{}) {
			if x.Action() != e.Action() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res := x.Execute(ctx, executors.Request{ID: "a", Action: e.Action(), Node: "n", Params: json.RawMessage(params), DryRun: true})
			cancel()
			if res.Status == executors.Refused {
				t.Fatalf("%s %s: accepted by CheckParams, refused by Execute: %s", e.Action(), params, res.Message)
			}
		}
	})
}
