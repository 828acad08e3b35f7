package policy

import (
	"context"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// flatCache is topdown's virtual cache (the values of the rules and function calls one
// evaluation has computed) kept as a short list per frame instead of a trie of hash maps.
// An evaluation of the library caches a few dozen refs, so a linear scan costs less than
// hashing every ref element, and a pooled cache allocates almost nothing. Its answers are
// those of topdown.NewVirtualCache: the same key equality (every ref element Equal), an
// undefined mark that a later value does not clear, lookups in the top frame only.
type flatCache struct {
	frames [][]cacheEntry
}

type cacheEntry struct {
	ref       ast.Ref
	value     *ast.Term
	undefined bool
}

var _ topdown.VirtualCache = (*flatCache)(nil)

var flatCaches = sync.Pool{New: func() any { return &flatCache{frames: make([][]cacheEntry, 1, 2)} }}

// getFlatCache returns an empty cache with one frame; putFlatCache gives it back.
func getFlatCache() *flatCache { return flatCaches.Get().(*flatCache) }

func putFlatCache(c *flatCache) {
	if len(c.frames) != 1 || cap(c.frames[0]) > 256 {
		return // left mid-evaluation (an error) or grown large: let it go
	}
	clear(c.frames[0])
	c.frames[0] = c.frames[0][:0]
	flatCaches.Put(c)
}

func (c *flatCache) Push() {
	n := len(c.frames)
	if n < cap(c.frames) { // reuse the entries of a popped frame
		c.frames = c.frames[:n+1]
		c.frames[n] = c.frames[n][:0]
		return
	}
	c.frames = append(c.frames, nil)
}

func (c *flatCache) Pop() {
	top := len(c.frames) - 1
	clear(c.frames[top])
	c.frames[top] = c.frames[top][:0]
	c.frames = c.frames[:top]
}

func (c *flatCache) find(ref ast.Ref) *cacheEntry {
	top := c.frames[len(c.frames)-1]
	for i := range top {
		if top[i].ref.Equal(ref) {
			return &top[i]
		}
	}
	return nil
}

func (c *flatCache) Get(ref ast.Ref) (*ast.Term, bool) {
	e := c.find(ref)
	switch {
	case e == nil:
		return nil, false
	case e.undefined:
		return nil, true
	}
	return e.value, false
}

func (c *flatCache) Put(ref ast.Ref, value *ast.Term) {
	e := c.find(ref)
	if e == nil {
		top := len(c.frames) - 1
		// The evaluator passes slices of buffers it reuses: keep a copy of the ref.
		c.frames[top] = append(c.frames[top], cacheEntry{ref: append(ast.Ref(nil), ref...)})
		e = &c.frames[top][len(c.frames[top])-1]
	}
	if value != nil {
		e.value = value
	} else {
		e.undefined = true
	}
}

func (c *flatCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.frames[len(c.frames)-1] {
		if e.value != nil {
			keys = append(keys, e.ref)
		}
	}
	return keys
}

// dataCache is topdown's base-document cache, filled once per policy: the whole data
// document, read from the store as an evaluation reads it (less data.system, which
// topdown leaves out of a read of the root). The store never changes under a Policy, so
// every evaluation finds its data here instead of reading the store and caching what it
// read; a path the document lacks is read from the store as before. Values are shared
// between evaluations as the store itself shares the AST values it returns.
type dataCache struct {
	root ast.Value
}

var _ topdown.BaseCache = dataCache{}

func readRoot(ctx context.Context, store storage.Store) (ast.Value, error) {
	var root ast.Value
	err := storage.Txn(ctx, store, storage.TransactionParams{}, func(txn storage.Transaction) error {
		v, err := store.Read(ctx, txn, storage.Path{})
		if err != nil {
			return err
		}
		root, err = ast.InterfaceToValue(v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if obj, ok := root.(ast.Object); ok && obj.Get(ast.InternedTerm(string(ast.SystemDocumentKey))) != nil {
		keep := make([][2]*ast.Term, 0, obj.Len())
		obj.Foreach(func(k, v *ast.Term) {
			if !k.Equal(ast.InternedTerm(string(ast.SystemDocumentKey))) {
				keep = append(keep, [2]*ast.Term{k, v})
			}
		})
		root = ast.NewObject(keep...)
	}
	return root, nil
}

// Get is the value at ref (data.a.b...), nil when the document has none there.
func (c dataCache) Get(ref ast.Ref) ast.Value {
	if c.root == nil || len(ref) == 0 {
		return nil
	}
	if len(ref) == 1 {
		return c.root
	}
	v, err := c.root.Find(ref[1:])
	if err != nil {
		return nil
	}
	return v
}

// Put does nothing: the cache holds everything there is to read.
func (dataCache) Put(ast.Ref, ast.Value) {}
