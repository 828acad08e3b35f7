package detect

import (
	"os/exec"
	"strings"
	"testing"
)

// leanPackages are the packages that run in remedy-agent's detection path.
var leanPackages = []string{
	"github.com/remedyhq/remedy/nodefs/...",
	"github.com/remedyhq/remedy/agent/detect/...",
	"github.com/remedyhq/remedy/agent/scan/...",
}

// forbidden are imports the node agent must never pull in: policy evaluation, the
// Kubernetes client, the NATS server and SQL all belong to the engine.
var forbidden = []string{
	"github.com/open-policy-agent/opa",
	"k8s.io/client-go",
	"k8s.io/apimachinery",
	"github.com/nats-io/nats-server",
	"database/sql",
	"modernc.org/sqlite",
	"github.com/jackc/pgx",
	"github.com/mattn/go-sqlite3",
	"github.com/lib/pq",
}

func goList(t *testing.T, args ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the dependency check needs the go command: %v", err)
	}
	out, err := exec.Command(goBin, append([]string{"list"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestLeanDependencies(t *testing.T) {
	deps := goList(t, append([]string{"-deps"}, leanPackages...)...)
	for dep := range strings.Lines(deps) {
		dep = strings.TrimSpace(dep)
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("the agent's detectors import %s", dep)
			}
		}
	}
}

// TestPackageDocs fails when a package lacks its doc comment.
func TestPackageDocs(t *testing.T) {
	out := goList(t, append([]string{"-f", "{{.ImportPath}}\t{{.Doc}}"}, leanPackages...)...)
	for line := range strings.Lines(out) {
		path, doc, _ := strings.Cut(strings.TrimSpace(line), "\t")
		if doc == "" {
			t.Errorf("package %s has no doc comment", path)
		}
	}
}
