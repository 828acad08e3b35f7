package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps prepared statements by query text. The store's queries come from a
// handful of shapes, and preparing one costs more than running it on a small index
// range (half the CPU of a policy history query went to sqlite3_prepare).
type stmtCache struct {
	db *sql.DB
	// deferred: prepare misses later (prepareWanted) instead of at once. The writer's
	// one connection is held by the transaction that asks, so preparing on the DB then
	// would wait for itself.
	deferred bool
	mu       sync.Mutex
	m        map[string]*sql.Stmt
	wanted   map[string]bool
}

// maxStmts bounds the cache: query texts with a varying part (IN lists of keys,
// limits) beyond it run unprepared.
const maxStmts = 128

func newStmtCache(db *sql.DB, deferred bool) *stmtCache {
	return &stmtCache{db: db, deferred: deferred, m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// get returns the prepared statement for q, or nil when the cache is full or q does not
// prepare (the caller then runs q directly and gets the real error).
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st
	}
	if len(c.m)+len(c.wanted) >= maxStmts {
		return nil
	}
	if c.deferred {
		c.wanted[q] = true
		return nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.m[q] = st
	return st
}

// prepareWanted prepares the statements deferred misses asked for; the writer calls it
// between transactions.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.wanted {
		delete(c.wanted, q)
		if st, err := c.db.PrepareContext(ctx, q); err == nil {
			c.m[q] = st
		}
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}
