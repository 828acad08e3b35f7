package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
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
