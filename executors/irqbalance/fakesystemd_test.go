package irqbalance_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/irqbalance"
	"github.com/remedyhq/remedy/executors/nettest"
)

// manager is a stand-in for systemd's org.freedesktop.systemd1.Manager on a real bus:
// the part of systemd's D-Bus API the client uses (LoadUnit, Subscribe, TryRestartUnit
// and the JobRemoved signal, the units' LoadState and ActiveState properties), so the
// real client's whole path runs over a real dbus-daemon.
type manager struct {
	conn      *dbus.Conn
	onRestart func() error

	mu        sync.Mutex
	jobResult string
	restarts  []string
}

const (
	sdPath      = dbus.ObjectPath("/org/freedesktop/systemd1")
	unitPath    = dbus.ObjectPath("/org/freedesktop/systemd1/unit/irqbalance_2eservice")
	missingPath = dbus.ObjectPath("/org/freedesktop/systemd1/unit/missing")
)

func (m *manager) LoadUnit(name string) (dbus.ObjectPath, *dbus.Error) {
	if name == irqbalance.Unit {
		return unitPath, nil
	}
	return missingPath, nil
}

func (m *manager) Subscribe() *dbus.Error { return nil }

func (m *manager) TryRestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	m.mu.Lock()
	m.restarts = append(m.restarts, name+" "+mode)
	m.mu.Unlock()
	job := dbus.ObjectPath("/org/freedesktop/systemd1/job/42")
	go func() {
		// systemd answers with the job first and signals its end later.
		time.Sleep(20 * time.Millisecond)
		m.mu.Lock()
		result := m.jobResult
		m.mu.Unlock()
		if m.onRestart != nil && m.onRestart() != nil {
			result = "failed"
		}
		_ = m.conn.Emit(sdPath, "org.freedesktop.systemd1.Manager.JobRemoved", uint32(42), job, name, result)
	}()
	return job, nil
}

// serveSystemd claims org.freedesktop.systemd1 on the bus and serves the manager.
func serveSystemd(t *testing.T, sock string, m *manager) {
	t.Helper()
	conn, err := dbus.Dial("unix:path=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Auth(nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	m.conn = conn
	if err := conn.Export(m, sdPath, "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	unit := func(load, active string) prop.Map {
		return prop.Map{"org.freedesktop.systemd1.Unit": {
			"LoadState":   {Value: load, Emit: prop.EmitFalse},
			"ActiveState": {Value: active, Emit: prop.EmitFalse},
		}}
	}
	if _, err := prop.Export(conn, unitPath, unit("loaded", "active")); err != nil {
		t.Fatal(err)
	}
	if _, err := prop.Export(conn, missingPath, unit("not-found", "inactive")); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", reply, err)
	}
}

// The real D-Bus client against a systemd stand-in on a real bus: the unit's state, a
// try-restart that waits for its job, a failed job, a unit that is not installed.
func TestDBusClient(t *testing.T) {
	sock := startBus(t)
	m := &manager{jobResult: "done"}
	serveSystemd(t, sock, m)
	d := irqbalance.DBus{Socket: sock}

	if s, err := d.ActiveState(t.Context(), irqbalance.Unit); err != nil || s != "active" {
		t.Errorf("ActiveState = %q, %v", s, err)
	}
	if _, err := d.ActiveState(t.Context(), "nosuch.service"); !errors.Is(err, irqbalance.ErrNoUnit) || err.Error() != "nosuch.service: unit not found" {
		t.Errorf("missing unit: %v", err)
	}
	start := time.Now()
	if err := d.TryRestart(t.Context(), irqbalance.Unit); err != nil {
		t.Fatalf("TryRestart: %v", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Errorf("TryRestart returned after %s, before the job ended", waited)
	}
	m.mu.Lock()
	m.jobResult = "failed"
	m.mu.Unlock()
	if err := d.TryRestart(t.Context(), irqbalance.Unit); err == nil || err.Error() != "try-restart irqbalance.service: job failed" {
		t.Errorf("failed job: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.Join(m.restarts, ";") != "irqbalance.service replace;irqbalance.service replace" {
		t.Errorf("restarts %v", m.restarts)
	}
}

// The executor as the catalogue builds it, end to end over a real bus: snapshot, D-Bus
// try-restart (the stand-in rebalances the fixture's IRQs as irqbalance would), settle,
// verify.
func TestExecuteOverDBus(t *testing.T) {
	sock := startBus(t)
	root := nettest.Node8(t)
	nettest.Tree(t, root, map[string]string{"run/dbus/system_bus_socket": "->" + sock})
	m := &manager{jobResult: "done", onRestart: rebalance(root)}
	serveSystemd(t, sock, m)
	e := irqbalance.New(root, 50*time.Millisecond)
	res := e.Execute(t.Context(), executors.Request{ID: "b", Action: irqbalance.Action, Params: []byte(`{"interfaces": ["eth0"], "minCPUs": 6}`)})
	if res.Status != executors.Succeeded || res.Message != "restarted irqbalance.service; 6 NIC queue IRQs on 6 CPUs after 50ms (before: 2)" {
		t.Fatalf("got %s %q", res.Status, res.Message)
	}
	if res.Before["irq/26/smp_affinity"] != "20" || res.After["irq/26/smp_affinity"] != "2" {
		t.Errorf("before %v after %v", res.Before, res.After)
	}
}
