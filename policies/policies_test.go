package policies_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/engine/policy"
)

// TestRego runs the library's Rego tests through OPA's tester, as `opa test policies/`.
func TestRego(t *testing.T) {
	results, err := policy.RunTests(context.Background(), ".", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 50 {
		t.Errorf("%d Rego tests, want at least 50", len(results))
	}
	for _, r := range results {
		if !r.Pass() {
			t.Errorf("%s:%d: %s.%s: fail=%v err=%v", r.Location.File, r.Location.Row, r.Package, r.Name, r.Fail, r.Error)
		}
	}
}

// opaBinary finds the OPA CLI that hack/deps.d/40-opa.sh installs.
func opaBinary(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../.cache/bin/opa"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("opa"); err == nil {
		return p
	}
	if testing.Short() {
		t.Skip("no opa CLI (bash hack/deps.d/40-opa.sh installs it)")
	}
	t.Fatal("no opa CLI: run bash hack/deps.d/40-opa.sh (go test -short skips this test)")
	return ""
}

// TestOPACLI runs the OPA CLI over the library: its tests, `opa check --strict` (the
// Rego lint; Regal is not served by the module proxy) and `opa fmt --list`.
func TestOPACLI(t *testing.T) {
	opa := opaBinary(t)
	for _, c := range []struct {
		args []string
		want string // the output, exactly; "" means none
	}{
		{args: []string{"check", "--strict", "."}},
		{args: []string{"fmt", "--list", "."}},
		{args: []string{"test", "."}},
	} {
		t.Run(strings.Join(c.args[:len(c.args)-1], " "), func(t *testing.T) {
			out, err := exec.Command(opa, c.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("opa %s: %v\n%s", strings.Join(c.args, " "), err, out)
			}
			got := string(out)
			if c.args[0] == "test" {
				if !strings.HasPrefix(got, "PASS: ") {
					t.Errorf("opa test:\n%s", got)
				}
				return
			}
			if got != c.want {
				t.Errorf("opa %s:\n%s", strings.Join(c.args, " "), got)
			}
		})
	}
}
