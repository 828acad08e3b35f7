// Package pgtest runs a throwaway PostgreSQL server for tests and benchmarks: initdb into
// a temporary folder, pg_ctl start on a free loopback port, as the unprivileged postgres
// user when the test runs as root (PostgreSQL refuses to run as root). The binaries come
// from $REMEDY_PG_BIN, the PATH, or Debian's /usr/lib/postgresql/<version>/bin; where
// none is installed, hack/deps.d/10-postgres.sh installs them.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries: no PostgreSQL server binaries were found.
var ErrNoBinaries = errors.New("postgresql server binaries (initdb, pg_ctl) not found: run hack/deps.d/10-postgres.sh")

// Server is a running PostgreSQL server.
type Server struct {
	dir   string // owns data/, the socket and the log
	bin   string
	runAs string // "" when not root
	port  int
	dbs   atomic.Int64
}

// FindBin returns the folder holding initdb and pg_ctl.
func FindBin() (string, error) {
	if d := os.Getenv("REMEDY_PG_BIN"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", ErrNoBinaries
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return filepath.Dir(found[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Start initializes and starts a server; Stop removes it.
func Start(ctx context.Context) (*Server, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "remedy-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if err := s.dropRoot(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := s.run(ctx, "initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Another process may take the free port before the server binds it: try again.
	for range 3 {
		if s.port, err = freePort(); err != nil {
			break
		}
		err = s.run(ctx, "pg_ctl", "-D", s.data(), "-l", filepath.Join(dir, "log"), "-w", "-t", "30",
			"-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", s.port, dir), "start")
		if err == nil {
			return s, nil
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	os.RemoveAll(dir)
	return nil, fmt.Errorf("%w\nserver log:\n%s", err, log)
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) dropRoot() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pgtest: running as root needs a postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(s.dir, uid, gid); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s.runAs = "postgres"
	return nil
}

func (s *Server) run(ctx context.Context, prog string, args ...string) error {
	path := filepath.Join(s.bin, prog)
	if s.runAs != "" {
		args = append([]string{"-u", s.runAs, "--", path}, args...)
		path = "runuser"
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", prog, err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN is the URL of database name on the server.
func (s *Server) DSN(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d", s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return s.DSN(name), nil
}

// Stop stops the server at once and removes its files.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.run(ctx, "pg_ctl", "-D", s.data(), "-m", "immediate", "stop")
	return errors.Join(err, os.RemoveAll(s.dir))
}

// Shared is one server for a whole test binary, started by the first test that needs
// it; TestMain calls Stop.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Get returns the server. Under -short it skips the test; when the server cannot start
// it fails the test, loudly: a missing PostgreSQL is a broken test machine.
func (sh *Shared) Get(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("PostgreSQL tests do not run with -short")
	}
	sh.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sh.srv, sh.err = Start(ctx)
	})
	if sh.err != nil {
		tb.Fatalf("cannot start PostgreSQL for this test: %v", sh.err)
	}
	return sh.srv
}

// Database creates a fresh database on the shared server and returns its URL.
func (sh *Shared) Database(tb testing.TB) string {
	tb.Helper()
	dsn, err := sh.Get(tb).NewDatabase(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return dsn
}

// Stop stops the server if one was started.
func (sh *Shared) Stop() {
	if sh.srv != nil {
		if err := sh.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, strings.TrimSpace(err.Error()))
		}
	}
}
