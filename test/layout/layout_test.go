// Package layout_test keeps the module's import rule: the node side (agent/, executors/,
// webhooks/, nodefs/, wire/) and the lean agent binary never import the engine, in their
// code or their tests. The wire contracts they share with it live under wire/.
package layout_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/remedyhq/remedy"

// goList returns the packages matched by patterns with their imports (tests' too).
func goList(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	args := append([]string{"list", "-json=ImportPath,Imports,TestImports,XTestImports,Deps", "-deps=false"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

func TestNodeSideImportsNoEngine(t *testing.T) {
	pkgs := goList(t, "./agent/...", "./executors/...", "./webhooks/...", "./nodefs/...", "./wire/...", "./cmd/remedy-agent/...")
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages: the patterns are wrong", len(pkgs))
	}
	// The module packages that tests import: their own dependencies count too.
	testOnly := map[string]bool{}
	for _, p := range pkgs {
		for _, imp := range append(append([]string{}, p.TestImports...), p.XTestImports...) {
			if strings.HasPrefix(imp, module+"/") && !isEngine(imp) {
				testOnly[imp] = true
			}
		}
	}
	var extra []string
	for imp := range testOnly {
		extra = append(extra, imp)
	}
	if len(extra) > 0 {
		pkgs = append(pkgs, goList(t, extra...)...)
	}
	for _, p := range pkgs {
		// Deps is the transitive closure of the package's own (non-test) imports.
		for _, d := range p.Deps {
			if isEngine(d) {
				t.Errorf("%s depends on %s", p.ImportPath, d)
			}
		}
		for _, list := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
			for _, imp := range list {
				if isEngine(imp) {
					t.Errorf("%s (or its tests) imports %s", p.ImportPath, imp)
				}
			}
		}
	}
}

func isEngine(path string) bool {
	return path == module+"/engine" || strings.HasPrefix(path, module+"/engine/")
}
