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
	"strings"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/internal/sqlstore"
)

// Store is the SQLite audit store; it implements audit.Log.
type Store struct {
	*sqlstore.Store
}

var _ audit.Log = (*Store)(nil)

// Open opens (creating if needed) the database file at path.
func Open(path string, opts audit.Options) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	// BEGIN IMMEDIATE: a writer takes the write lock before it reads the chain's head, so
	// that two processes on one file extend the chain in turn instead of failing.
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
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
	return &Store{sqlstore.New(&db{w: w, r: r}, func(int) string { return "?" }, opts)}, nil
}

type db struct{ w, r *sql.DB }

func (d *db) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := d.r.QueryContext(ctx, q, args...)
	return sqlRows{rows}, err
}

func (d *db) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := fn(sqlTx{tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (d *db) Close() error { return errors.Join(d.w.Close(), d.r.Close()) }

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, q, args...)
	return sqlRows{rows}, err
}

func (t sqlTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, q, args...)
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
	stmt, err := t.tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
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
