package nodefs

import (
	"errors"
	"os"
	"slices"
	"testing"
)

func openFixture(t *testing.T) FS {
	t.Helper()
	fs, err := New("testdata/node8")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestNICQueueIRQs(t *testing.T) {
	fs := openFixture(t)
	ints, err := fs.Interrupts()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		iface   string
		want    []int
		wantErr error
	}{
		// mlx5: msi_irqs 24..33, the async vector 33 left out.
		{iface: "eth0", want: []int{24, 25, 26, 27, 28, 29, 30, 31, 32}},
		// virtio: msi_irqs sit on the PCI parent; the config vector is left out.
		{iface: "eth1", want: []int{41, 42}},
		// no MSI: matched by name, the misc vector left out.
		{iface: "eth2", want: []int{50}},
		{iface: "lo", wantErr: ErrNoDevice},
	}
	for _, tt := range tests {
		t.Run(tt.iface, func(t *testing.T) {
			got, err := fs.NICQueueIRQs(tt.iface, ints)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var nums []int
			for _, q := range got {
				nums = append(nums, q.IRQ)
			}
			if !slices.Equal(nums, tt.want) {
				t.Fatalf("irqs = %v, want %v", nums, tt.want)
			}
		})
	}
	if err := func() error { _, err := fs.NICQueueIRQs("lo", ints); return err }(); err.Error() != "interface has no device: lo" {
		t.Fatalf("lo error = %q", err)
	}
}

func TestInterrupts(t *testing.T) {
	ints, err := openFixture(t).Interrupts()
	if err != nil {
		t.Fatal(err)
	}
	if len(ints) != 16 {
		t.Fatalf("got %d numbered irqs, want 16", len(ints))
	}
	irq := ints[29]
	if irq.Name != "mlx5_comp5@pci:0000:00:02.0" || irq.Chip != "PCI-MSI-0000:00:02.0" {
		t.Fatalf("irq 29 = %+v", irq)
	}
	if want := []uint64{1, 0, 0, 0, 1234309153, 0, 0, 0}; !slices.Equal(irq.Counts, want) {
		t.Fatalf("irq 29 counts = %v, want %v", irq.Counts, want)
	}
}

func TestNICsAndCPUs(t *testing.T) {
	fs := openFixture(t)
	nics, err := fs.NICs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"eth0", "eth1", "eth2"}; !slices.Equal(nics, want) {
		t.Fatalf("nics = %v, want %v", nics, want)
	}
	cpus, err := fs.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7}; !slices.Equal(cpus, want) {
		t.Fatalf("cpus = %v", cpus)
	}
	if n, err := fs.DeviceNUMANode("eth0"); n != 0 || err != nil {
		t.Fatalf("numa eth0 = %d, %v", n, err)
	}
	if _, err := fs.DeviceNUMANode("eth1"); err == nil || err.Error() != "device has no numa node: eth1" {
		t.Fatalf("numa eth1 err = %v", err)
	}
	if _, err := fs.DeviceNUMANode("eth2"); !errors.Is(err, ErrNoNUMA) {
		t.Fatalf("numa eth2 err = %v", err)
	}
}

func TestIRQAffinity(t *testing.T) {
	fs := openFixture(t)
	m, err := fs.IRQAffinity(24)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.CPUs(), []int{5}) {
		t.Fatalf("irq 24 cpus = %v", m.CPUs())
	}
	e, err := fs.IRQEffectiveAffinity(25)
	if err != nil || !slices.Equal(e.CPUs(), []int{4}) {
		t.Fatalf("irq 25 effective = %v, %v", e, err)
	}
	if _, err := fs.IRQEffectiveAffinity(40); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("irq 40 effective err = %v, want not exist", err)
	}
	m, err = fs.IRQAffinity(40)
	if err != nil || !slices.Equal(m.CPUs(), []int{0, 1}) {
		t.Fatalf("irq 40 = %v, %v", m, err)
	}
	if got, want := fs.IRQAffinityPath(24), "testdata/node8/proc/irq/24/smp_affinity"; got != want {
		t.Fatalf("path = %q, want %q", got, want)
	}
}

// TestLiveHost reads this machine's own /proc and /sys.
func TestLiveHost(t *testing.T) {
	fs, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := fs.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) == 0 {
		t.Fatal("no online cpus")
	}
	ints, err := fs.Interrupts()
	if err != nil {
		t.Fatal(err)
	}
	nics, err := fs.NICs()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, nic := range nics {
		qs, err := fs.NICQueueIRQs(nic, ints)
		if err != nil {
			t.Fatalf("%s: %v", nic, err)
		}
		for _, q := range qs {
			m, err := fs.IRQAffinity(q.IRQ)
			if err != nil {
				t.Fatalf("irq %d: %v", q.IRQ, err)
			}
			if m.Count() == 0 {
				t.Fatalf("irq %d has an empty affinity", q.IRQ)
			}
			found++
		}
		t.Logf("%s: queue irqs %v", nic, qs)
	}
	if found == 0 {
		t.Log("no NIC queue IRQs on this machine (virtual NICs only): affinity reads not exercised live")
	}
}
