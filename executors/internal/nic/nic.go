// Package nic holds what the NIC executors share: the small ethtool interface they drive
// (ring sizes, channels) with its kernel implementation, the Settings built on it, and the
// sysfs paths of an interface's queues below a host root.
package nic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/remedyhq/remedy/executors/internal/txn"
	"github.com/remedyhq/remedy/nodefs"
)

// Sentinel errors.
var (
	ErrNotSupported = errors.New("not supported by the device")
	ErrNoDevice     = errors.New("no such interface")
)

// Ring holds a NIC's ring sizes and their maxima.
type Ring struct{ RxMax, TxMax, Rx, Tx uint32 }

// Channels holds a NIC's channel counts and their maxima.
type Channels struct{ MaxRx, MaxTx, MaxCombined, Rx, Tx, Combined uint32 }

// Ethtool is what the executors need of ethtool: read and set ring sizes and channels.
type Ethtool interface {
	Ring(ctx context.Context, ifname string) (Ring, error)
	SetRing(ctx context.Context, ifname string, r Ring) error
	Channels(ctx context.Context, ifname string) (Channels, error)
	SetChannels(ctx context.Context, ifname string, c Channels) error
}

// Kernel is the real Ethtool: ioctls through github.com/safchain/ethtool.
type Kernel struct {
	// NetNS is the path of the network namespace whose interfaces are meant
	// ("/host/proc/1/ns/net" for an agent without hostNetwork); empty means the agent's own.
	NetNS string
}

// handle opens an ethtool socket, inside NetNS when set: the socket stays bound to the
// namespace it was created in, so only its creation needs the namespace switch.
func (k Kernel) handle() (*ethtool.Ethtool, error) {
	if k.NetNS == "" {
		return ethtool.NewEthtool()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(k.NetNS)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("netns %s: %w", k.NetNS, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter netns %s: %w", k.NetNS, err)
	}
	h, herr := ethtool.NewEthtool()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the other namespace: keep it locked so that it exits
		// with this goroutine instead of serving others.
		if h != nil {
			h.Close()
		}
		return nil, fmt.Errorf("leave netns %s: %w", k.NetNS, err)
	}
	runtime.UnlockOSThread()
	return h, herr
}

func kernelErr(op, ifname string, err error) error {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%s %s: %w (%v)", op, ifname, ErrNotSupported, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%s %s: %w", op, ifname, ErrNoDevice)
	}
	return fmt.Errorf("%s %s: %w", op, ifname, err)
}

func (k Kernel) do(op, ifname string, f func(*ethtool.Ethtool) error) error {
	h, err := k.handle()
	if err != nil {
		return fmt.Errorf("%s %s: ethtool: %w", op, ifname, err)
	}
	defer h.Close()
	if err := f(h); err != nil {
		return kernelErr(op, ifname, err)
	}
	return nil
}

// Ring implements Ethtool.
func (k Kernel) Ring(_ context.Context, ifname string) (Ring, error) {
	var r ethtool.Ring
	err := k.do("get ring", ifname, func(h *ethtool.Ethtool) (err error) { r, err = h.GetRing(ifname); return err })
	return Ring{RxMax: r.RxMaxPending, TxMax: r.TxMaxPending, Rx: r.RxPending, Tx: r.TxPending}, err
}

// SetRing implements Ethtool; fields other than rx and tx keep their values.
func (k Kernel) SetRing(_ context.Context, ifname string, want Ring) error {
	return k.do("set ring", ifname, func(h *ethtool.Ethtool) error {
		r, err := h.GetRing(ifname)
		if err != nil {
			return err
		}
		r.RxPending, r.TxPending = want.Rx, want.Tx
		_, err = h.SetRing(ifname, r)
		return err
	})
}

// Channels implements Ethtool.
func (k Kernel) Channels(_ context.Context, ifname string) (Channels, error) {
	var c ethtool.Channels
	err := k.do("get channels", ifname, func(h *ethtool.Ethtool) (err error) { c, err = h.GetChannels(ifname); return err })
	return Channels{MaxRx: c.MaxRx, MaxTx: c.MaxTx, MaxCombined: c.MaxCombined, Rx: c.RxCount, Tx: c.TxCount, Combined: c.CombinedCount}, err
}

// SetChannels implements Ethtool; the "other" channels keep their count.
func (k Kernel) SetChannels(_ context.Context, ifname string, want Channels) error {
	return k.do("set channels", ifname, func(h *ethtool.Ethtool) error {
		c, err := h.GetChannels(ifname)
		if err != nil {
			return err
		}
		c.RxCount, c.TxCount, c.CombinedCount = want.Rx, want.Tx, want.Combined
		_, err = h.SetChannels(ifname, c)
		return err
	})
}

// RingSetting is one ring size ("rx" or "tx") of an interface, as a txn.Setting.
type RingSetting struct {
	Dev   Ethtool
	If    string
	Field string // "rx" or "tx"
}

// Name implements txn.Setting.
func (s RingSetting) Name() string { return s.If + "/ring/" + s.Field }

func (s RingSetting) field(r *Ring) *uint32 {
	if s.Field == "tx" {
		return &r.Tx
	}
	return &r.Rx
}

// Read implements txn.Setting.
func (s RingSetting) Read(ctx context.Context) (string, error) {
	r, err := s.Dev.Ring(ctx, s.If)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(uint64(*s.field(&r)), 10), nil
}

// Write implements txn.Setting.
func (s RingSetting) Write(ctx context.Context, v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("set %s: %w", s.Name(), err)
	}
	r, err := s.Dev.Ring(ctx, s.If)
	if err != nil {
		return err
	}
	*s.field(&r) = uint32(n)
	return s.Dev.SetRing(ctx, s.If, r)
}

// ChannelSetting is one channel count ("combined", "rx" or "tx") of an interface.
type ChannelSetting struct {
	Dev  Ethtool
	If   string
	Kind string
}

// Name implements txn.Setting.
func (s ChannelSetting) Name() string { return s.If + "/channels/" + s.Kind }

// Count returns the field of c that the setting names.
func (s ChannelSetting) Count(c *Channels) *uint32 {
	switch s.Kind {
	case "rx":
		return &c.Rx
	case "tx":
		return &c.Tx
	}
	return &c.Combined
}

// Max returns the device maximum of the setting's kind.
func (s ChannelSetting) Max(c Channels) uint32 {
	switch s.Kind {
	case "rx":
		return c.MaxRx
	case "tx":
		return c.MaxTx
	}
	return c.MaxCombined
}

// Read implements txn.Setting.
func (s ChannelSetting) Read(ctx context.Context) (string, error) {
	c, err := s.Dev.Channels(ctx, s.If)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(uint64(*s.Count(&c)), 10), nil
}

// Write implements txn.Setting.
func (s ChannelSetting) Write(ctx context.Context, v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("set %s: %w", s.Name(), err)
	}
	c, err := s.Dev.Channels(ctx, s.If)
	if err != nil {
		return err
	}
	*s.Count(&c) = uint32(n)
	return s.Dev.SetChannels(ctx, s.If, c)
}

// CheckName validates an interface name as a policy gives it: the kernel's limits, and
// nothing that would walk out of /sys/class/net.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("interface is required")
	case len(name) > 15:
		return fmt.Errorf("interface %q: longer than 15 characters", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("interface %q: not a valid interface name", name)
	}
	return nil
}

// Dir is an interface's sysfs directory below a host root.
func Dir(root, ifname string) string { return filepath.Join(root, "sys", "class", "net", ifname) }

// Exists checks that an interface exists below a host root.
func Exists(root, ifname string) error {
	if _, err := os.Stat(Dir(root, ifname)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("interface %s: %w", ifname, ErrNoDevice)
		}
		return fmt.Errorf("interface %s: %w", ifname, err)
	}
	return nil
}

// RxQueues lists an interface's rx queue numbers in order.
func RxQueues(root, ifname string) ([]int, error) {
	if err := Exists(root, ifname); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(Dir(root, ifname), "queues"))
	if err != nil {
		return nil, fmt.Errorf("list queues of %s: %w", ifname, err)
	}
	var qs []int
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "rx-"); ok {
			if q, err := strconv.Atoi(n); err == nil {
				qs = append(qs, q)
			}
		}
	}
	sort.Ints(qs)
	return qs, nil
}

// QueueFile is the path of a file of one rx queue ("rps_cpus", "rps_flow_cnt").
func QueueFile(root, ifname string, q int, file string) string {
	return filepath.Join(Dir(root, ifname), "queues", "rx-"+strconv.Itoa(q), file)
}

// OnlineCPUs reads the host's online CPUs.
func OnlineCPUs(root string) (nodefs.CPUMask, error) {
	fs, err := nodefs.New(root)
	if err != nil {
		return nil, err
	}
	cpus, err := fs.OnlineCPUs()
	if err != nil {
		return nil, err
	}
	return nodefs.MaskOf(cpus...), nil
}

// CanonMask is a txn.File Canon for hex CPU masks.
func CanonMask(s string) (string, error) {
	m, err := nodefs.ParseCPUMask(s)
	if err != nil {
		return "", err
	}
	return m.String(), nil
}

// Offline returns the CPUs of m that are not in online.
func Offline(m, online nodefs.CPUMask) nodefs.CPUMask {
	var out nodefs.CPUMask
	for _, c := range m.CPUs() {
		if !online.Has(c) {
			out = out.Set(c)
		}
	}
	return out
}

// Probe checks that an interface exists below the host root and reads one of its ethtool
// properties (dev.Ring, dev.Channels). A missing interface or a device without the
// capability refuses the action (txn.Refuse); other errors are failures.
func Probe[T any](ctx context.Context, root, ifname string, get func(context.Context, string) (T, error)) (T, error) {
	var zero T
	if err := Exists(root, ifname); err != nil {
		return zero, txn.Refuse("%w", err)
	}
	v, err := get(ctx, ifname)
	if errors.Is(err, ErrNotSupported) || errors.Is(err, ErrNoDevice) {
		return zero, txn.Refuse("%w", err)
	}
	return v, err
}

// QueueIRQs returns the queue IRQs of an interface, refusing (txn.Refuse) an unknown
// interface or one without queue IRQs of its own (a veth, a bridge).
func QueueIRQs(fs nodefs.FS, ifname string) ([]nodefs.QueueIRQ, error) {
	if err := Exists(fs.Root(), ifname); err != nil {
		return nil, txn.Refuse("%w", err)
	}
	irqs, err := fs.NICQueueIRQs(ifname, nil)
	if errors.Is(err, nodefs.ErrNoDevice) {
		return nil, txn.Refuse("interface %s has no queue IRQs: %w", ifname, err)
	}
	if err != nil {
		return nil, err
	}
	if len(irqs) == 0 {
		return nil, txn.Refuse("interface %s has no queue IRQs", ifname)
	}
	return irqs, nil
}

// AffinityKey names an IRQ's affinity in results.
func AffinityKey(irq int) string { return "irq/" + strconv.Itoa(irq) + "/smp_affinity" }

// Affinity is an IRQ's smp_affinity as a txn.Setting.
func Affinity(fs nodefs.FS, irq int) txn.File {
	return txn.File{Key: AffinityKey(irq), Path: fs.IRQAffinityPath(irq), Canon: CanonMask}
}
