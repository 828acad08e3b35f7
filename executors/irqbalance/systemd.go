package irqbalance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Sentinel errors of the systemd clients.
var (
	// ErrNoSystemd: the host's systemd could not be reached (no bus socket, no systemd on
	// the bus, systemd not PID 1). Fallback moves on to its second client.
	ErrNoSystemd = errors.New("systemd unreachable")
	// ErrNoUnit: systemd knows no such unit (irqbalance is not installed).
	ErrNoUnit = errors.New("unit not found")
)

// Systemd is what irqbalance.restart needs of the host's systemd.
type Systemd interface {
	// ActiveState returns the unit's ActiveState ("active", "inactive", "failed", ...),
	// ErrNoUnit when it is not installed.
	ActiveState(ctx context.Context, unit string) (string, error)
	// TryRestart restarts the unit if it is running, and waits for the job to finish.
	TryRestart(ctx context.Context, unit string) error
}

const (
	sdService   = "org.freedesktop.systemd1"
	sdPath      = dbus.ObjectPath("/org/freedesktop/systemd1")
	sdManager   = "org.freedesktop.systemd1.Manager"
	sdUnit      = "org.freedesktop.systemd1.Unit"
	errUnknown  = "org.freedesktop.DBus.Error.ServiceUnknown"
	errNoUnit   = "org.freedesktop.systemd1.NoSuchUnit"
	errNoOwner  = "org.freedesktop.DBus.Error.NameHasNoOwner"
	errNoServer = "org.freedesktop.DBus.Error.NoServer"
)

// DBus talks to systemd over the host's system bus socket
// (HostRoot/run/dbus/system_bus_socket), authenticating as the agent's uid (EXTERNAL).
type DBus struct{ Socket string }

func (d DBus) connect(ctx context.Context) (*dbus.Conn, error) {
	conn, err := dbus.Dial("unix:path="+d.Socket, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %v", ErrNoSystemd, d.Socket, err)
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: auth on %s: %v", ErrNoSystemd, d.Socket, err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: hello on %s: %v", ErrNoSystemd, d.Socket, err)
	}
	return conn, nil
}

// callErr maps D-Bus errors to the sentinels.
func callErr(op string, err error) error {
	var de dbus.Error
	if errors.As(err, &de) {
		msg := de.Name
		if len(de.Body) > 0 {
			msg = fmt.Sprintf("%s: %v", de.Name, de.Body[0])
		}
		switch de.Name {
		case errUnknown, errNoOwner, errNoServer:
			return fmt.Errorf("%s: %w: %s", op, ErrNoSystemd, msg)
		case errNoUnit:
			return fmt.Errorf("%s: %w: %s", op, ErrNoUnit, msg)
		}
		return fmt.Errorf("%s: %s", op, msg)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// ActiveState implements Systemd: LoadUnit, then the unit's LoadState and ActiveState.
func (d DBus) ActiveState(ctx context.Context, unit string) (string, error) {
	conn, err := d.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var path dbus.ObjectPath
	if err := conn.Object(sdService, sdPath).CallWithContext(ctx, sdManager+".LoadUnit", 0, unit).Store(&path); err != nil {
		return "", callErr("load "+unit, err)
	}
	obj := conn.Object(sdService, path)
	load, err := obj.GetProperty(sdUnit + ".LoadState")
	if err != nil {
		return "", callErr("load state of "+unit, err)
	}
	if s, _ := load.Value().(string); s == "not-found" {
		return "", fmt.Errorf("%s: %w", unit, ErrNoUnit)
	}
	active, err := obj.GetProperty(sdUnit + ".ActiveState")
	if err != nil {
		return "", callErr("active state of "+unit, err)
	}
	s, _ := active.Value().(string)
	return s, nil
}

// TryRestart implements Systemd: TryRestartUnit in "replace" mode, then waits for the
// job's JobRemoved signal and fails unless its result is "done".
func (d DBus) TryRestart(ctx context.Context, unit string) error {
	conn, err := d.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(sdManager), dbus.WithMatchMember("JobRemoved")); err != nil {
		return callErr("watch jobs", err)
	}
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	mgr := conn.Object(sdService, sdPath)
	if err := mgr.CallWithContext(ctx, sdManager+".Subscribe", 0).Err; err != nil {
		return callErr("subscribe", err)
	}
	var job dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, sdManager+".TryRestartUnit", 0, unit, "replace").Store(&job); err != nil {
		return callErr("try-restart "+unit, err)
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("try-restart %s: waiting for job %s: %w", unit, job, ctx.Err())
		case s, ok := <-signals:
			if !ok {
				return fmt.Errorf("try-restart %s: bus closed while waiting for job %s", unit, job)
			}
			// JobRemoved(u id, o job, s unit, s result)
			if len(s.Body) < 4 || s.Body[1] != job {
				continue
			}
			if result, _ := s.Body[3].(string); result != "done" {
				return fmt.Errorf("try-restart %s: job %s", unit, result)
			}
			return nil
		}
	}
}

// Nsenter runs systemctl in the host's namespaces: nsenter -t 1 -m -u -i -n -p --
// systemctl ... (the agent needs hostPID and CAP_SYS_ADMIN). Run defaults to os/exec.
type Nsenter struct {
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

func (n Nsenter) systemctl(ctx context.Context, args ...string) (string, error) {
	run := n.Run
	if run == nil {
		run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).CombinedOutput()
		}
	}
	argv := append([]string{"-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "systemctl"}, args...)
	out, err := run(ctx, "nsenter", argv...)
	text := strings.TrimSpace(string(bytes.TrimSpace(out)))
	if err != nil {
		if strings.Contains(text, "nsenter:") || strings.Contains(text, "not been booted with systemd") || strings.Contains(text, "Failed to connect to bus") || errors.Is(err, exec.ErrNotFound) {
			return text, fmt.Errorf("%w: nsenter systemctl %s: %v: %s", ErrNoSystemd, strings.Join(args, " "), err, firstLine(text))
		}
		return text, fmt.Errorf("nsenter systemctl %s: %v: %s", strings.Join(args, " "), err, firstLine(text))
	}
	return text, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// ActiveState implements Systemd with systemctl show.
func (n Nsenter) ActiveState(ctx context.Context, unit string) (string, error) {
	out, err := n.systemctl(ctx, "show", "-p", "LoadState,ActiveState", unit)
	if err != nil {
		return "", err
	}
	props := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	if props["LoadState"] == "not-found" {
		return "", fmt.Errorf("%s: %w", unit, ErrNoUnit)
	}
	return props["ActiveState"], nil
}

// TryRestart implements Systemd with systemctl try-restart (which waits for the job).
func (n Nsenter) TryRestart(ctx context.Context, unit string) error {
	_, err := n.systemctl(ctx, "try-restart", unit)
	return err
}

// Fallback uses Primary, and Secondary when Primary cannot reach systemd.
type Fallback struct{ Primary, Secondary Systemd }

// ActiveState implements Systemd.
func (f Fallback) ActiveState(ctx context.Context, unit string) (string, error) {
	s, err := f.Primary.ActiveState(ctx, unit)
	if !errors.Is(err, ErrNoSystemd) {
		return s, err
	}
	s, err2 := f.Secondary.ActiveState(ctx, unit)
	if err2 != nil {
		return "", fmt.Errorf("%w; fallback: %w", err, err2)
	}
	return s, nil
}

// TryRestart implements Systemd.
func (f Fallback) TryRestart(ctx context.Context, unit string) error {
	err := f.Primary.TryRestart(ctx, unit)
	if !errors.Is(err, ErrNoSystemd) {
		return err
	}
	if err2 := f.Secondary.TryRestart(ctx, unit); err2 != nil {
		return fmt.Errorf("%w; fallback: %w", err, err2)
	}
	return nil
}
