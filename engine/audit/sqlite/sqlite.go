// Package sqlite is the embedded audit store: one SQLite database in WAL mode with
// synchronous=FULL, written by a single group-committing writer (pure Go, no cgo:
// modernc.org/sqlite). The single write connection, in BEGIN IMMEDIATE transactions, is
// the chain's lock.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/internal/sqlstore"
)

// Store is the SQLite audit store; it implements audit.Log.
type Store struct {
	*sqlstore.Store
	w *sql.DB
}

var _ audit.Log = (*Store)(nil)

// DefaultBusyTimeout is how long a write waits for another process's write lock before
// it fails (and a webhook is answered 503, to be retried).
const DefaultBusyTimeout = 10 * time.Second

// Open opens (creating if needed) the database file at path. The path may end in
// query parameters: busy_timeout (a duration, default DefaultBusyTimeout) and
// max_page_count (the most pages the database may grow to: a size cap, past which
// appends fail with ErrFull), e.g. "/var/lib/remedy/audit.db?busy_timeout=2s".
func Open(path string, opts audit.Options) (*Store, error) {
	path, params, err := splitParams(path)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", fmt.Sprintf("busy_timeout(%d)", params.busy.Milliseconds())} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	// BEGIN IMMEDIATE: a writer takes the write lock before it reads the chain's head, so
	// that two processes on one file extend the chain in turn instead of failing.
	wdsn := dsn + "&_txlock=immediate"
	if params.maxPages > 0 {
		wdsn += "&" + url.Values{"_pragma": {fmt.Sprintf("max_page_count(%d)", params.maxPages)}}.Encode()
	}
	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("open audit db: %w", err)
	}
	w.SetMaxOpenConns(1) // the one writer: the group committer
	for _, stmt := range sqlstore.Schema("INTEGER") {
		if _, err := w.Exec(stmt); err != nil {
			w.Close()
			return nil, fmt.Errorf("create audit schema: %w", err)
		}
	}
	r, err := sql.Open("sqlite", dsn+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open audit db: %w", err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4) // keep them: a reopened connection prepares every statement again
	st := &Store{Store: sqlstore.New(newDB(w, r), func(int) string { return "?" }, opts), w: w}
	// The incidents page's indexes: a separate step (engine/audit/internal/sqlstore/incidents.go).
	if err := st.EnsureIncidentIndexes(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("open audit db: %w", err)
	}
	// The file belongs to one remedy process, whose commits all go through this Store.
	if err := st.SoleWriter(context.Background()); err != nil {
		st.Close()
		return nil, fmt.Errorf("open audit db: %w", err)
	}
	return st, nil
}

type params struct {
	busy     time.Duration
	maxPages int64
}

func splitParams(path string) (string, params, error) {
	p := params{busy: DefaultBusyTimeout}
	path, query, ok := strings.Cut(path, "?")
	if !ok {
		return path, p, nil
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return "", p, fmt.Errorf("audit db %s: %w", path, err)
	}
	for k, v := range vals {
		var err error
		switch k {
		case "busy_timeout":
			p.busy, err = time.ParseDuration(v[len(v)-1])
			if err == nil && p.busy < 0 {
				err = errors.New("negative")
			}
		case "max_page_count":
			p.maxPages, err = strconv.ParseInt(v[len(v)-1], 10, 64)
			if err == nil && p.maxPages <= 0 {
				err = errors.New("not positive")
			}
		default:
			err = errors.New("unknown parameter (busy_timeout, max_page_count)")
		}
		if err != nil {
			return "", p, fmt.Errorf("audit db %s: %s=%s: %w", path, k, v[len(v)-1], err)
		}
	}
	return path, p, nil
}

// SetMaxPageCount changes the size cap of a store opened with max_page_count (0 lifts
// it to SQLite's maximum) for the writer's connection.
func (s *Store) SetMaxPageCount(ctx context.Context, pages int64) error {
	if pages <= 0 {
		pages = 0xfffffffe
	}
	_, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages))
	return err
}

// Errors that Write wraps, so that callers can tell an outage from a bug.
var (
	// ErrFull: the disk or the database's size cap (max_page_count) is full.
	ErrFull = errors.New("audit database full")
	// ErrLocked: another writer held the database's write lock past the busy timeout.
	ErrLocked = errors.New("audit database locked by another writer")
)

// SQLite's primary result codes (the low byte of an extended code).
const (
	sqliteBusy   = 5
	sqliteLocked = 6
	sqliteFull   = 13
)

// classify names an outage in the error: what an operator reads in a 503's body.
func classify(err error) error {
	var se *sqlite.Error
	if err == nil || !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqliteFull:
		return fmt.Errorf("%w (free disk space or raise max_page_count): %w", ErrFull, err)
	case sqliteBusy, sqliteLocked:
		return fmt.Errorf("%w: %w", ErrLocked, err)
	}
	return err
}

type db struct {
	w, r   *sql.DB
	ws, rs *stmtCache // prepared statements of the writer and of the readers
}

func newDB(w, r *sql.DB) *db {
	return &db{w: w, r: r, ws: newStmtCache(w, true), rs: newStmtCache(r, false)}
}

func (d *db) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	if st := d.rs.get(ctx, q); st != nil {
		rows, err := st.QueryContext(ctx, args...)
		return sqlRows{rows}, err
	}
	rows, err := d.r.QueryContext(ctx, q, args...)
	return sqlRows{rows}, err
}

func (d *db) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	defer d.ws.prepareWanted(ctx) // the connection is free again once the transaction ends
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return classify(fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := fn(sqlTx{tx, d.ws}); err != nil {
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		return classify(fmt.Errorf("commit: %w", err))
	}
	return nil
}

func (d *db) Close() error {
	d.ws.close()
	d.rs.close()
	return errors.Join(d.w.Close(), d.r.Close())
}

type sqlTx struct {
	tx    *sql.Tx
	stmts *stmtCache
}

func (t sqlTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	if st := t.stmts.get(ctx, q); st != nil {
		rows, err := t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
		return sqlRows{rows}, err
	}
	rows, err := t.tx.QueryContext(ctx, q, args...)
	return sqlRows{rows}, err
}

func (t sqlTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if st := t.stmts.get(ctx, q); st != nil {
		// The ledger's upsert runs for every change: prepared once, not per commit.
		res, err = t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	} else {
		res, err = t.tx.ExecContext(ctx, q, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

var insertSQL = "INSERT INTO " + sqlstore.Table + "(" + strings.Join(sqlstore.Columns, ", ") + ") VALUES (" +
	strings.TrimSuffix(strings.Repeat("?,", len(sqlstore.Columns)), ",") + ")"

func (t sqlTx) Insert(ctx context.Context, rows []audit.Event) error {
	if len(rows) == 0 {
		return nil
	}
	var stmt *sql.Stmt
	if st := t.stmts.get(ctx, insertSQL); st != nil {
		stmt = t.tx.StmtContext(ctx, st)
	} else {
		var err error
		if stmt, err = t.tx.PrepareContext(ctx, insertSQL); err != nil {
			return fmt.Errorf("prepare insert: %w", err)
		}
	}
	defer stmt.Close()
	for i := range rows {
		if _, err := stmt.ExecContext(ctx, sqlstore.Values(&rows[i])...); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	return nil
}

// sqlRows adapts *sql.Rows, whose Close returns an error already reported by Err.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// ErrNotAuditLog is returned by OpenReadOnly for a database without remedy's audit table.
var ErrNotAuditLog = errors.New("not a remedy audit log (no audit_events table)")

// OpenReadOnly opens the database file at path read-only, for reading and verifying a log
// without an engine (`remedy audit verify --db`): nothing is created or written, the file
// must exist and hold remedy's audit table. Append on the result fails.
func OpenReadOnly(path string, opts audit.Options) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open audit db: %w", err)
	}
	dsn := "file:" + path + "?" + url.Values{"mode": {"ro"}, "_pragma": {fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds())}}.Encode()
	open := func() (*sql.DB, error) {
		d, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open audit db: %w", err)
		}
		d.SetMaxOpenConns(1)
		return d, nil
	}
	r, err := open()
	if err != nil {
		return nil, err
	}
	var n int
	if err := r.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'`).Scan(&n); err != nil {
		r.Close()
		return nil, fmt.Errorf("open audit db %s: %w", path, err)
	}
	if n == 0 {
		r.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrNotAuditLog)
	}
	w, err := open() // a read-only handle in the writer's place: every write fails
	if err != nil {
		r.Close()
		return nil, err
	}
	return &Store{Store: sqlstore.New(newDB(w, r), func(int) string { return "?" }, opts), w: w}, nil
}
