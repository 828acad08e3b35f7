package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/audittest"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
)

func backend(t *testing.T) audittest.Backend {
	path := filepath.Join(t.TempDir(), "audit.db")
	return audittest.Backend{
		Open: func(opts audit.Options) (audit.Log, error) { return sqlite.Open(path, opts) },
		Exec: func(q string) error {
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.Exec(q)
			return err
		},
	}
}

func TestConformance(t *testing.T) { audittest.Run(t, backend) }

func openBench(b *testing.B) audit.Log {
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "audit.db"), audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func BenchmarkAppend(b *testing.B) { audittest.BenchmarkAppend(b, openBench) }

func BenchmarkQuery(b *testing.B) { audittest.BenchmarkQuery(b, openBench) }
