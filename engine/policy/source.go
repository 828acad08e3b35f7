package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// fileSet is a policy source read and parsed: modules by name (relative to the source,
// tests included) and the data document.
type fileSet struct {
	src      string
	names    []string // sorted: modules and data files
	modules  map[string]*ast.Module
	data     map[string]any
	revision string
}

// IsBundle reports whether src names an OPA bundle tarball rather than a directory.
func IsBundle(src string) bool {
	return strings.HasSuffix(src, ".tar.gz") || strings.HasSuffix(src, ".tgz")
}

func readSource(src string) (*fileSet, error) {
	if IsBundle(src) {
		return readBundle(src)
	}
	return readDir(src)
}

func readDir(dir string) (*fileSet, error) {
	res, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).All([]string{dir})
	if err != nil {
		return nil, fmt.Errorf("load policies from %s: %w", dir, err)
	}
	set := &fileSet{src: dir, modules: map[string]*ast.Module{}, data: res.Documents}
	raw := map[string][]byte{}
	for path, f := range res.Modules {
		rel := relTo(dir, path)
		set.modules[rel] = f.Parsed
		set.names = append(set.names, rel)
		raw[rel] = f.Raw
	}
	if set.revision, err = set.hash(raw); err != nil {
		return nil, err
	}
	dataFiles, err := listDataFiles(dir)
	if err != nil {
		return nil, err
	}
	set.names = append(set.names, dataFiles...)
	slices.Sort(set.names)
	return set, nil
}

// relTo names a file the loader read relative to the directory it was given, so that
// names (and the revision hashed from them) do not depend on how the directory was
// named. The loader drops the leading "/" of absolute paths.
func relTo(dir, path string) string {
	dir = filepath.Clean(dir)
	for _, p := range []string{path, "/" + path} {
		if filepath.IsAbs(p) != filepath.IsAbs(dir) {
			continue
		}
		if rel, err := filepath.Rel(dir, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return rel
		}
	}
	return path
}

// listDataFiles names the data files the loader read, for Policy.Files.
func listDataFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".json", ".yaml", ".yml":
			if !d.IsDir() {
				rel, _ := filepath.Rel(dir, path)
				out = append(out, rel)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list policy data in %s: %w", dir, err)
	}
	return out, nil
}

func readBundle(path string) (*fileSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open policy bundle: %w", err)
	}
	defer f.Close()
	b, err := bundle.NewReader(f).WithRegoVersion(ast.RegoV1).Read()
	if err != nil {
		return nil, fmt.Errorf("read policy bundle %s: %w", path, err)
	}
	set := &fileSet{src: path, modules: map[string]*ast.Module{}, data: b.Data}
	if set.data == nil {
		set.data = map[string]any{}
	}
	raw := map[string][]byte{}
	for _, m := range b.Modules {
		name := strings.TrimPrefix(m.Path, "/")
		set.modules[name] = m.Parsed
		set.names = append(set.names, name)
		raw[name] = m.Raw
	}
	if set.revision, err = set.hash(raw); err != nil {
		return nil, err
	}
	if b.Manifest.Revision != "" {
		set.revision = b.Manifest.Revision
	}
	return set, nil
}

// hash sorts the module names and returns the content revision: the sha256 of the
// modules and of the data document. Data is hashed as the document it makes, not as
// files, so the revision is the same however the data is split.
func (set *fileSet) hash(raw map[string][]byte) (string, error) {
	slices.Sort(set.names)
	h := sha256.New()
	for _, name := range set.names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(raw[name]))
		h.Write(raw[name])
	}
	docs, err := json.Marshal(set.data) // map keys marshal sorted
	if err != nil {
		return "", fmt.Errorf("encode policy data: %w", err)
	}
	h.Write(docs)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
