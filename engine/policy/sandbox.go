package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The sandbox a policy runs in. A decision is a pure function of its input and the
// policy's data: no builtin reaches the network, the files or the process, none returns
// something else on a second run (a replay must decide as the engine did), and every
// evaluation has a deadline.

// DefaultEvalTimeout bounds one evaluation of the decision document. The library
// decides a signal in about 0.2 ms of CPU (BENCHMARKS.md); on a loaded 2-core machine
// (load 23, eight evaluations at once) the slowest of the library's test inputs took
// 140 ms of wall-clock time, so a 250 ms deadline cut off good decisions. A policy that
// needs more than this is stuck or hostile.
const DefaultEvalTimeout = 500 * time.Millisecond

// ErrDeadline marks an evaluation cut off at its deadline.
var ErrDeadline = errors.New("policy evaluation cut off at its deadline")

// deniedBuiltin reports whether a builtin is outside the sandbox, and why.
func deniedBuiltin(name string) (string, bool) {
	switch {
	case name == "http.send", strings.HasPrefix(name, "net."):
		return "network", true
	case name == "opa.runtime":
		return "runtime (environment, configuration)", true
	case name == "time.now_ns", name == "rand.intn", name == "uuid.rfc4122":
		return "non-deterministic (a replay would decide otherwise; use input.now)", true
	}
	return "", false
}

// Capabilities are OPA's capabilities for remedy's policies: this OPA's builtins minus
// those that reach the network (http.send, net.*), the runtime (opa.runtime) or give a
// different answer each run (time.now_ns, rand.intn, uuid.rfc4122), and no hosts
// allowed for network access at all.
func Capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		_, denied := deniedBuiltin(b.Name)
		return denied
	})
	c.AllowNet = []string{}
	return c
}

// newCompiler is the compiler of every policy module, tests included.
func newCompiler() *ast.Compiler {
	return ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(Capabilities())
}

// explainDenied rewrites OPA's "undefined function http.send" for a builtin the sandbox
// removed, keeping its code and location (file:line).
func explainDenied(errs ast.Errors) ast.Errors {
	for _, e := range errs {
		name, ok := strings.CutPrefix(e.Message, "undefined function ")
		if !ok {
			continue
		}
		if why, denied := deniedBuiltin(name); denied {
			e.Message = fmt.Sprintf("%s is not allowed in remedy policies (%s builtin)", name, why)
		}
	}
	return errs
}

// deadlineStretch bounds how far a starved process stretches a deadline (see deadline).
const deadlineStretch = 10

// deadline cancels an evaluation once it has run for d and remembers whether it did.
// The time is wall-clock, but the deadline waits for the engine process to have had d of
// CPU time since the evaluation started: on a machine so loaded that the process gets a
// fraction of a core, a good decision is late through no fault of the policy (seen here:
// 140 ms for the library at load 23). A stuck policy keeps its goroutine busy and is cut
// off at d when the process gets its CPU, and at deadlineStretch × d whatever happens.
type deadline struct {
	d      time.Duration
	cpu    func() time.Duration // processCPU
	cancel topdown.Cancel
	timer  *time.Timer
	wall0  time.Time
	cpu0   time.Duration
	fired  atomic.Bool
	done   atomic.Bool
}

func startDeadline(d time.Duration, cancel topdown.Cancel, cpu func() time.Duration) *deadline {
	dl := &deadline{d: d, cpu: cpu, cancel: cancel, wall0: time.Now(), cpu0: cpu()}
	dl.timer = time.AfterFunc(time.Hour, dl.check) // armed below, once dl.timer is set
	dl.timer.Reset(d)
	return dl
}

func (dl *deadline) check() {
	if dl.done.Load() {
		return
	}
	used := dl.cpu() - dl.cpu0
	if used >= dl.d || time.Since(dl.wall0) >= deadlineStretch*dl.d {
		dl.fired.Store(true)
		dl.cancel.Cancel()
		return
	}
	dl.timer.Reset(dl.d - used)
}

func (dl *deadline) stop() {
	dl.done.Store(true)
	dl.timer.Stop()
}
