// Package postgres is the audit store for engines that run as several replicas or keep a
// long history: PostgreSQL through pgx. Each replica group-commits its own appends; every
// write transaction first takes a transaction-scoped advisory lock, so the replicas
// extend one hash chain in turn and seqs commit in order.
package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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
	st := &Store{sqlstore.New(d, func(n int) string { return "$" + strconv.Itoa(n) }, opts)}
	// The incidents page's indexes: a separate step (engine/audit/internal/sqlstore/incidents.go).
	if err := st.EnsureIncidentIndexes(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return st, nil
}

type db struct{ pool *pgxpool.Pool }

func (d *db) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := d.pool.Query(ctx, q, args...)
	return rows, err
}

// Write takes three round trips besides fn's reads: begin with the lock, fn's queries,
// then the rows and the commit together.
func (d *db) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	// A connection left inside a transaction (an error below) is destroyed on release,
	// which rolls the transaction back.
	defer conn.Release()
	if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; SELECT pg_advisory_xact_lock(%d)", chainLock)); err != nil {
		return fmt.Errorf("begin and lock chain: %w", err)
	}
	tx := &pgTx{conn: conn.Conn()}
	if err := fn(tx); err != nil {
		return err
	}
	b := &pgx.Batch{}
	if len(tx.rows) > 0 {
		b.Queue(insertSQL, columns(tx.rows)...)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("insert and commit: %w", err)
	}
	return nil
}

func (d *db) Close() error {
	d.pool.Close()
	return nil
}

// pgTx runs fn's statements on the transaction's connection and keeps the rows to
// insert for the commit's round trip.
type pgTx struct {
	conn *pgx.Conn
	rows []audit.Event
}

func (t *pgTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := t.conn.Query(ctx, q, args...)
	return rows, err
}

func (t *pgTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.conn.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}

// Insert implements sqlstore.Tx: the rows go in with the commit.
func (t *pgTx) Insert(_ context.Context, rows []audit.Event) error {
	t.rows = append(t.rows, rows...)
	return nil
}

// insertSQL inserts column arrays: a whole group commit in one statement.
var insertSQL = func() string {
	casts := make([]string, len(sqlstore.Columns))
	for i := range casts {
		typ := "text"
		if i < 2 { // seq, at
			typ = "bigint"
		}
		casts[i] = fmt.Sprintf("$%d::%s[]", i+1, typ)
	}
	return "INSERT INTO " + sqlstore.Table + " (" + strings.Join(sqlstore.Columns, ", ") + ") SELECT * FROM unnest(" +
		strings.Join(casts, ", ") + ")"
}()

// columns turns rows into one array per column, in sqlstore.Columns order.
func columns(rows []audit.Event) []any {
	ints := [2][]int64{}
	texts := make([][]*string, len(sqlstore.Columns)-2)
	for _, r := range rows {
		for i, v := range sqlstore.Values(&r) {
			switch v := v.(type) {
			case int64:
				ints[i] = append(ints[i], v)
			case string:
				texts[i-2] = append(texts[i-2], &v)
			default: // nil: NULL
				texts[i-2] = append(texts[i-2], nil)
			}
		}
	}
	out := []any{ints[0], ints[1]}
	for _, t := range texts {
		out = append(out, t)
	}
	return out
}
