package layout_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeCleanKeepsData runs `make clean` on a copy of the Makefile beside a bin/ and a
// data/ holding an audit log: the build output goes, the audit log (data/ is `remedy
// serve`'s default --data-dir) stays.
func TestMakeCleanKeepsData(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string][]byte{"Makefile": b, "bin/remedy": []byte("binary"), "data/audit.db": []byte("audit log")} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("make", "clean")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make clean: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "audit.db")); err != nil {
		t.Errorf("make clean removed the audit log: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin")); !os.IsNotExist(err) {
		t.Errorf("make clean left bin/: %v", err)
	}
}

// TestFlagsOnlyInCmd: command-line flags are parsed in cmd/ only; the packages the
// commands call take options (agent/scan.Options, app.Options, ...).
func TestFlagsOnlyInCmd(t *testing.T) {
	for _, p := range goList(t, "./...") {
		if strings.HasPrefix(p.ImportPath, module+"/cmd/") {
			continue
		}
		for _, imp := range p.Imports {
			if imp == "flag" || imp == "github.com/spf13/pflag" || imp == "github.com/spf13/cobra" {
				t.Errorf("%s imports %s: flags belong in cmd/", p.ImportPath, imp)
			}
		}
	}
}
