package nettest

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/remedyhq/remedy/executors"
)

// CheckParams runs an executor's CheckParams over cases, parameters to the exact error
// ("" for valid ones); every error must also wrap executors.ErrBadParams.
func CheckParams(t *testing.T, e executors.Executor, cases map[string]string) {
	t.Helper()
	for params, want := range cases {
		err := e.CheckParams(json.RawMessage(params))
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", params, err)
			}
			continue
		}
		if err == nil || err.Error() != want || !errors.Is(err, executors.ErrBadParams) {
			t.Errorf("%s:\n got %v\nwant %s", params, err, want)
		}
	}
}

// FuzzParams fuzzes an executor's CheckParams from seeds: it must never panic, and every
// error it returns must wrap executors.ErrBadParams.
func FuzzParams(f *testing.F, e executors.Executor, seeds ...string) {
	for _, s := range append(seeds, `{}`, `null`, `[]`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := e.CheckParams(b); err != nil && !errors.Is(err, executors.ErrBadParams) {
			t.Fatalf("error does not wrap ErrBadParams: %v", err)
		}
	})
}
