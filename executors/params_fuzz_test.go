package executors_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/remedyhq/remedy/executors"
)

// fuzzParams has the field shapes executors' parameters use: strings, pointers for
// "unset", numbers, lists and maps.
type fuzzParams struct {
	Interface string           `json:"interface"`
	Count     *int             `json:"count,omitempty"`
	Ratio     float64          `json:"ratio,omitempty"`
	Queues    []int            `json:"queues,omitempty"`
	Values    map[string]int64 `json:"values,omitempty"`
	Force     bool             `json:"force,omitempty"`
}

func (p *fuzzParams) Validate() error {
	if p.Interface == "" {
		return errors.New("interface is required")
	}
	if p.Count != nil && *p.Count < 0 {
		return errors.New("count must not be negative")
	}
	return nil
}

// FuzzDecodeParams fuzzes the strict decoder every executor's CheckParams goes through:
// no panic, every error wraps ErrBadParams, and accepted parameters survive a round trip
// through their canonical encoding unchanged (what the engine hashes into the action id
// is what the agent decodes).
func FuzzDecodeParams(f *testing.F) {
	for _, s := range []string{`{"interface":"eth0"}`, `{"interface":"eth0","count":4,"queues":[0,1],"values":{"a":1}}`,
		`{"interface":"eth0","extra":1}`, `{"interface":""}`, `{"count":-1,"interface":"x"}`, `{}`, `null`, `[]`, ``,
		`{"INTERFACE":"eth0"}`, `{"interface":"eth0","interface":""}`, `{"interface":"\ud800"}`, `{"ratio":1e400,"interface":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := executors.DecodeParams[fuzzParams](raw)
		if err != nil {
			if !errors.Is(err, executors.ErrBadParams) {
				t.Fatalf("error does not wrap ErrBadParams: %v", err)
			}
			return
		}
		canon, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted parameters do not encode: %v", err)
		}
		back, err := executors.DecodeParams[fuzzParams](canon)
		if err != nil {
			t.Fatalf("canonical form %s of accepted %q refused: %v", canon, raw, err)
		}
		if !reflect.DeepEqual(p, back) {
			t.Fatalf("round trip changed %q: %+v -> %s -> %+v", raw, p, canon, back)
		}
	})
}
