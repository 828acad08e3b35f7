package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/remedyhq/remedy/engine/policy"
)

// TestRevisionIgnoresThePath: one directory given by different paths (relative,
// absolute, with a trailing slash, through a symlink) has one revision.
func TestRevisionIgnoresThePath(t *testing.T) {
	abs, err := filepath.Abs(library)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "pol")
	if err := os.Symlink(abs, link); err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, src := range []string{library, library + "/", abs, "./" + library, link, filepath.Join(abs, "..", "policies")} {
		p, err := policy.LoadWith(context.Background(), src, policy.Options{SkipTests: true})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if want == "" {
			want = p.Revision
		}
		if p.Revision != want {
			t.Errorf("%s: revision %s, want %s (as loaded from %s)", src, p.Revision, want, library)
		}
	}
}
