// Package postgres is the audit store for engines that run as several replicas or keep a
// long history: PostgreSQL through pgx. Each replica group-commits its own appends; every
// write transaction first takes a transaction-scoped advisory lock, so the replicas
// extend one hash chain in turn and seqs commit in order.
package postgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/internal/sqlstore"
)

// chainLock is the advisory lock key of the audit chain ("remedy-a" in ASCII).
const chainLock int64 = 0x72656d656479_2d61

// Store is the PostgreSQL audit store; it implements audit.Log.
type Store struct {
	*sqlstore.Store
}

var _ audit.Log = (*Store)(nil)

// Open connects to dsn (a postgres:// URL or key=value string) and creates the schema
// if needed.
func Open(ctx context.Context, dsn string, opts audit.Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse audit dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect audit db: %w", err)
	}
	d := &db{pool: pool}
	err = d.Write(ctx, func(tx sqlstore.Tx) error {
		for _, stmt := range sqlstore.Schema("BIGINT") {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("create audit schema: %w", err)
	}
	return &Store{sqlstore.New(d, func(n int) string { return "$" + strconv.Itoa(n) }, opts)}, nil
}

type db struct{ pool *pgxpool.Pool }

func (d *db) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := d.pool.Query(ctx, q, args...)
	return rows, err
}

func (d *db) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", chainLock); err != nil {
		return fmt.Errorf("lock chain: %w", err)
	}
	if err := fn(pgTx{tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (d *db) Close() error {
	d.pool.Close()
	return nil
}

type pgTx struct{ tx pgx.Tx }

func (t pgTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	return rows, err
}

func (t pgTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}

// Insert copies the rows in with COPY: one round trip for a whole group commit.
func (t pgTx) Insert(ctx context.Context, rows []audit.Event) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := t.tx.CopyFrom(ctx, pgx.Identifier{sqlstore.Table}, sqlstore.Columns,
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return sqlstore.Values(&rows[i]), nil }))
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	return nil
}
