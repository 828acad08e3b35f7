// Package sqlite is the embedded audit store: one SQLite database in WAL mode with
// synchronous=FULL, written by a single group-committing writer (pure Go, no cgo:
// modernc.org/sqlite).
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/remedyhq/remedy/engine/audit"
)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	at             INTEGER NOT NULL,        -- unix nanoseconds
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
	detail         TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events(ekey) WHERE ekey IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_node ON events(node, seq);
CREATE INDEX IF NOT EXISTS events_corr ON events(correlation_id, seq);
CREATE INDEX IF NOT EXISTS events_action ON events(action, seq);
CREATE INDEX IF NOT EXISTS events_type ON events(type, seq);
CREATE INDEX IF NOT EXISTS events_action_id ON events(action_id) WHERE action_id <> '';
`

// Store is the SQLite audit store.
type Store struct {
	w  *sql.DB // one connection: the group committer is the only writer
	r  *sql.DB
	gc *audit.GroupCommitter
}

// Open opens (creating if needed) the database file at path.
func Open(path string) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open audit db: %w", err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("create audit schema: %w", err)
	}
	r, err := sql.Open("sqlite", dsn+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open audit db: %w", err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r}
	s.gc = audit.NewGroupCommitter(2048, s.commit)
	return s, nil
}

// Append implements audit.Store.
func (s *Store) Append(ctx context.Context, events ...audit.Event) ([]bool, error) {
	return s.gc.Append(ctx, events)
}

const insertSQL = `INSERT INTO events(at, type, correlation_id, node, kind, action, action_id, actor, outcome, policy_rev, input_hash, ekey, detail)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`

func (s *Store) commit(ctx context.Context, batches [][]audit.Event) ([][]bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("audit begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	stmt, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return nil, fmt.Errorf("audit prepare: %w", err)
	}
	defer stmt.Close()
	out := make([][]bool, len(batches))
	now := time.Now().UTC()
	for i, b := range batches {
		out[i] = make([]bool, len(b))
		for j := range b {
			e := &b[j]
			if e.Time.IsZero() {
				e.Time = now
			}
			res, err := stmt.ExecContext(ctx, e.Time.UnixNano(), string(e.Type), e.CorrelationID, e.Node, e.Kind, e.Action,
				e.ActionID, e.Actor, e.Outcome, e.PolicyRev, e.InputHash, nullable(e.Key), nullable(string(e.Detail)))
			if err != nil {
				return nil, fmt.Errorf("audit insert: %w", err)
			}
			n, _ := res.RowsAffected()
			out[i][j] = n == 1
			if n == 1 {
				e.Seq, _ = res.LastInsertId()
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("audit commit: %w", err)
	}
	return out, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

const cols = `seq, at, type, correlation_id, node, kind, action, action_id, actor, outcome, policy_rev, input_hash, COALESCE(ekey,''), COALESCE(detail,'')`

// Query implements audit.Store.
func (s *Store) Query(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var where []string
	var args []any
	add := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	add("node", f.Node)
	add("action", f.Action)
	add("kind", f.Kind)
	add("type", string(f.Type))
	add("outcome", f.Outcome)
	add("correlation_id", f.CorrelationID)
	if !f.Since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "at < ?")
		args = append(args, f.Until.UnixNano())
	}
	q := "SELECT " + cols + " FROM events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q += fmt.Sprintf(" ORDER BY seq DESC LIMIT %d", limit)
	return s.query(ctx, q, args...)
}

// Undecided implements audit.Store.
func (s *Store) Undecided(ctx context.Context, limit int) ([]audit.Event, error) {
	return s.query(ctx, `SELECT `+cols+` FROM events s WHERE s.type = ? AND NOT EXISTS
		(SELECT 1 FROM events d WHERE d.ekey = 'decision:' || substr(s.ekey, 8)) ORDER BY seq LIMIT ?`,
		string(audit.SignalReceived), limit)
}

// Undispatched implements audit.Store.
func (s *Store) Undispatched(ctx context.Context, limit int) ([]audit.Event, error) {
	return s.query(ctx, `SELECT `+cols+` FROM events p WHERE p.type = ? AND NOT EXISTS
		(SELECT 1 FROM events d WHERE d.action_id = p.action_id AND d.type IN (?, ?)) ORDER BY seq LIMIT ?`,
		string(audit.ActionPlanned), string(audit.Dispatched), string(audit.ActionResult), limit)
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]audit.Event, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
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
			&e.Outcome, &e.PolicyRev, &e.InputHash, &e.Key, &detail); err != nil {
			return nil, fmt.Errorf("audit scan: %w", err)
		}
		e.Time = time.Unix(0, at).UTC()
		e.Type = audit.Type(typ)
		if detail != "" {
			e.Detail = json.RawMessage(detail)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Close implements audit.Store.
func (s *Store) Close() error {
	s.gc.Close()
	return errors.Join(s.w.Close(), s.r.Close())
}
