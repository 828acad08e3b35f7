package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/audittest"
	"github.com/remedyhq/remedy/engine/audit/postgres"
	"github.com/remedyhq/remedy/engine/audit/postgres/pgtest"
)

// pg is the test binary's one server, stopped by TestMain.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func backend(t *testing.T) audittest.Backend {
	dsn := pg.Database(t)
	return audittest.Backend{
		Open: func(opts audit.Options) (audit.Log, error) { return postgres.Open(context.Background(), dsn, opts) },
		Exec: func(q string) error {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, q)
			return err
		},
	}
}

func TestConformance(t *testing.T) { audittest.Run(t, backend) }

func openBench(b *testing.B) audit.Log {
	st, err := postgres.Open(context.Background(), pg.Database(b), audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func BenchmarkAppend(b *testing.B) { audittest.BenchmarkAppend(b, openBench) }

func BenchmarkQuery(b *testing.B) { audittest.BenchmarkQuery(b, openBench) }
