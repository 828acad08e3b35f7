package detect

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFixturesUpToDate regenerates the fixture nodes and compares them with the
// committed ones, so that testdata/gen.go and testdata/nodes cannot drift apart.
func TestFixturesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs testdata/gen.go")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("needs the go command: %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command(goBin, "run", "./testdata/gen.go", dir).CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	want := tree(t, "testdata/nodes")
	got := tree(t, dir)
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: committed but not generated", p)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: differs from what gen.go writes (run go run ./testdata/gen.go)", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: generated but not committed", p)
		}
	}
}

// tree maps every file and symlink below root to its content or link target.
func tree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.Type()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			out[rel] = []byte("-> " + l)
			return err
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
