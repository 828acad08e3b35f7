package audit_test

import (
	"os"
	"strings"
	"testing"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard/verify"
)

// TestDocsNameTheOutcomesTheEngineWrites: docs/audit.md's verification row and outcome
// list name exactly the outcomes the verifier writes, so a reader's query matches the log.
func TestDocsNameTheOutcomesTheEngineWrites(t *testing.T) {
	b, err := os.ReadFile("../../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	var row, outcomes string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "| `verification` |"):
			row = line
		case strings.HasPrefix(line, "| `outcome`"):
			outcomes = line
		}
	}
	if row == "" || outcomes == "" {
		t.Fatal("docs/audit.md has no verification row or outcome field row")
	}
	for _, o := range []string{verify.Fixed, verify.NotFixed, verify.RolledBack} {
		for name, line := range map[string]string{"verification row": row, "outcome field": outcomes} {
			if !strings.Contains(line, "`"+o+"`") {
				t.Errorf("docs/audit.md %s lacks the outcome %q the verifier writes:\n%s", name, o, line)
			}
		}
	}
	for _, stale := range []string{"`cleared`", "`persists`"} {
		if strings.Contains(string(b), stale) {
			t.Errorf("docs/audit.md still names the outcome %s, which nothing writes", stale)
		}
	}
	if verify.Fixed != audit.OutcomeFixed || verify.NotFixed != audit.OutcomeNotFixed {
		t.Error("the verifier's outcomes are not the audit package's")
	}
}
