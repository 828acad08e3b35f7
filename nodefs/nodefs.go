// Package nodefs reads the host's /proc and /sys below a host root, read-only.
//
// A containerised agent sees the host's trees at /host/proc and /host/sys; a test sees a
// fixture tree under testdata/. Everything here takes its paths from an FS built with
// New, so the same code serves all three. It covers what the remedy detectors and node
// executors need about NIC queue interrupts: which IRQs serve a NIC's queues, where
// their affinity points, how many CPUs are online and which NUMA node a device sits on.
// Writing is left to the executors.
//
// A Reader (FS.NewReader) serves the detectors' every-second path: it reads the hot
// files (/proc/interrupts, /proc/stat, /proc/softirqs, softnet_stat, affinity masks,
// counters) into one reused buffer and parses only what is asked for. The rest reads
// through github.com/prometheus/procfs.
package nodefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/sysfs"
)

// DefaultRoot is the host root of an agent that runs on the host itself.
const DefaultRoot = "/"

// Sentinel errors.
var (
	// ErrNoDevice is returned for an interface without a backing device (lo, veth,
	// bridges): it has no queue IRQs of its own.
	ErrNoDevice = errors.New("interface has no device")
	// ErrNoNUMA is returned when a device reports no NUMA node (-1 or no file).
	ErrNoNUMA = errors.New("device has no numa node")
)

// FS is a host's /proc and /sys below a root directory.
type FS struct {
	root string
	proc procfs.FS
	sys  sysfs.FS
}

// New opens the host trees at root/proc and root/sys. An empty root means "/".
func New(root string) (FS, error) {
	if root == "" {
		root = DefaultRoot
	}
	p, err := procfs.NewFS(filepath.Join(root, "proc"))
	if err != nil {
		return FS{}, fmt.Errorf("nodefs: %w", err)
	}
	s, err := sysfs.NewFS(filepath.Join(root, "sys"))
	if err != nil {
		return FS{}, fmt.Errorf("nodefs: %w", err)
	}
	return FS{root: root, proc: p, sys: s}, nil
}

// Root is the host root the FS was opened at.
func (fs FS) Root() string { return fs.root }

// Proc is the procfs view of the host's /proc.
func (fs FS) Proc() procfs.FS { return fs.proc }

// Sys is the sysfs view of the host's /sys.
func (fs FS) Sys() sysfs.FS { return fs.sys }

// ProcPath joins elem below the host's /proc.
func (fs FS) ProcPath(elem ...string) string {
	return filepath.Join(append([]string{fs.root, "proc"}, elem...)...)
}

// SysPath joins elem below the host's /sys.
func (fs FS) SysPath(elem ...string) string {
	return filepath.Join(append([]string{fs.root, "sys"}, elem...)...)
}

// OnlineCPUs lists the online CPUs from /sys/devices/system/cpu/online.
func (fs FS) OnlineCPUs() ([]int, error) {
	b, err := os.ReadFile(fs.SysPath("devices", "system", "cpu", "online"))
	if err != nil {
		return nil, fmt.Errorf("read online cpus: %w", err)
	}
	cpus, err := ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("read online cpus: %w", err)
	}
	return cpus, nil
}

// NICs lists the network interfaces backed by a device (physical NICs, virtio, VFs),
// sorted by name. Virtual interfaces (lo, veth, bridges) have no queue IRQs and are left out.
func (fs FS) NICs() ([]string, error) {
	names, err := fs.sys.NetClassDevices()
	if err != nil {
		return nil, fmt.Errorf("list nics: %w", err)
	}
	out := names[:0]
	for _, n := range names {
		if _, err := os.Stat(fs.SysPath("class", "net", n, "device")); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// pciDevice returns the directory of the device that owns an interface's interrupts.
// A virtio NIC's device link points at the virtio device, whose parent is the PCI
// function holding msi_irqs and numa_node.
func (fs FS) pciDevice(iface string) (string, error) {
	dev, err := filepath.EvalSymlinks(fs.SysPath("class", "net", iface, "device"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: %s", ErrNoDevice, iface)
		}
		return "", fmt.Errorf("resolve device of %s: %w", iface, err)
	}
	if strings.HasPrefix(filepath.Base(dev), "virtio") {
		if _, err := os.Stat(filepath.Join(dev, "msi_irqs")); err != nil {
			return filepath.Dir(dev), nil
		}
	}
	return dev, nil
}

// DeviceNUMANode returns the NUMA node of the device behind iface, or ErrNoNUMA.
func (fs FS) DeviceNUMANode(iface string) (int, error) {
	dev, err := fs.pciDevice(iface)
	if err != nil {
		return -1, err
	}
	b, err := os.ReadFile(filepath.Join(dev, "numa_node"))
	if errors.Is(err, os.ErrNotExist) {
		return -1, fmt.Errorf("%w: %s", ErrNoNUMA, iface)
	}
	if err != nil {
		return -1, fmt.Errorf("read numa_node: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1, fmt.Errorf("read numa_node: %w", err)
	}
	if n < 0 {
		return -1, fmt.Errorf("%w: %s", ErrNoNUMA, iface)
	}
	return n, nil
}
