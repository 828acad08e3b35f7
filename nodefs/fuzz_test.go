package nodefs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzRoot is a host root with proc/1 (procfs reads /proc/interrupts through a Proc)
// whose proc/interrupts the fuzz targets rewrite.
func fuzzRoot(f *testing.F) (FS, string) {
	f.Helper()
	root := f.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc", "1"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "sys"), 0o755); err != nil {
		f.Fatal(err)
	}
	fs, err := New(root)
	if err != nil {
		f.Fatal(err)
	}
	return fs, root
}

// FuzzInterrupts fuzzes the /proc/interrupts read the IRQ discovery uses (procfs's parser,
// the action-name and control-vector rules): no panic, and every IRQ is filed under its
// number with the hardware IRQ column removed from its name.
func FuzzInterrupts(f *testing.F) {
	b, err := os.ReadFile("testdata/node8/proc/interrupts")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("           CPU0       CPU1\n  1:          9          0   IO-APIC   1-edge      i8042\nNMI:          0          0   Non-maskable interrupts\n"))
	f.Add([]byte("   CPU0\n 24: 5 PCI-MSIX-0000:00:03.0 0-edge virtio2-input.0\n 25: 1\n"))
	f.Add([]byte("   CPU0 CPU1\n 30: 18446744073709551615 1 x\n"))
	fs, root := fuzzRoot(f)
	path := filepath.Join(root, "proc", "interrupts")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ints, err := fs.Interrupts()
		if err != nil {
			return
		}
		for n, irq := range ints {
			if irq.Number != n {
				t.Fatalf("irq %d filed under %d", irq.Number, n)
			}
			if first, _, ok := strings.Cut(irq.Name, " "); ok && first != "" && first[0] >= '0' && first[0] <= '9' && strings.Contains(first, "-") {
				t.Fatalf("irq %d name %q keeps the hardware irq column", n, irq.Name)
			}
			_ = controlIRQ(irq.Name)
		}
	})
}

// FuzzParseMaskBytes checks the allocation-free mask parser that reuses a caller's
// storage (Reader.Mask) against a fresh parse: leftovers of an earlier, longer mask must
// never leak into the result.
func FuzzParseMaskBytes(f *testing.F) {
	for _, s := range []string{"10", "00000000,00000010", "ff,ffffffff", "", ",", "0", "ffffffff,ffffffff,ffffffff\n"} {
		f.Add([]byte(s), []byte("ffffffff,ffffffff,ffffffff,ffffffff"))
	}
	f.Fuzz(func(t *testing.T, b, prev []byte) {
		fresh, ferr := parseMaskBytes(b, nil)
		dirty, _ := parseMaskBytes(prev, nil)
		reused, rerr := parseMaskBytes(b, dirty[:0])
		if (ferr == nil) != (rerr == nil) {
			t.Fatalf("%q: fresh error %v, reused error %v", b, ferr, rerr)
		}
		if ferr == nil && (!fresh.Equal(reused) || fresh.String() != reused.String()) {
			t.Fatalf("%q: fresh %s, reusing %q's storage %s", b, fresh, prev, reused)
		}
	})
}

// FuzzUint fuzzes the one-number sysfs read (Reader.Uint): what it accepts is the
// decimal number strconv reads.
func FuzzUint(f *testing.F) {
	for _, s := range []string{"0\n", "18446744073\n", "  42  ", "", "-1", "1e3", "123456789012345678", "1234567890123456789"} {
		f.Add([]byte(s))
	}
	root := f.TempDir()
	path := filepath.Join(root, "counter")
	r := FS{}.NewReader()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := r.Uint(path)
		if err != nil {
			return
		}
		want, perr := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		if perr != nil || want != v {
			t.Fatalf("%q: Uint %d, strconv %d %v", b, v, want, perr)
		}
	})
}
