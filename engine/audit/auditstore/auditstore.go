// Package auditstore turns the engine's audit options into a store: a PostgreSQL URL
// selects the postgres store, anything else is a SQLite file. It also runs retention.
package auditstore

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/postgres"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
)

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens the store dsn names: postgres://… or postgresql://… for PostgreSQL, a file
// path (optionally prefixed sqlite:) for SQLite, or, when dsn is empty, the SQLite file
// at defaultPath.
func Open(ctx context.Context, dsn, defaultPath string, opts audit.Options) (audit.Log, error) {
	if IsPostgres(dsn) {
		return postgres.Open(ctx, dsn, opts)
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" {
		path = defaultPath
	}
	return sqlite.Open(path, opts)
}

// RunRetention removes, every interval until ctx ends, the rows older than keep, leaving
// a signed checkpoint each time (audit.Log.Retain). Failures are logged and retried at
// the next tick.
func RunRetention(ctx context.Context, lg audit.Log, keep, every time.Duration, clock func() time.Time, log *slog.Logger) {
	if clock == nil {
		clock = time.Now
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		before := clock().Add(-keep)
		cp, err := lg.Retain(ctx, before)
		switch {
		case err != nil:
			log.Error("audit retention failed", "err", err)
		case cp != nil:
			log.Info("audit retention", "removed", cp.Removed, "through_seq", cp.ThroughSeq, "before", before)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
