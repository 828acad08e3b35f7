// Package irqbalance implements irqbalance.restart: the field fix for NIC queue IRQs that
// irqbalance left on two CPUs after a VM freeze (`systemctl try-restart irqbalance`). It
// restarts the host's irqbalance through systemd over D-Bus on the host's system bus
// socket (TryRestartUnit, waiting for the job), falling back to
// `nsenter -t 1 -m -u -i -n -p -- systemctl try-restart irqbalance.service` when systemd
// cannot be reached over the bus; then, after a settle delay, it re-reads the NIC queue
// IRQs' affinities and reports them before and after. A restart cannot be rolled back:
// when minCPUs is given and the IRQs still span fewer CPUs after the settle, the action
// fails, so that the policy can escalate (irq.spread, cordon).
//
// Only a running irqbalance is restarted: an inactive unit is refused (try-restart would
// not start it), a missing one too.
//
// Privileges: the host's system bus socket mounted below the host root
// (/run/dbus/system_bus_socket) and uid 0, which systemd's D-Bus policy allows to manage
// units; for the fallback, hostPID and CAP_SYS_ADMIN (nsenter into PID 1). Read access to
// the host's /proc and /sys.
//
// Example decision:
//
//	{"action": "irqbalance.restart", "params": {"interfaces": ["eth0"], "minCPUs": 4}}
package irqbalance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/internal/txn"
	"github.com/remedyhq/remedy/nodefs"
)

// Action is this executor's action name.
const Action = "irqbalance.restart"

// Unit is the systemd unit restarted.
const Unit = "irqbalance.service"

// DefaultSettle is how long irqbalance gets to place the IRQs after its restart: its
// first rebalance runs one interval (10 s by default) after start.
const DefaultSettle = 12 * time.Second

// Params are irqbalance.restart's parameters.
type Params struct {
	// Interfaces whose queue IRQs are read before and after; default every NIC with
	// queue IRQs.
	Interfaces []string `json:"interfaces,omitempty"`
	// MinCPUs, when above 0, is how many distinct CPUs the queue IRQs must be delivered
	// to after the settle (capped at the number of IRQs and of online CPUs).
	MinCPUs int `json:"minCPUs,omitempty"`
}

// Validate implements executors.Validator.
func (p *Params) Validate() error {
	for _, i := range p.Interfaces {
		if err := nic.CheckName(i); err != nil {
			return err
		}
	}
	if p.MinCPUs < 0 || p.MinCPUs > 8192 {
		return fmt.Errorf("minCPUs %d out of range [0, 8192]", p.MinCPUs)
	}
	return nil
}

// Executor is the irqbalance.restart executor.
type Executor struct {
	Root    string
	Systemd Systemd
	Settle  time.Duration
	// Sleep waits for the settle delay; nil waits on a timer (tests pass their own).
	Sleep func(ctx context.Context, d time.Duration) error
}

// New returns the executor over a host root with the real systemd clients: D-Bus on
// root/run/dbus/system_bus_socket, then nsenter.
func New(root string, settle time.Duration) *Executor {
	return &Executor{Root: root, Systemd: HostSystemd(filepath.Join(root, "run", "dbus", "system_bus_socket")), Settle: settle}
}

// HostSystemd is the host's systemd as the agent reaches it: over D-Bus on the given
// system bus socket, else through nsenter.
func HostSystemd(socket string) Systemd {
	return Fallback{Primary: DBus{Socket: socket}, Secondary: Nsenter{}}
}

// Action implements executors.Executor.
func (e *Executor) Action() string { return Action }

// CheckParams implements executors.Executor.
func (e *Executor) CheckParams(raw json.RawMessage) error {
	_, err := executors.DecodeParams[Params](raw)
	return err
}

// Execute implements executors.Executor.
func (e *Executor) Execute(ctx context.Context, req executors.Request) executors.Result {
	start := time.Now().UTC()
	fail := func(status executors.Status, before map[string]string, err error) executors.Result {
		return executors.Finish(req, start, executors.Result{Status: status, Message: err.Error(), Before: before})
	}
	p, err := executors.DecodeParams[Params](req.Params)
	if err != nil {
		return fail(executors.Refused, nil, err)
	}
	fs, err := nodefs.New(e.Root)
	if err != nil {
		return fail(executors.Failed, nil, err)
	}
	irqs, err := e.queueIRQs(fs, p.Interfaces)
	if err != nil {
		return fail(executors.Refused, nil, err)
	}
	before, spreadBefore, err := affinities(fs, irqs)
	if err != nil {
		return fail(executors.Failed, nil, err)
	}
	would := fmt.Sprintf("would try-restart %s and re-read %d NIC queue IRQ affinities after %s", Unit, len(irqs), e.Settle)
	state, err := e.Systemd.ActiveState(ctx, Unit)
	switch {
	case errors.Is(err, ErrNoUnit):
		return fail(executors.Refused, before, err)
	case err != nil && req.DryRun:
		// A dry run changes nothing, so an unreachable systemd does not fail it: it says
		// what it would do and what it could not check.
		return executors.Finish(req, start, executors.Result{Status: executors.DryRun, Before: before,
			Message: fmt.Sprintf("%s; could not check that %s is active: %v", would, Unit, err)})
	case err != nil:
		return fail(executors.Failed, before, err)
	case state != "active":
		return fail(executors.Refused, before, fmt.Errorf("%s is %s: try-restart would not start it", Unit, state))
	}
	if req.DryRun {
		return executors.Finish(req, start, executors.Result{Status: executors.DryRun, Before: before, Message: would})
	}
	if err := e.Systemd.TryRestart(ctx, Unit); err != nil {
		return fail(executors.Failed, before, err)
	}
	if err := e.sleep(ctx, e.Settle); err != nil {
		return fail(executors.Failed, before, fmt.Errorf("%s restarted; settle interrupted: %w", Unit, err))
	}
	after, spread, err := affinities(fs, irqs)
	if err != nil {
		return fail(executors.Failed, before, fmt.Errorf("%s restarted; %w", Unit, err))
	}
	res := executors.Result{Status: executors.Succeeded, Before: before, After: after,
		Message: fmt.Sprintf("restarted %s; %d NIC queue IRQs on %d CPUs after %s (before: %d)", Unit, len(irqs), spread, e.Settle, spreadBefore)}
	if want := e.want(fs, p.MinCPUs, len(irqs)); spread < want {
		res.Status = executors.Failed
		res.Message = fmt.Sprintf("restarted %s, but after %s its %d NIC queue IRQs are on %d CPUs, want at least %d (a restart cannot be rolled back)",
			Unit, e.Settle, len(irqs), spread, want)
	}
	return executors.Finish(req, start, res)
}

func (e *Executor) sleep(ctx context.Context, d time.Duration) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// want caps minCPUs at what the node can do.
func (e *Executor) want(fs nodefs.FS, minCPUs, nirq int) int {
	if minCPUs == 0 {
		return 0
	}
	online, err := fs.OnlineCPUs()
	if err != nil {
		return min(minCPUs, nirq)
	}
	return min(minCPUs, nirq, len(online))
}

func (e *Executor) queueIRQs(fs nodefs.FS, ifaces []string) ([]nodefs.QueueIRQ, error) {
	if len(ifaces) == 0 {
		all, err := fs.NICs()
		if err != nil {
			return nil, err
		}
		var out []nodefs.QueueIRQ
		for _, i := range all {
			if irqs, err := fs.NICQueueIRQs(i, nil); err == nil {
				out = append(out, irqs...)
			}
		}
		if len(out) == 0 {
			return nil, txn.Refuse("no NIC with queue IRQs on this node")
		}
		return out, nil
	}
	var out []nodefs.QueueIRQ
	for _, i := range ifaces {
		irqs, err := nic.QueueIRQs(fs, i)
		if err != nil {
			return nil, err
		}
		out = append(out, irqs...)
	}
	return out, nil
}

// affinities reads each IRQ's smp_affinity, and counts the distinct CPUs the IRQs are
// delivered to (effective_affinity where the kernel has it).
func affinities(fs nodefs.FS, irqs []nodefs.QueueIRQ) (map[string]string, int, error) {
	out := map[string]string{}
	var cpus nodefs.CPUMask
	for _, q := range irqs {
		m, err := fs.IRQAffinity(q.IRQ)
		if err != nil {
			return nil, 0, fmt.Errorf("irq %d: %w", q.IRQ, err)
		}
		out[nic.AffinityKey(q.IRQ)] = m.String()
		if eff, err := fs.IRQEffectiveAffinity(q.IRQ); err == nil {
			m = eff
		}
		for _, c := range m.CPUs() {
			cpus = cpus.Set(c)
		}
	}
	return out, cpus.Count(), nil
}
