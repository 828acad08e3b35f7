// Package sqlstore is the audit log over SQL, shared by the sqlite and postgres stores:
// the schema, the queries, and the chained, group-committed writer. A store package
// supplies only a DB: how to open a write transaction that holds the chain's lock, how
// to read, and how to insert rows in bulk.
package sqlstore

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// Table is the audit log's one table.
const Table = "audit_events"

// Schema returns the statements that create the table and its indexes; seqType is the
// column type of seq (SQLite wants INTEGER so that seq is the rowid).
func Schema(seqType string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS audit_events (
	seq            ` + seqType + ` PRIMARY KEY, -- assigned by the writer: the chain's order
	at             BIGINT NOT NULL,            -- unix nanoseconds
	type           TEXT NOT NULL,
	correlation_id TEXT NOT NULL DEFAULT '',
	node           TEXT NOT NULL DEFAULT '',
	kind           TEXT NOT NULL DEFAULT '',
	action         TEXT NOT NULL DEFAULT '',
	action_id      TEXT NOT NULL DEFAULT '',
	actor          TEXT NOT NULL DEFAULT '',
	outcome        TEXT NOT NULL DEFAULT '',
	policy_rev     TEXT NOT NULL DEFAULT '',
	input_hash     TEXT NOT NULL DEFAULT '',
	ekey           TEXT,
	detail         TEXT,                       -- compact JSON, byte for byte what the hash covers
	prev_hash      TEXT NOT NULL,
	hash           TEXT NOT NULL
)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS audit_events_key ON audit_events(ekey) WHERE ekey IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS audit_events_node ON audit_events(node, seq)`,
		`CREATE INDEX IF NOT EXISTS audit_events_corr ON audit_events(correlation_id, seq)`,
		`CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events(action, seq)`,
		`CREATE INDEX IF NOT EXISTS audit_events_type ON audit_events(type, seq)`,
		`CREATE INDEX IF NOT EXISTS audit_events_action_id ON audit_events(action_id) WHERE action_id <> ''`,
		`CREATE TABLE IF NOT EXISTS actions (
	id             TEXT PRIMARY KEY,
	node           TEXT NOT NULL,
	action         TEXT NOT NULL,
	kind           TEXT NOT NULL DEFAULT '',
	correlation_id TEXT NOT NULL DEFAULT '',
	params_digest  TEXT NOT NULL DEFAULT '',
	node_partition INTEGER NOT NULL,          -- audit.Partition(node)
	attempt        INTEGER NOT NULL,
	state          TEXT NOT NULL,
	version        BIGINT NOT NULL,           -- +1 on every change: the compare-and-set's token
	deadline       BIGINT NOT NULL DEFAULT 0, -- unix nanoseconds, 0 for none
	created        BIGINT NOT NULL,
	updated        BIGINT NOT NULL,
	request        TEXT,
	held           TEXT
)`,
		`CREATE INDEX IF NOT EXISTS actions_state ON actions(state, updated)`,
		`CREATE INDEX IF NOT EXISTS actions_node ON actions(node, state)`,
	}
}

// ActionColumns are the ledger's columns in the order scanAction and actionValues use.
var ActionColumns = []string{"id", "node", "action", "kind", "correlation_id", "params_digest", "node_partition", "attempt",
	"state", "version", "deadline", "created", "updated", "request", "held"}

func actionValues(a *audit.Action) []any {
	var dl int64
	if !a.Deadline.IsZero() {
		dl = a.Deadline.UnixNano()
	}
	return []any{a.ID, a.Node, a.Action, a.Kind, a.CorrelationID, a.ParamsDigest, a.Partition, a.Attempt, string(a.State),
		a.Version, dl, a.Created.UnixNano(), a.Updated.UnixNano(), nullable(string(a.Request)), nullable(string(a.Held))}
}

// Columns are the table's columns in the order Scan and Values use.
var Columns = []string{"seq", "at", "type", "correlation_id", "node", "kind", "action", "action_id", "actor",
	"outcome", "policy_rev", "input_hash", "ekey", "detail", "prev_hash", "hash"}

const selectCols = `seq, at, type, correlation_id, node, kind, action, action_id, actor, outcome, policy_rev, input_hash,
	COALESCE(ekey, ''), COALESCE(detail, ''), prev_hash, hash`

const selectColsWithoutDetail = `seq, at, type, correlation_id, node, kind, action, action_id, actor, outcome, policy_rev, input_hash,
	COALESCE(ekey, ''), '', prev_hash, hash`

// Values are e's column values, in Columns order.
func Values(e *audit.Event) []any {
	return []any{e.Seq, e.Time.UnixNano(), string(e.Type), e.CorrelationID, e.Node, e.Kind, e.Action, e.ActionID,
		e.Actor, e.Outcome, e.PolicyRev, e.InputHash, nullable(e.Key), nullable(string(e.Detail)), e.PrevHash, e.Hash}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Rows is a result set: database/sql's and pgx's both fit behind a thin adapter.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Reader runs queries.
type Reader interface {
	Query(ctx context.Context, q string, args ...any) (Rows, error)
}

// Tx is a write transaction holding the chain's lock.
type Tx interface {
	Reader
	// Exec runs a statement and returns the number of rows it touched.
	Exec(ctx context.Context, q string, args ...any) (int64, error)
	// Insert writes rows whose seq and hashes are set and whose keys are new.
	Insert(ctx context.Context, rows []audit.Event) error
}

// DB is what a store package provides.
type DB interface {
	Reader
	// Write runs fn in one transaction that holds the chain's lock (so that only one
	// writer, in any process, extends the chain at a time) and commits it when fn
	// returns nil.
	Write(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Store implements audit.Log over a DB.
type Store struct {
	db     DB
	ph     func(n int) string
	keys   audit.Signer
	clock  func() time.Time
	gc     *audit.GroupCommitter
	recent *recent // set by SoleWriter
}

// MaxBatch is the most events one group commit writes.
const MaxBatch = 2048

// New returns a store over db whose statements number their parameters with ph (1-based).
func New(db DB, ph func(n int) string, opts audit.Options) *Store {
	s := &Store{db: db, ph: ph, keys: opts.Keys, clock: opts.Clock}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.gc = audit.NewGroupCommitter(MaxBatch, s.commit)
	return s
}

// Append implements audit.Store: a batch of events alone, urgent.
func (s *Store) Append(ctx context.Context, events ...audit.Event) ([]bool, error) {
	for i := range events {
		if err := audit.Normalize(&events[i]); err != nil {
			return nil, fmt.Errorf("audit append: event %d: %w", i, err)
		}
	}
	c, err := s.gc.Commit(ctx, audit.Batch{Events: events})
	return c.Inserted, err
}

type head struct {
	seq  int64
	hash string
}

// Commit implements audit.Ledger.
func (s *Store) Commit(ctx context.Context, b audit.Batch) (audit.Committed, error) {
	for i := range b.Events {
		if err := audit.Normalize(&b.Events[i]); err != nil {
			return audit.Committed{}, fmt.Errorf("audit commit: event %d: %w", i, err)
		}
	}
	return s.gc.Commit(ctx, b)
}

// commit writes the batches of one group commit in one transaction: first the ledger's
// compare-and-sets, batch by batch in order (a batch whose compare fails is left out
// whole, its events included), then the events of the batches that stand, chained.
func (s *Store) commit(ctx context.Context, batches []audit.Batch) ([]audit.Committed, []error, error) {
	var rows []audit.Event
	var out []audit.Committed
	var errs []error
	err := s.db.Write(ctx, func(tx Tx) error {
		out, errs = make([]audit.Committed, len(batches)), nil
		now := s.clock().UTC()
		ledger, err := s.readLedger(ctx, tx, batches)
		if err != nil {
			return err
		}
		changed := map[string]bool{}
		events := make([][]audit.Event, len(batches))
		for i := range batches {
			b := &batches[i]
			if len(b.Changes) > 0 {
				created, acts, err := audit.Apply(ledger, b.Changes, now)
				if err != nil {
					if errs == nil {
						errs = make([]error, len(batches))
					}
					errs[i] = err
					continue
				}
				out[i].Created, out[i].Actions = created, acts
				for j, c := range created {
					if c {
						changed[acts[j].ID] = true
					}
				}
			}
			events[i] = b.Events
		}
		h, seen, err := s.headAndKeys(ctx, tx, events)
		if err != nil {
			return err
		}
		var ins [][]bool
		rows, ins = chain(h, events, seen, now)
		for i := range out {
			out[i].Inserted = ins[i]
		}
		if err := s.writeLedger(ctx, tx, ledger, changed); err != nil {
			return err
		}
		return tx.Insert(ctx, rows)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("audit commit: %w", err)
	}
	if s.recent != nil {
		s.recent.add(rows)
	}
	return out, errs, nil
}

// readLedger reads, inside the commit's transaction, the rows the batches change.
func (s *Store) readLedger(ctx context.Context, tx Tx, batches []audit.Batch) (map[string]*audit.Action, error) {
	var ids []any
	seen := map[string]bool{}
	for i := range batches {
		for _, id := range batches[i].ChangedIDs() {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	rows := make(map[string]*audit.Action, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), keyChunk)
		args := padKeys(ids[:n])
		acts, err := s.queryActions(ctx, tx, `SELECT `+actionCols+` FROM actions WHERE id IN (`+s.list(1, len(args))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read action ledger: %w", err)
		}
		for i := range acts {
			rows[acts[i].ID] = &acts[i]
		}
		ids = ids[n:]
	}
	return rows, nil
}

// writeLedger writes the changed rows (an upsert each).
func (s *Store) writeLedger(ctx context.Context, tx Tx, rows map[string]*audit.Action, changed map[string]bool) error {
	if len(changed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	sort.Strings(ids) // one lock order for every writer
	q := `INSERT INTO actions (` + strings.Join(ActionColumns, ", ") + `) VALUES (` + s.list(1, len(ActionColumns)) + `)
	ON CONFLICT (id) DO UPDATE SET state = excluded.state, version = excluded.version, attempt = excluded.attempt,
		deadline = excluded.deadline, updated = excluded.updated, request = excluded.request, held = excluded.held`
	for _, id := range ids {
		if _, err := tx.Exec(ctx, q, actionValues(rows[id])...); err != nil {
			return fmt.Errorf("write action ledger: %w", err)
		}
	}
	return nil
}

const actionCols = `id, node, action, kind, correlation_id, params_digest, node_partition, attempt, state, version, deadline,
	created, updated, COALESCE(request, ''), COALESCE(held, '')`

func (s *Store) queryActions(ctx context.Context, r Reader, q string, args ...any) ([]audit.Action, error) {
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Action
	for rows.Next() {
		var a audit.Action
		var state, req, held string
		var dl, created, updated int64
		if err := rows.Scan(&a.ID, &a.Node, &a.Action, &a.Kind, &a.CorrelationID, &a.ParamsDigest, &a.Partition, &a.Attempt,
			&state, &a.Version, &dl, &created, &updated, &req, &held); err != nil {
			return nil, err
		}
		a.State = audit.State(state)
		if dl != 0 {
			a.Deadline = time.Unix(0, dl).UTC()
		}
		a.Created, a.Updated = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
		if req != "" {
			a.Request = []byte(req)
		}
		if held != "" {
			a.Held = []byte(held)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Action implements audit.Ledger.
func (s *Store) Action(ctx context.Context, id string) (audit.Action, error) {
	acts, err := s.queryActions(ctx, s.db, `SELECT `+actionCols+` FROM actions WHERE id = `+s.ph(1), id)
	if err != nil {
		return audit.Action{}, fmt.Errorf("read action ledger: %w", err)
	}
	if len(acts) == 0 {
		return audit.Action{}, fmt.Errorf("%w: %s", audit.ErrNoAction, id)
	}
	return acts[0], nil
}

// Actions implements audit.Ledger.
func (s *Store) Actions(ctx context.Context, f audit.ActionFilter) ([]audit.Action, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		for _, st := range f.States {
			args = append(args, string(st))
		}
		where = append(where, "state IN ("+s.list(1, len(f.States))+")")
	}
	if f.Node != "" {
		args = append(args, f.Node)
		where = append(where, "node = "+s.ph(len(args)))
	}
	if !f.UpdatedBefore.IsZero() {
		args = append(args, f.UpdatedBefore.UnixNano())
		where = append(where, "updated < "+s.ph(len(args)))
	}
	if len(f.Partitions) > 0 {
		for _, p := range f.Partitions {
			args = append(args, p)
		}
		where = append(where, "node_partition IN ("+s.list(len(args)-len(f.Partitions)+1, len(f.Partitions))+")")
	}
	q := `SELECT ` + actionCols + ` FROM actions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = audit.DefaultLimit
	}
	q += fmt.Sprintf(" ORDER BY updated, id LIMIT %d", limit)
	acts, err := s.queryActions(ctx, s.db, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read action ledger: %w", err)
	}
	return acts, nil
}

// SoleWriter declares that this Store is the only writer of its log (no other process
// or Store appends to it), so that it can answer audit.RecentReader from memory. The
// SQLite store declares it: its file belongs to one remedy process.
func (s *Store) SoleWriter(ctx context.Context) error {
	evs, err := s.Query(ctx, audit.Filter{Limit: 1, WithoutDetail: true})
	if err != nil {
		return err
	}
	var head int64
	if len(evs) > 0 {
		head = evs[0].Seq
	}
	s.recent = newRecent(head)
	return nil
}

// Recent implements audit.RecentReader.
func (s *Store) Recent(node string, afterSeq int64, types []audit.Type) ([]audit.Event, int64, bool) {
	if s.recent == nil {
		return nil, 0, false
	}
	return s.recent.since(node, afterSeq, types)
}

// chain gives every event whose key is not in seen (nor earlier in batches) the next seq
// and its hashes, writing them back into batches, and returns those rows and which
// events were new.
func chain(h head, batches [][]audit.Event, seen map[string]bool, now time.Time) ([]audit.Event, [][]bool) {
	var rows []audit.Event
	out := make([][]bool, len(batches))
	for i, b := range batches {
		out[i] = make([]bool, len(b))
		for j := range b {
			e := &b[j]
			if e.Key != "" {
				if seen[e.Key] {
					continue
				}
				seen[e.Key] = true
			}
			if e.Time.IsZero() {
				e.Time = now
			}
			h.seq++
			e.Seq, e.PrevHash = h.seq, h.hash
			e.Hash = audit.HashEvent(e)
			h.hash = e.Hash
			out[i][j] = true
			rows = append(rows, *e)
		}
	}
	return rows, out
}

func (s *Store) head(ctx context.Context, tx Tx) (head, error) {
	var h head
	_, err := queryRow(ctx, tx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`, nil, &h.seq, &h.hash)
	if err != nil {
		return head{}, fmt.Errorf("read chain head: %w", err)
	}
	return h, nil
}

// keyChunk bounds the parameters of one IN list.
const keyChunk = 500

// headAndKeys reads the chain's head and which of the batches' keys are already in the
// log. The head rides along with the first chunk of keys: one round trip for both.
func (s *Store) headAndKeys(ctx context.Context, tx Tx, batches [][]audit.Event) (head, map[string]bool, error) {
	var keys []any
	for _, b := range batches {
		for i := range b {
			if b[i].Key != "" {
				keys = append(keys, b[i].Key)
			}
		}
	}
	var h head
	seen := make(map[string]bool, len(keys))
	for first := true; first || len(keys) > 0; first = false {
		n := min(len(keys), keyChunk)
		var parts []string
		if first {
			parts = append(parts, `SELECT '', seq, hash FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) h`)
		}
		args := keys[:n]
		if n > 0 {
			// A few list lengths, padded with a repeated key, keep the statement shapes
			// few enough to stay prepared.
			args = padKeys(args)
			parts = append(parts, `SELECT ekey, 0, '' FROM audit_events WHERE ekey IN (`+s.list(1, len(args))+`)`)
		}
		rows, err := tx.Query(ctx, strings.Join(parts, " UNION ALL "), args...)
		if err != nil {
			return head{}, nil, fmt.Errorf("read chain head and keys: %w", err)
		}
		for rows.Next() {
			var k, hash string
			var seq int64
			if err := rows.Scan(&k, &seq, &hash); err != nil {
				rows.Close()
				return head{}, nil, fmt.Errorf("read chain head and keys: %w", err)
			}
			if k == "" {
				h = head{seq: seq, hash: hash}
			} else {
				seen[k] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return head{}, nil, fmt.Errorf("read chain head and keys: %w", err)
		}
		keys = keys[n:]
	}
	return h, seen, nil
}

// padKeys returns keys with the last one repeated up to the next power of two (at
// most keyChunk), in a new slice.
func padKeys(keys []any) []any {
	n := 1
	for n < len(keys) {
		n *= 2
	}
	out := make([]any, max(len(keys), min(n, keyChunk)))
	copy(out, keys)
	for i := len(keys); i < len(out); i++ {
		out[i] = keys[len(keys)-1]
	}
	return out
}

// list is "ph(from), ..., ph(from+n-1)".
func (s *Store) list(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(s.ph(from + i))
	}
	return b.String()
}

// queryRow scans the first row of q into dest and reports whether there was one.
func queryRow(ctx context.Context, r Reader, q string, args []any, dest ...any) (bool, error) {
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return false, err
	}
	return true, rows.Err()
}

// Query implements audit.Store.
func (s *Store) Query(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, cond+" "+s.ph(len(args)))
	}
	// Indexed columns, most selective first: only the first one given is compared so
	// that its index can serve; the others are compared as expressions (col || ''), which
	// no index matches. Without this SQLite, lacking statistics, may walk the type index
	// through every row of a common type to find one node's hundred.
	indexed := false
	for _, c := range []struct{ col, v string }{
		{"correlation_id", f.CorrelationID}, {"node", f.Node}, {"action", f.Action}, {"type", string(f.Type)},
	} {
		switch {
		case c.v == "":
		case indexed:
			add("("+c.col+" || '') =", c.v)
		default:
			add(c.col+" =", c.v)
			indexed = true
		}
	}
	for _, c := range []struct{ col, v string }{{"kind", f.Kind}, {"outcome", f.Outcome}, {"actor", f.Actor}} {
		if c.v != "" {
			add(c.col+" =", c.v)
		}
	}
	if len(f.Types) > 0 {
		col := "type"
		if indexed || f.Type != "" {
			col = "(type || '')"
		}
		for _, t := range f.Types {
			args = append(args, string(t))
		}
		where = append(where, col+" IN ("+s.list(len(args)-len(f.Types)+1, len(f.Types))+")")
	}
	if !f.Since.IsZero() {
		add("at >=", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("at <", f.Until.UnixNano())
	}
	if f.AfterSeq > 0 {
		add("seq >", f.AfterSeq)
	}
	cols := selectCols
	if f.WithoutDetail {
		cols = selectColsWithoutDetail
	}
	q := "SELECT " + cols + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	order := "DESC"
	if f.Ascending {
		order = "ASC"
	}
	limit := f.Limit
	if limit <= 0 {
		limit = audit.DefaultLimit
	}
	q += fmt.Sprintf(" ORDER BY seq %s LIMIT %d", order, limit)
	return s.query(ctx, q, args...)
}

// Undecided implements audit.Store.
func (s *Store) Undecided(ctx context.Context, afterSeq int64, limit int) ([]audit.Event, error) {
	return s.query(ctx, `SELECT `+selectCols+` FROM audit_events s WHERE s.type = `+s.ph(1)+` AND s.seq > `+s.ph(2)+` AND NOT EXISTS
		(SELECT 1 FROM audit_events d WHERE d.ekey = 'decision:' || substr(s.ekey, 8)) ORDER BY seq LIMIT `+s.ph(3),
		string(audit.SignalReceived), afterSeq, limit)
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]audit.Event, error) {
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		var at int64
		var typ, detail string
		if err := rows.Scan(&e.Seq, &at, &typ, &e.CorrelationID, &e.Node, &e.Kind, &e.Action, &e.ActionID, &e.Actor,
			&e.Outcome, &e.PolicyRev, &e.InputHash, &e.Key, &detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("audit scan: %w", err)
		}
		e.Time = time.Unix(0, at).UTC()
		e.Type = audit.Type(typ)
		if detail != "" {
			e.Detail = []byte(detail)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	return out, nil
}

// Verify implements audit.Log.
func (s *Store) Verify(ctx context.Context) (audit.VerifyReport, error) {
	return audit.VerifyLog(ctx, s, s.keys)
}

// Export implements audit.Log.
func (s *Store) Export(ctx context.Context, f audit.Filter, w io.Writer) error {
	return audit.Export(ctx, s, f, w)
}

// Retain implements audit.Log. It removes a prefix of the chain (rows are removed in
// seq order, stopping at the first one at or after before) so that the rest still
// verifies from the checkpoint on.
func (s *Store) Retain(ctx context.Context, before time.Time) (*audit.Checkpoint, error) {
	if s.keys == nil {
		return nil, audit.ErrNoSigner
	}
	var cp *audit.Checkpoint
	err := s.db.Write(ctx, func(tx Tx) error {
		cp = nil
		h, err := s.head(ctx, tx)
		if err != nil {
			return err
		}
		through := h.seq
		var first int64
		found, err := queryRow(ctx, tx, `SELECT seq FROM audit_events WHERE at >= `+s.ph(1)+` ORDER BY seq LIMIT 1`,
			[]any{before.UnixNano()}, &first)
		if err != nil {
			return fmt.Errorf("find retention boundary: %w", err)
		}
		if found {
			through = first - 1
		}
		c := audit.Checkpoint{ThroughSeq: through, Before: before.UTC()}
		var oldest, newest int64
		if _, err := queryRow(ctx, tx, `SELECT COUNT(*), COALESCE(MIN(at), 0), COALESCE(MAX(at), 0) FROM audit_events WHERE seq <= `+s.ph(1),
			[]any{through}, &c.Removed, &oldest, &newest); err != nil {
			return fmt.Errorf("count retained rows: %w", err)
		}
		if c.Removed == 0 {
			return nil
		}
		c.Oldest, c.Newest = time.Unix(0, oldest).UTC(), time.Unix(0, newest).UTC()
		if _, err := queryRow(ctx, tx, `SELECT hash FROM audit_events WHERE seq = `+s.ph(1), []any{through}, &c.LastHash); err != nil {
			return fmt.Errorf("read retention boundary: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE seq <= `+s.ph(1), through); err != nil {
			return fmt.Errorf("delete retained rows: %w", err)
		}
		now := s.clock().UTC()
		ev, err := audit.SealCheckpoint(c, s.keys, now)
		if err != nil {
			return err
		}
		if err := audit.Normalize(&ev); err != nil {
			return err
		}
		rows, _ := chain(h, [][]audit.Event{{ev}}, map[string]bool{}, now)
		if err := tx.Insert(ctx, rows); err != nil {
			return err
		}
		cp, err = audit.OpenCheckpoint(ev.Detail, s.keys)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit retain: %w", err)
	}
	return cp, nil
}

// Close implements audit.Store: it waits for the commit in progress. Closing again
// does nothing.
func (s *Store) Close() error {
	if !s.gc.Close() {
		return nil
	}
	return s.db.Close()
}
