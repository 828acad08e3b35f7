package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/executors/kube"
)

// library is the default policy library the project ships.
const library = "../../policies"

// shipped is the catalogue check of every action remedy ships, node and cluster.
func shipped(t testing.TB) policy.Checker {
	t.Helper()
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
		t.Fatal(err)
	}
	if err := reg.Add(executors.InCluster, kube.Cluster(nil, kube.Options{})...); err != nil {
		t.Fatal(err)
	}
	return func(action string, params json.RawMessage) error {
		_, err := reg.Check(action, params)
		return err
	}
}

func TestLoadLibrary(t *testing.T) {
	p, err := policy.LoadWith(context.Background(), library, policy.Options{Check: shipped(t)})
	if err != nil {
		t.Fatal(err)
	}
	if p.Tests.Failed != 0 || p.Tests.Passed < 50 {
		t.Errorf("tests = %+v, want >= 50 passed, none failed", p.Tests)
	}
	if len(p.Revision) != 16 {
		t.Errorf("revision %q", p.Revision)
	}
	for _, f := range []string{"config.yaml", "irq_skew.rego", "irq_skew_test.rego", "packet_drops.rego", "psi.rego", "vm_freeze.rego"} {
		if !contains(p.Files, f) {
			t.Errorf("files %v lack %s", p.Files, f)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writePolicy writes files into a new directory and returns it.
func writePolicy(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const backlogRule = `package remedy

decisions contains {"action": "sysctl.set", "params": {"key": "net.core.netdev_max_backlog", "value": data.remedy.config.backlog}, "risk": "low", "reason": "backlog"} if {
	input.signal.kind == "packet_drops"
}
`

const backlogTest = `package remedy_test

import data.remedy

drops := {"signal": {"kind": "packet_drops"}}

test_backlog if {
	some d in remedy.decisions with input as drops
	d.params.value == data.remedy.config.backlog
}
`

func TestLoadRefuses(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		is    error
		want  string // the error's text, with the directory replaced by DIR
	}{
		{
			name:  "compile error with file and line",
			files: map[string]string{"p.rego": "package remedy\n\ndecisions contains x if {\n\tx := y\n}\n"},
			want:  "compile policies: 1 error occurred: DIR/p.rego:4: rego_unsafe_var_error: var y is unsafe",
		},
		{
			name:  "only tests",
			files: map[string]string{"p_test.rego": "package remedy_test\n\ntest_x if true\n"},
			want:  "load policies from DIR: no .rego files besides tests",
		},
		{
			name: "failing test",
			files: map[string]string{
				"p.rego": backlogRule, "p_test.rego": backlogTest + "\ntest_wrong if {\n\tcount(remedy.decisions) == 0 with input as drops\n}\n",
				"config.json": `{"remedy": {"config": {"backlog": 4096}}}`,
			},
			is:   policy.ErrTestsFailed,
			want: "policy tests failed: 1 of 2:\n  DIR/p_test.rego:12: data.remedy_test.test_wrong: FAIL",
		},
		{
			name: "unknown action in a rule head",
			files: map[string]string{
				"p.rego": "package remedy\n\ndecisions contains {\"action\": \"sysctl.sett\", \"params\": {\"key\": input.k}, \"risk\": \"low\", \"reason\": \"typo\"} if input.k\n",
			},
			is:   policy.ErrCatalogue,
			want: "decisions do not match the action catalogue:\n  DIR/p.rego:3: decision sysctl.sett: unknown action \"sysctl.sett\"",
		},
		{
			name: "constant params that do not check",
			files: map[string]string{
				"p.rego": "package remedy\n\ndecisions contains {\"action\": \"sysctl.set\", \"params\": {\"key\": \"net.core.netdev_max_backlog\"}, \"risk\": \"low\", \"reason\": \"no value\"} if input.k\n",
			},
			is:   policy.ErrCatalogue,
			want: "decisions do not match the action catalogue:\n  DIR/p.rego:3: decision sysctl.set: sysctl.set: invalid parameters: value is required",
		},
		{
			name: "computed params seen through a test input",
			files: map[string]string{
				"p.rego": backlogRule, "p_test.rego": backlogTest,
				"config.json": `{"remedy": {"config": {"backlog": 10}}}`,
			},
			is: policy.ErrCatalogue,
			want: "decisions do not match the action catalogue:\n  DIR/p_test.rego:8: test input: decision sysctl.set " +
				`{"key":"net.core.netdev_max_backlog","value":10}: sysctl.set: invalid parameters: net.core.netdev_max_backlog=10 out of range [1000, 1048576]`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writePolicy(t, c.files)
			_, err := policy.LoadWith(context.Background(), dir, policy.Options{Check: shipped(t)})
			if err == nil {
				t.Fatal("loaded")
			}
			if got := strings.ReplaceAll(err.Error(), dir, "DIR"); got != c.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
		})
	}
}

func TestDecisionDocument(t *testing.T) {
	cases := []struct {
		name, rule string
		want       string // the decisions as JSON, or the error
	}{
		{"defaults", `decisions contains {"action": "node.cordon", "reason": "r"}`,
			`[{"action":"node.cordon","risk":"low","reason":"r"}]`},
		{"approval", `decisions contains {"action": "node.cordon", "params": {}, "risk": "high", "reason": "r", "requires_approval": true}`,
			`[{"action":"node.cordon","params":{},"risk":"high","reason":"r","requires_approval":true}]`},
		{"empty set is nothing", `decisions contains {"action": "node.cordon"} if false`, `[]`},
		{"unknown field", `decisions contains {"action": "node.cordon", "why": "r"}`,
			`malformed decision: decision 0 has unknown field "why"`},
		{"bad risk", `decisions contains {"action": "node.cordon", "risk": "medium"}`,
			`malformed decision: decision 0 risk "medium" is not low, high or critical`},
		{"no action", `decisions contains {"reason": "r"}`, `malformed decision: decision 0 has no action`},
		{"not an object", `decisions contains "node.cordon"`, `malformed decision: decision 0 is string, not an object`},
		{"approval not a bool", `decisions contains {"action": "node.cordon", "requires_approval": "yes"}`,
			`malformed decision: decision 0 field "requires_approval" has type string`},
		{"not a set", `decisions := "node.cordon"`,
			`malformed decision: data.remedy.decisions must be a set or array of objects, got string`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writePolicy(t, map[string]string{"p.rego": "package remedy\n\n" + c.rule + "\n"})
			p, err := policy.Load(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := p.Eval(context.Background(), map[string]any{})
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				b, _ := json.Marshal(ds)
				got = string(b)
			}
			if got != c.want {
				t.Errorf("got %s\nwant %s", got, c.want)
			}
		})
	}
}
