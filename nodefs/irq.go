package nodefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// IRQ is one numbered line of /proc/interrupts.
type IRQ struct {
	Number int
	// Chip is the interrupt controller column ("PCI-MSIX-0000:00:03.0", "IR-PCI-MSI").
	Chip string
	// Name is the action name the driver registered ("virtio2-input.0", "eth0-TxRx-3",
	// "mlx5_comp4@pci:0000:00:02.0").
	Name string
	// Counts holds the interrupts served per CPU since boot, indexed by CPU column.
	Counts []uint64
}

// Interrupts maps IRQ numbers to their lines; named lines (NMI, LOC) are left out.
type Interrupts map[int]IRQ

// Interrupts reads the numbered IRQs of /proc/interrupts.
func (fs FS) Interrupts() (_ Interrupts, err error) {
	// procfs's parser indexes the columns the header promises without checking that a
	// line has them: a malformed file must be an error, not a crash of the agent
	// (found by FuzzInterrupts; the crashing inputs are seeds in testdata/fuzz).
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read interrupts: %w: %v", ErrBadProcFile, r)
		}
	}()
	// procfs reads /proc/interrupts through a Proc; pid 1 always exists on a host /proc.
	p, err := fs.proc.Proc(1)
	if err != nil {
		return nil, fmt.Errorf("read interrupts: %w", err)
	}
	raw, err := p.Interrupts()
	if err != nil {
		return nil, fmt.Errorf("read interrupts: %w", err)
	}
	out := make(Interrupts, len(raw))
	for k, v := range raw {
		n, err := strconv.Atoi(k)
		if err != nil {
			continue // NMI, LOC, ...
		}
		irq := IRQ{Number: n, Chip: v.Info, Name: actionName(v.Devices), Counts: make([]uint64, len(v.Values))}
		for i, s := range v.Values {
			if irq.Counts[i], err = strconv.ParseUint(s, 10, 64); err != nil {
				return nil, fmt.Errorf("read interrupts: irq %d cpu %d: %w", n, i, err)
			}
		}
		out[n] = irq
	}
	return out, nil
}

// actionName drops the hardware IRQ and trigger column ("1-edge", "11-fasteoi") newer kernels print
// before the action name.
func actionName(devices string) string {
	first, rest, ok := strings.Cut(devices, " ")
	if ok && first != "" && first[0] >= '0' && first[0] <= '9' && strings.Contains(first, "-") {
		return strings.TrimSpace(rest)
	}
	return devices
}

// controlIRQ matches the action names drivers give their non-queue vectors: virtio's
// config vector, mlx5's async and command vectors, Intel's misc and mailbox vectors.
func controlIRQ(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"config", "async", "ctrl", "-misc", "mbx", "-cmd", "pages", "-event"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// QueueIRQ is an IRQ that serves one of a NIC's queues.
type QueueIRQ struct {
	IRQ  int    `json:"irq"`
	Name string `json:"name"`
}

// NICQueueIRQs finds the IRQs of iface's queues: the device's msi_irqs less its control
// vectors, or, for a device without MSI, the IRQs whose action name starts with the
// interface name ("eth0-TxRx-0"). ints is a /proc/interrupts read; nil reads it.
// The result is sorted by IRQ number; ErrNoDevice means iface is virtual.
func (fs FS) NICQueueIRQs(iface string, ints Interrupts) ([]QueueIRQ, error) {
	if ints == nil {
		var err error
		if ints, err = fs.Interrupts(); err != nil {
			return nil, err
		}
	}
	dev, err := fs.pciDevice(iface)
	if err != nil {
		return nil, err
	}
	var out []QueueIRQ
	entries, err := os.ReadDir(filepath.Join(dev, "msi_irqs"))
	switch {
	case err == nil:
		for _, e := range entries {
			n, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			irq, ok := ints[n]
			if !ok || controlIRQ(irq.Name) {
				continue
			}
			out = append(out, QueueIRQ{IRQ: n, Name: irq.Name})
		}
	case errors.Is(err, os.ErrNotExist):
		for n, irq := range ints {
			if strings.HasPrefix(irq.Name, iface+"-") && !controlIRQ(irq.Name) {
				out = append(out, QueueIRQ{IRQ: n, Name: irq.Name})
			}
		}
	default:
		return nil, fmt.Errorf("read msi_irqs of %s: %w", iface, err)
	}
	slices.SortFunc(out, func(a, b QueueIRQ) int { return a.IRQ - b.IRQ })
	return out, nil
}

// IRQAffinityPath is /proc/irq/<irq>/smp_affinity below the host root; the executors
// write it.
func (fs FS) IRQAffinityPath(irq int) string {
	return fs.ProcPath("irq", strconv.Itoa(irq), "smp_affinity")
}

// IRQAffinity reads the CPUs irq may be delivered to (smp_affinity).
func (fs FS) IRQAffinity(irq int) (CPUMask, error) {
	return readMask(fs.IRQAffinityPath(irq), "smp_affinity")
}

// IRQEffectiveAffinity reads the CPUs irq is actually delivered to
// (effective_affinity). Kernels and interrupt chips without it return an error
// matching os.ErrNotExist.
func (fs FS) IRQEffectiveAffinity(irq int) (CPUMask, error) {
	return readMask(fs.IRQEffectiveAffinityPath(irq), "effective_affinity")
}

// IRQEffectiveAffinityPath is /proc/irq/<irq>/effective_affinity below the host root.
func (fs FS) IRQEffectiveAffinityPath(irq int) string {
	return fs.ProcPath("irq", strconv.Itoa(irq), "effective_affinity")
}

func readMask(path, what string) (CPUMask, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	m, err := ParseCPUMask(string(b))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return m, nil
}
