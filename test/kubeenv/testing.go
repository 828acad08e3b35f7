package kubeenv

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// Require starts an environment for one test and stops it when the test ends. When the
// binaries are missing the test fails with how to build them, except under -short, where
// it is skipped.
func Require(t testing.TB, o Options) *Env {
	t.Helper()
	e, err := Start(context.Background(), o)
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.Logs(20))
		}
		e.Stop()
	})
	return e
}

// Shared is one environment for all the tests of a package, started by the first test
// that asks for it (so that unit tests alone never pay for it). Stop it from TestMain:
//
//	var kenv kubeenv.Shared
//
//	func TestMain(m *testing.M) { os.Exit(kenv.Run(m)) }
type Shared struct {
	Options Options

	once sync.Once
	env  *Env
	err  error
}

// Get returns the shared environment, starting it on first use; it fails or skips the
// test as Require does.
func (s *Shared) Get(t testing.TB) *Env {
	t.Helper()
	s.once.Do(func() { s.env, s.err = Start(context.Background(), s.Options) })
	if s.err != nil {
		fail(t, s.err)
	}
	return s.env
}

// Run runs the package's tests and stops the environment; TestMain exits with its code.
func (s *Shared) Run(m *testing.M) int {
	defer s.Stop()
	return m.Run()
}

// Stop stops the environment if it was started.
func (s *Shared) Stop() {
	if s.env != nil {
		s.env.Stop()
	}
}

func fail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoBinaries) && testing.Short() {
		t.Skipf("skipped under -short: %v", err)
	}
	t.Fatalf("kubeenv: %v", err)
}
