package kube_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/kube"
)

// TestCheckParams pins the load-time refusals, with their exact messages.
func TestCheckParams(t *testing.T) {
	reg := executors.NewRegistry()
	if err := kube.Register(reg, fake.NewClientset(), kube.Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"node.cordon", "node.drain", "node.label", "node.taint", "node.uncordon", "node.untaint", "workload.migrate"}
	if got := reg.Actions(); !equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	tests := []struct {
		action, params, err string
	}{
		{"node.cordon", `{}`, ""},
		{"node.cordon", `{"force":true}`, `invalid parameters: json: unknown field "force"`},
		{"node.taint", `{"key":"remedy.dev/x","value":"y","effect":"NoSchedule"}`, ""},
		{"node.taint", `{"key":"remedy.dev/x","effect":"NoExecute"}`, ""},
		{"node.taint", `{"key":"bad key","effect":"NoSchedule"}`, `invalid parameters: key "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{"node.taint", `{"key":"remedy.dev/x","effect":"Sometimes"}`, `invalid parameters: effect "Sometimes": must be NoSchedule, PreferNoSchedule or NoExecute`},
		{"node.untaint", `{"key":"remedy.dev/x","effect":"NoSchedule"}`, ""},
		{"node.label", `{"set":{"remedy.dev/nic":"degraded"},"remove":["remedy.dev/old"]}`, ""},
		{"node.label", `{}`, `invalid parameters: set or remove is required`},
		{"node.label", `{"set":{"node-role.kubernetes.io/control-plane":""}}`, `invalid parameters: label key "node-role.kubernetes.io/control-plane": the kubernetes.io domain is reserved`},
		{"node.label", `{"remove":["k8s.io/x"]}`, `invalid parameters: label key "k8s.io/x": the k8s.io domain is reserved`},
		{"node.label", `{"set":{"a":"b"},"remove":["a"]}`, `invalid parameters: label a is both set and removed`},
		{"workload.migrate", `{"selector":"app in (web, api)","pods":["ns/p"],"maxPods":2,"timeout":"90s","gracePeriodSeconds":0}`, ""},
		{"workload.migrate", `{"selector":"app in (web"}`, `invalid parameters: selector: unable to parse requirement: found '', expected: ',' or ')'`},
		{"workload.migrate", `{"timeout":"soon"}`, `invalid parameters: timeout "soon": want a positive duration such as 5m`},
		{"workload.migrate", `{"pods":["lonely"]}`, `invalid parameters: pod "lonely": want namespace/name`},
		{"workload.migrate", `{"maxPods":-1}`, `invalid parameters: maxPods must not be negative`},
		{"node.drain", `{"timeout":"10m","force":true,"deleteEmptyDirData":true}`, ""},
		{"node.drain", `{"selector":"app=web"}`, `invalid parameters: json: unknown field "selector"`},
		{"node.drain", `{"gracePeriodSeconds":-1}`, `invalid parameters: gracePeriodSeconds must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.action+tt.params, func(t *testing.T) {
			_, err := reg.Check(tt.action, json.RawMessage(tt.params))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.action+": "+tt.err {
				t.Fatalf("error %v\nwant %s: %s", err, tt.action, tt.err)
			}
			if !errors.Is(err, executors.ErrBadParams) {
				t.Errorf("error does not wrap ErrBadParams")
			}
		})
	}
}

// TestRefusedBeforeTouchingTheCluster: bad params, no node, or a passed deadline are
// answered without a single API call.
func TestRefusedBeforeTouchingTheCluster(t *testing.T) {
	client := fake.NewClientset()
	tests := []struct {
		name   string
		req    executors.Request
		status executors.Status
	}{
		{"bad params", executors.Request{Action: "node.taint", Node: "n", Params: json.RawMessage(`{"key":""}`)}, executors.Refused},
		{"no node", executors.Request{Action: "node.cordon"}, executors.Refused},
		{"expired", executors.Request{Action: "workload.migrate", Node: "n", Deadline: time.Now().Add(-time.Minute)}, executors.Expired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, e := range kube.Cluster(client, kube.Options{}) {
				if e.Action() != tt.req.Action {
					continue
				}
				if res := e.Execute(context.Background(), tt.req); res.Status != tt.status {
					t.Fatalf("status %s (%s), want %s", res.Status, res.Message, tt.status)
				}
			}
			if n := len(client.Actions()); n != 0 {
				t.Fatalf("%d API calls, want none", n)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
