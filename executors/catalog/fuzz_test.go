package catalog_test

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
)

// FuzzRegistryCheck fuzzes the engine's check of a decision against the node action
// catalogue (Registry.Check: the action's name, then its parameters), seeded with the
// examples of docs/actions.md: no panic, and every refusal of a known action's
// parameters wraps ErrBadParams.
func FuzzRegistryCheck(f *testing.F) {
	doc, err := os.ReadFile("../../docs/actions.md")
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range jsonBlock.FindAllSubmatch(doc, -1) {
		var d struct {
			Action string          `json:"action"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(m[1], &d) == nil && d.Action != "" {
			f.Add(d.Action, []byte(d.Params))
		}
	}
	f.Add("no.such", []byte(`{}`))
	f.Add("sysctl.set", []byte(`null`))
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: "/nonexistent"})...); err != nil {
		f.Fatal(err)
	}
	actions := map[string]bool{}
	for _, a := range reg.Actions() {
		actions[a] = true
	}
	f.Fuzz(func(t *testing.T, action string, params []byte) {
		_, err := reg.Check(action, params)
		if err != nil && actions[action] && !errors.Is(err, executors.ErrBadParams) {
			t.Fatalf("%s: error does not wrap ErrBadParams: %v", action, err)
		}
		if err == nil && !actions[action] {
			t.Fatalf("unknown action %q accepted", action)
		}
	})
}
