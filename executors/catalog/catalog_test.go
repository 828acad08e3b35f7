package catalog_test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
)

func registry(t *testing.T) *executors.Registry {
	t.Helper()
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: "/nonexistent"})...); err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestNodeActions(t *testing.T) {
	want := []string{"irq.spread", "irqbalance.restart", "nic.channels", "nic.rfs", "nic.ring", "nic.rps", "nic.tune", "sysctl.set"}
	if got := registry(t).Actions(); !slices.Equal(got, want) {
		t.Errorf("actions %v, want %v", got, want)
	}
}

var jsonBlock = regexp.MustCompile("(?s)```json\n(.*?)\n```")

// Every action is documented in docs/actions.md, and every example decision there passes
// the load-time check of the executor it names.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	reg := registry(t)
	seen := map[string]bool{}
	for _, m := range jsonBlock.FindAllSubmatch(doc, -1) {
		var d struct {
			Action string          `json:"action"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(m[1], &d); err != nil {
			t.Errorf("example %s: %v", m[1], err)
			continue
		}
		if _, err := reg.Check(d.Action, d.Params); err != nil {
			t.Errorf("example %s: %v", m[1], err)
		}
		seen[d.Action] = true
	}
	for _, a := range reg.Actions() {
		if !seen[a] || !strings.Contains(string(doc), "\n## "+a+"\n") {
			t.Errorf("docs/actions.md has no section with an example for %s", a)
		}
	}
}

// The node executors run in the lean agent: none of them may pull in the policy engine,
// Kubernetes clients, the NATS server or SQL drivers.
func TestNoHeavyImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list: skipped with -short")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/open-policy-agent/", "k8s.io/client-go", "github.com/nats-io/nats-server", "database/sql", "modernc.org/sqlite", "github.com/jackc/pgx"} {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("node executors import %s", dep)
			}
		}
	}
}

// Every node executor package says what it is for, with the privileges it needs and an
// example decision.
func TestPackageDocs(t *testing.T) {
	for _, base := range []string{"irqbalance", "irqspread", "nicchannels", "nicring", "nicrps", "nictune", "sysctl"} {
		pkgs, err := parser.ParseDir(token.NewFileSet(), filepath.Join("..", base), func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		var doc string
		for _, p := range pkgs {
			for _, f := range p.Files {
				if f.Doc != nil {
					doc += f.Doc.Text()
				}
			}
		}
		if !strings.Contains(doc, "Privileges:") || !strings.Contains(doc, `"action":`) {
			t.Errorf("package %s: doc comment lacks its privileges or an example decision", base)
		}
	}
}
