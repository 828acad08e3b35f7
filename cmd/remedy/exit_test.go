package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/cmd/internal/cli/clitest"
)

// TestExitCodes runs the built binaries as a script would: help exits 0 on stdout, a usage
// mistake exits 2 with the error on stderr, a command that ran and failed exits 1.
func TestExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	remedy := clitest.Build(t, ".", "remedy")
	agent := clitest.Build(t, "../remedy-agent", "remedy-agent")
	dead := "http://127.0.0.1:1" // nothing listens on port 1
	for _, tc := range []struct {
		bin    string
		env    []string
		args   []string
		code   int
		stdout string // a line the standard output must contain
		stderr string // and the standard error
	}{
		{remedy, nil, nil, cli.ExitOK, "Usage:", ""},
		{remedy, nil, []string{"--help"}, cli.ExitOK, "Run the engine:", ""},
		{remedy, nil, []string{"serve", "-h"}, cli.ExitOK, "--signing-key-file string", ""},
		{remedy, nil, []string{"audit", "--help"}, cli.ExitOK, "remedy audit [command]", ""},
		{remedy, nil, []string{"audit", "query", "-h"}, cli.ExitOK, "-o, --output format", ""},
		{remedy, nil, []string{"policy", "eval", "-h"}, cli.ExitOK, "--input-file string", ""},
		{remedy, nil, []string{"approvals", "--help"}, cli.ExitOK, "approve", ""},
		{remedy, nil, []string{"approvals", "approve", "--help"}, cli.ExitOK, "--reason string", ""},
		{remedy, nil, []string{"help", "audit", "verify"}, cli.ExitOK, "--db string", ""},
		{remedy, nil, []string{"completion", "bash"}, cli.ExitOK, "__remedy_", ""},
		{remedy, nil, []string{"__complete", "audit", "query", "--type", ""}, cli.ExitOK, "action.result\n", ""},
		{remedy, nil, []string{"__complete", "approvals", "list", "-o", ""}, cli.ExitOK, "table\njson\nyaml\n", ""},
		{remedy, nil, []string{"frob"}, cli.ExitUsage, "", `unknown command "frob" for "remedy"`},
		{remedy, nil, []string{"approvals", "frob"}, cli.ExitUsage, "", `unknown command "frob" for "remedy approvals"`},
		{remedy, nil, []string{"audit", "frob"}, cli.ExitUsage, "", "Run 'remedy audit --help' for usage."},
		{remedy, nil, []string{"serve", "--no-such-flag"}, cli.ExitUsage, "", "unknown flag: --no-such-flag"},
		{remedy, nil, []string{"approvals", "list", "-o", "xml"}, cli.ExitUsage, "", `"xml": use table, json, yaml`},
		{remedy, nil, []string{"approvals", "show"}, cli.ExitUsage, "", "accepts 1 arg(s), received 0"},
		{remedy, nil, []string{"approvals", "approve", "a1", "--server", dead}, cli.ExitUsage, "", "--reason is required"},
		{remedy, nil, []string{"policy", "eval"}, cli.ExitUsage, "", "--input-file is required"},
		{remedy, nil, []string{"approvals", "list", "--server", dead}, cli.ExitFailure, "", "connection refused"},
		{remedy, []string{"REMEDY_SERVER=" + dead}, []string{"approvals", "list"}, cli.ExitFailure, "", "127.0.0.1:1"},
		{remedy, nil, []string{"audit", "verify", "--db", filepath.Join(t.TempDir(), "none.db")}, cli.ExitFailure, "", "no such file"},
		{remedy, nil, []string{"version"}, cli.ExitOK, "module:   github.com/remedyhq/remedy", ""},
		{agent, nil, nil, cli.ExitOK, "Usage:", ""},
		{agent, nil, []string{"run", "--help"}, cli.ExitOK, "--verify-key-file string", ""},
		{agent, nil, []string{"scan", "-h"}, cli.ExitOK, "--count int", ""},
		{agent, nil, []string{"scan", "--count", "1"}, cli.ExitUsage, "", "at least 2 scans are needed"},
		{agent, nil, []string{"scan", "-o", "csv"}, cli.ExitUsage, "", `"csv": use table, json, yaml`},
		{agent, nil, []string{"scan", "--count", "2", "--interval", "1ms", "--host-root", "/nonexistent"}, cli.ExitFailure, "", "nonexistent"},
		{agent, nil, []string{"frob"}, cli.ExitUsage, "", `unknown command "frob" for "remedy-agent"`},
		{agent, nil, []string{"version"}, cli.ExitOK, "remedy-agent ", ""},
	} {
		r := clitest.Exec(t, tc.bin, tc.env, tc.args...)
		name := filepath.Base(tc.bin) + " " + strings.Join(tc.args, " ")
		if r.Code != tc.code || !strings.Contains(r.Stdout, tc.stdout) || !strings.Contains(r.Stderr, tc.stderr) {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, r.Code, tc.code, r.Stdout, r.Stderr)
		}
		if tc.code == cli.ExitOK && r.Stderr != "" && (len(tc.args) == 0 || tc.args[0] != "__complete") { // __complete reports its directive on stderr
			t.Errorf("%s: stderr %q, want none", name, r.Stderr)
		}
	}

	// version reports the commit the binary was built from, where git can say.
	r := clitest.Exec(t, remedy, nil, "version", "-o", "json")
	var v cli.Version
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || r.Code != 0 || v.Module != "github.com/remedyhq/remedy" || v.GoVersion == "" {
		t.Fatalf("version -o json: %v, exit %d: %s", err, r.Code, r.Stdout)
	}
	// The go command stamps a clone, not a `git worktree` (whose .git is a file).
	if fi, err := os.Stat("../../.git"); err != nil || !fi.IsDir() {
		t.Logf("not a git clone: revision %q not checked", v.Revision)
		return
	}
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if want := strings.TrimSpace(string(head)); v.Revision != want {
			t.Errorf("version revision %q, want HEAD %q", v.Revision, want)
		}
	}
}
