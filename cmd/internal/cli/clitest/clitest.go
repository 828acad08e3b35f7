// Package clitest checks a command tree's help against golden files and runs built
// binaries for their exit codes.
package clitest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden help files in testdata/help")

// Paths returns the command path of every command in the tree under root (root first),
// without cobra's own help and completion commands.
func Paths(root *cobra.Command) [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			walk(sub, append(path[:len(path):len(path)], sub.Name()))
		}
	}
	walk(root, nil)
	return out
}

// Help checks `<path> --help` of every command in the tree newRoot builds against
// testdata/help/<binary>[_<path>].golden: help goes to stdout, nothing to stderr, no error.
// `go test -run TestHelp -update` rewrites the files; review them as code.
func Help(t *testing.T, newRoot func() *cobra.Command) {
	t.Helper()
	t.Setenv("COLUMNS", "100")
	root := newRoot()
	dir := filepath.Join("testdata", "help")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, path := range Paths(root) {
		name := strings.Join(append([]string{root.Name()}, path...), "_") + ".golden"
		want[name] = true
		var out, errb bytes.Buffer
		_, err := cli.Run(context.Background(), newRoot(), append(path, "--help"), &out, &errb)
		if err != nil || errb.Len() > 0 {
			t.Errorf("%s --help: err %v, stderr %q", strings.Join(path, " "), err, errb.String())
			continue
		}
		golden := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(golden)
		if err != nil {
			t.Errorf("%v (go test -run %s -update writes it)", err, t.Name())
			continue
		}
		if !bytes.Equal(b, out.Bytes()) {
			t.Errorf("%s --help differs from %s (go test -run %s -update rewrites it):\n%s", strings.Join(path, " "), golden, t.Name(), out.String())
		}
	}
	// A golden file of a command that is gone is stale.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !want[e.Name()] {
			if *update {
				_ = os.Remove(filepath.Join(dir, e.Name()))
				continue
			}
			t.Errorf("%s: no such command any more", filepath.Join(dir, e.Name()))
		}
	}
}

// Build builds the main package in dir into a temporary directory, with VCS stamping where
// possible (GOFLAGS may turn it off), and returns the binary's path.
func Build(t *testing.T, dir, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
}

// Result is what one run of a binary did.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Exec runs bin with args and an environment without REMEDY_* variables (plus env).
func Exec(t *testing.T, bin string, env []string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REMEDY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return r
}
