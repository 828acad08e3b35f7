package irqbalance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/irqbalance"
	"github.com/remedyhq/remedy/executors/nettest"
)

// fakeSystemd stands in for the host's systemd, which is not PID 1 on this machine.
// restart simulates what irqbalance does once restarted.
type fakeSystemd struct {
	mu       sync.Mutex
	state    string
	stateErr error
	restart  func() error
	restarts int
}

func (f *fakeSystemd) ActiveState(context.Context, string) (string, error) {
	return f.state, f.stateErr
}

func (f *fakeSystemd) TryRestart(_ context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if unit != irqbalance.Unit {
		return fmt.Errorf("unexpected unit %s", unit)
	}
	f.restarts++
	if f.restart != nil {
		return f.restart()
	}
	return nil
}

// rebalance writes what a healthy irqbalance leaves on the field report's node.
func rebalance(root string) func() error {
	return func() error {
		for i, m := range []string{"1", "2", "4", "8", "10", "20"} {
			if err := os.WriteFile(fmt.Sprintf("%s/proc/irq/%d/smp_affinity", root, 25+i), []byte(m+"\n"), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestCheckParams(t *testing.T) {
	nettest.CheckParams(t, irqbalance.New("/nonexistent", 0), map[string]string{
		`{}`: "",
		`{"interfaces": ["eth0", "eth1"], "minCPUs": 4}`: "",
		`{"minCPUs": -1}`:             "invalid parameters: minCPUs -1 out of range [0, 8192]",
		`{"interfaces": ["eth0/.."]}`: `invalid parameters: interface "eth0/..": not a valid interface name`,
		`{"unit": "sshd.service"}`:    `invalid parameters: json: unknown field "unit"`,
	})
}

func TestExecuteFake(t *testing.T) {
	skewed := map[string]string{"irq/25/smp_affinity": "10", "irq/26/smp_affinity": "20", "irq/27/smp_affinity": "10",
		"irq/28/smp_affinity": "20", "irq/29/smp_affinity": "10", "irq/30/smp_affinity": "20"}
	tests := []struct {
		name, params string
		dry          bool
		sd           func(root string) *fakeSystemd
		sleep        func(context.Context, time.Duration) error
		status       executors.Status
		msg          string
		restarts     int
		spreadAfter  bool
	}{
		{name: "restart spreads the IRQs", params: `{"interfaces": ["eth0"], "minCPUs": 4}`,
			sd:     func(root string) *fakeSystemd { return &fakeSystemd{state: "active", restart: rebalance(root)} },
			status: executors.Succeeded, msg: "restarted irqbalance.service; 6 NIC queue IRQs on 6 CPUs after 5s (before: 2)", restarts: 1, spreadAfter: true},
		{name: "every NIC by default", params: `{}`,
			sd:     func(root string) *fakeSystemd { return &fakeSystemd{state: "active", restart: rebalance(root)} },
			status: executors.Succeeded, msg: "restarted irqbalance.service; 6 NIC queue IRQs on 6 CPUs after 5s (before: 2)", restarts: 1, spreadAfter: true},
		{name: "still skewed after the settle", params: `{"minCPUs": 4}`,
			sd:     func(string) *fakeSystemd { return &fakeSystemd{state: "active"} },
			status: executors.Failed, msg: "restarted irqbalance.service, but after 5s its 6 NIC queue IRQs are on 2 CPUs, want at least 4 (a restart cannot be rolled back)", restarts: 1},
		{name: "dry run", params: `{}`, dry: true,
			sd:     func(string) *fakeSystemd { return &fakeSystemd{state: "active"} },
			status: executors.DryRun, msg: "would try-restart irqbalance.service and re-read 6 NIC queue IRQ affinities after 5s"},
		{name: "dry run without systemd says what it could not check", params: `{}`, dry: true,
			sd: func(string) *fakeSystemd {
				return &fakeSystemd{stateErr: fmt.Errorf("%w: dial /run/dbus/system_bus_socket: no such file", irqbalance.ErrNoSystemd)}
			},
			status: executors.DryRun, msg: "would try-restart irqbalance.service and re-read 6 NIC queue IRQ affinities after 5s; could not check that irqbalance.service is active: systemd unreachable: dial /run/dbus/system_bus_socket: no such file"},
		{name: "inactive unit", params: `{}`,
			sd:     func(string) *fakeSystemd { return &fakeSystemd{state: "inactive"} },
			status: executors.Refused, msg: "irqbalance.service is inactive: try-restart would not start it"},
		{name: "not installed", params: `{}`,
			sd: func(string) *fakeSystemd {
				return &fakeSystemd{stateErr: fmt.Errorf("irqbalance.service: %w", irqbalance.ErrNoUnit)}
			},
			status: executors.Refused, msg: "irqbalance.service: unit not found"},
		{name: "unknown interface", params: `{"interfaces": ["eth9"]}`,
			sd:     func(string) *fakeSystemd { return &fakeSystemd{state: "active"} },
			status: executors.Refused, msg: "interface eth9: no such interface"},
		{name: "virtual interface", params: `{"interfaces": ["veth0"]}`,
			sd:     func(string) *fakeSystemd { return &fakeSystemd{state: "active"} },
			status: executors.Refused, msg: "interface veth0 has no queue IRQs: interface has no device: veth0"},
		{name: "restart fails", params: `{}`,
			sd: func(string) *fakeSystemd {
				return &fakeSystemd{state: "active", restart: func() error { return errors.New("try-restart irqbalance.service: job failed") }}
			},
			status: executors.Failed, msg: "try-restart irqbalance.service: job failed", restarts: 1},
		{name: "settle interrupted", params: `{}`,
			sd:     func(string) *fakeSystemd { return &fakeSystemd{state: "active"} },
			sleep:  func(context.Context, time.Duration) error { return context.Canceled },
			status: executors.Failed, msg: "irqbalance.service restarted; settle interrupted: context canceled", restarts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := nettest.Node8(t)
			sd := tc.sd(root)
			var slept time.Duration
			e := &irqbalance.Executor{Root: root, Systemd: sd, Settle: 5 * time.Second,
				Sleep: func(ctx context.Context, d time.Duration) error { slept = d; return nil }}
			if tc.sleep != nil {
				e.Sleep = tc.sleep
			}
			res := e.Execute(t.Context(), executors.Request{ID: "b", Action: irqbalance.Action, Params: json.RawMessage(tc.params), DryRun: tc.dry})
			if res.Status != tc.status || res.Message != tc.msg {
				t.Errorf("got %s %q\nwant %s %q", res.Status, res.Message, tc.status, tc.msg)
			}
			if sd.restarts != tc.restarts {
				t.Errorf("%d restarts, want %d", sd.restarts, tc.restarts)
			}
			if tc.status == executors.Succeeded {
				if slept != 5*time.Second {
					t.Errorf("settled %s", slept)
				}
				for k, v := range skewed {
					if res.Before[k] != v {
						t.Errorf("before %s = %q, want %q", k, res.Before[k], v)
					}
				}
				if tc.spreadAfter && (res.After["irq/30/smp_affinity"] != "20" || res.After["irq/25/smp_affinity"] != "1") {
					t.Errorf("after %v", res.After)
				}
			}
		})
	}
}

func TestNsenterParsing(t *testing.T) {
	var argv []string
	run := func(out string, err error) irqbalance.Nsenter {
		return irqbalance.Nsenter{Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			argv = append([]string{name}, args...)
			return []byte(out), err
		}}
	}
	s, err := run("LoadState=loaded\nActiveState=active\n", nil).ActiveState(t.Context(), irqbalance.Unit)
	if err != nil || s != "active" {
		t.Errorf("active: %q %v", s, err)
	}
	if got := strings.Join(argv, " "); got != "nsenter -t 1 -m -u -i -n -p -- systemctl show -p LoadState,ActiveState irqbalance.service" {
		t.Errorf("argv %s", got)
	}
	if _, err := run("LoadState=not-found\nActiveState=inactive\n", nil).ActiveState(t.Context(), irqbalance.Unit); !errors.Is(err, irqbalance.ErrNoUnit) {
		t.Errorf("not found: %v", err)
	}
	err = run("System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n", errors.New("exit status 1")).TryRestart(t.Context(), irqbalance.Unit)
	if !errors.Is(err, irqbalance.ErrNoSystemd) || err.Error() != "systemd unreachable: nsenter systemctl try-restart irqbalance.service: exit status 1: System has not been booted with systemd as init system (PID 1). Can't operate." {
		t.Errorf("no systemd: %v", err)
	}
	if got := strings.Join(argv, " "); got != "nsenter -t 1 -m -u -i -n -p -- systemctl try-restart irqbalance.service" {
		t.Errorf("argv %s", got)
	}
	err = run("Job for irqbalance.service failed.\n", errors.New("exit status 1")).TryRestart(t.Context(), irqbalance.Unit)
	if errors.Is(err, irqbalance.ErrNoSystemd) || err.Error() != "nsenter systemctl try-restart irqbalance.service: exit status 1: Job for irqbalance.service failed." {
		t.Errorf("job failed: %v", err)
	}
}

// startBus runs a real dbus-daemon on a socket in a temp dir: a bus on which no systemd
// is registered, as on this machine (systemd is not PID 1).
func startBus(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts dbus-daemon: skipped with -short")
	}
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		if nettest.Required() {
			t.Fatal("dbus-daemon missing: run hack/deps.d/20-node.sh")
		}
		t.Skip("cannot run here: dbus-daemon missing (hack/deps.d/20-node.sh installs it)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "system_bus_socket")
	conf := filepath.Join(dir, "bus.conf")
	cfg := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=` + sock + `</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile")
	var stderr bytes.Buffer // it warns that it cannot raise its fd limit; shown on failure only
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("dbus-daemon: %s", stderr.String())
		}
	})
	// Ready when it accepts a connection: the socket file exists a moment before that.
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if i == 500 {
			t.Fatalf("dbus-daemon not accepting on %s after 5s: %s", sock, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The real D-Bus client against a real bus without systemd: both calls answer that the
// systemd service is unknown, which the client reports as ErrNoSystemd.
func TestDBusNoSystemd(t *testing.T) {
	sock := startBus(t)
	d := irqbalance.DBus{Socket: sock}
	_, err := d.ActiveState(t.Context(), irqbalance.Unit)
	if !errors.Is(err, irqbalance.ErrNoSystemd) || err.Error() != "load irqbalance.service: systemd unreachable: org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.systemd1 was not provided by any .service files" {
		t.Errorf("ActiveState: %v", err)
	}
	err = d.TryRestart(t.Context(), irqbalance.Unit)
	if !errors.Is(err, irqbalance.ErrNoSystemd) || err.Error() != "subscribe: systemd unreachable: org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.systemd1 was not provided by any .service files" {
		t.Errorf("TryRestart: %v", err)
	}
	_, err = irqbalance.DBus{Socket: filepath.Join(t.TempDir(), "none")}.ActiveState(t.Context(), irqbalance.Unit)
	if !errors.Is(err, irqbalance.ErrNoSystemd) || !strings.HasPrefix(err.Error(), "systemd unreachable: dial ") {
		t.Errorf("no socket: %v", err)
	}
}

// The executor as the agent builds it, on a host root whose system bus socket is the test's
// bus: D-Bus answers "no systemd", the nsenter fallback runs for real and fails too (on
// this machine systemd is not PID 1 and PID 1's namespaces cannot be entered), and the
// action fails with both reasons and nothing restarted.
func TestExecuteRealClients(t *testing.T) {
	sock := startBus(t)
	root := nettest.Node8(t)
	nettest.Tree(t, root, map[string]string{"run/dbus/system_bus_socket": "->" + sock})
	res := irqbalance.New(root, time.Second).Execute(t.Context(), executors.Request{ID: "b", Action: irqbalance.Action, Params: json.RawMessage(`{}`)})
	prefix := "load irqbalance.service: systemd unreachable: org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.systemd1 was not provided by any .service files; fallback: "
	if res.Status != executors.Failed || !strings.HasPrefix(res.Message, prefix) {
		t.Fatalf("got %s %q", res.Status, res.Message)
	}
	t.Logf("fallback on this machine: %s", strings.TrimPrefix(res.Message, prefix))
	if res.Before["irq/25/smp_affinity"] != "10" || res.After != nil {
		t.Errorf("before %v after %v", res.Before, res.After)
	}
	t.Log("not testable here: a real systemd restarting irqbalance (systemd is not PID 1); covered by the fake")
}

func FuzzCheckParams(f *testing.F) {
	nettest.FuzzParams(f, irqbalance.New("/nonexistent", 0), `{"interfaces": ["eth0"], "minCPUs": 4}`, `{"minCPUs": 1e9}`)
}
