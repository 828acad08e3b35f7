package nodefs

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
)

func TestInterruptCounts(t *testing.T) {
	r := openFixture(t).NewReader()
	into := map[int][]uint64{24: nil, 29: nil, 999: nil}
	n, err := r.InterruptCounts(into)
	if err != nil || n != 2 {
		t.Fatalf("found %d, %v", n, err)
	}
	if want := []uint64{1, 0, 0, 0, 1234309153, 0, 0, 0}; !slices.Equal(into[29], want) {
		t.Fatalf("irq 29 = %v", into[29])
	}
	if into[999] != nil {
		t.Fatalf("missing irq filled: %v", into[999])
	}
	// Agrees with procfs on every numbered IRQ.
	ints, err := openFixture(t).Interrupts()
	if err != nil {
		t.Fatal(err)
	}
	all := map[int][]uint64{}
	for k := range ints {
		all[k] = nil
	}
	if _, err := r.InterruptCounts(all); err != nil {
		t.Fatal(err)
	}
	for k, irq := range ints {
		if !slices.Equal(all[k], irq.Counts) {
			t.Errorf("irq %d: hand parser %v, procfs %v", k, all[k], irq.Counts)
		}
	}
}

func TestParseInterruptCountsErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "unexpected proc file format: no header line",
		"nothing\n":                "unexpected proc file format: no CPU columns",
		"  CPU0 CPU1\n 5: 1 x y\n": "unexpected proc file format: irq 5 has 1 of 2 counts",
	} {
		_, err := ParseInterruptCounts([]byte(in), map[int][]uint64{5: nil})
		if err == nil || err.Error() != want {
			t.Errorf("ParseInterruptCounts(%q) err = %v, want %q", in, err, want)
		}
	}
}

func TestCPUTimes(t *testing.T) {
	b := []byte("cpu  10 0 20 30 0 0 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\ncpu3 1 1 1 1\nintr 5 6\n")
	got, err := ParseCPUTimes(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []CPUTime{{SoftIRQ: 7, Total: 36}, {}, {}, {Total: 4}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := ParseCPUTimes([]byte("cpu1 1 2\n"), nil); err == nil || err.Error() != "unexpected proc file format: cpu1 has 2 fields" {
		t.Fatalf("err = %v", err)
	}
	// The live /proc/stat parses, and lists every online CPU.
	fs, err := New("/")
	if err != nil {
		t.Fatal(err)
	}
	live, err := fs.NewReader().CPUTimes(nil)
	if err != nil {
		t.Fatal(err)
	}
	online, _ := fs.OnlineCPUs()
	for _, c := range online {
		if c >= len(live) || live[c].Total == 0 {
			t.Errorf("cpu %d missing from live /proc/stat read", c)
		}
	}
}

func FuzzParseInterruptCounts(f *testing.F) {
	b, err := os.ReadFile("testdata/node8/proc/interrupts")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("   CPU0\n 1: 5 x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		into := map[int][]uint64{1: nil, 24: nil, 29: nil}
		n, err := ParseInterruptCounts(b, into)
		if err != nil {
			return
		}
		filled := 0
		for _, v := range into {
			if v != nil {
				filled++
			}
		}
		if filled > n {
			t.Fatalf("found %d, filled %d", n, filled)
		}
	})
}

func FuzzParseCPUTimes(f *testing.F) {
	f.Add([]byte("cpu  10 0 20 30 0 0 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseCPUTimes(b, nil)
		if err != nil {
			return
		}
		for i, c := range got {
			if c.SoftIRQ > c.Total {
				t.Fatalf("cpu %d: softirq %d above total %d", i, c.SoftIRQ, c.Total)
			}
		}
	})
}

func TestParseSoftirqLine(t *testing.T) {
	b := []byte("                    CPU0       CPU1\n          HI:          0          0\n      NET_RX:      10230      10654\n")
	got, err := ParseSoftirqLine(b, "NET_RX", nil)
	if err != nil || !slices.Equal(got, []uint64{10230, 10654}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"HI: 1\n":       "unexpected proc file format: no NET_RX line",
		"NET_RX: 1 x\n": `unexpected proc file format: NET_RX: "x"`,
	} {
		if _, err := ParseSoftirqLine([]byte(in), "NET_RX", nil); err == nil || err.Error() != want {
			t.Errorf("ParseSoftirqLine(%q) err = %v, want %q", in, err, want)
		}
	}
}

func TestParseSoftnet(t *testing.T) {
	b := []byte("00000010 00000002 00000003 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000005\n" +
		"00004586 0000000a 0000000b 00000000 00000000 00000000 00000000 00000000 00000000\n")
	got, err := ParseSoftnet(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Softnet{{CPU: 5, Dropped: 2, TimeSqueezed: 3}, {CPU: 1, Dropped: 10, TimeSqueezed: 11}}; !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for in, want := range map[string]string{
		"1 2 3\n":        "unexpected proc file format: softnet line 0 has 3 columns",
		"1 2 zz 4 5 6\n": `unexpected proc file format: softnet field "zz"`,
	} {
		if _, err := ParseSoftnet([]byte(in), nil); err == nil || err.Error() != want {
			t.Errorf("ParseSoftnet(%q) err = %v, want %q", in, err, want)
		}
	}
	// Agrees with procfs on this machine's softnet_stat.
	fs, err := New("/")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := fs.NewReader().Softnet(nil)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := fs.Proc().NetSoftnetStat()
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != len(theirs) {
		t.Fatalf("%d lines, procfs %d", len(mine), len(theirs))
	}
	for i := range mine {
		if mine[i].CPU != int(theirs[i].Index) || mine[i].Dropped > theirs[i].Dropped || mine[i].TimeSqueezed > theirs[i].TimeSqueezed {
			t.Errorf("line %d: %+v, procfs %+v", i, mine[i], theirs[i])
		}
	}
}

func TestReaderUintAndMask(t *testing.T) {
	r := openFixture(t).NewReader()
	m, err := r.Mask("testdata/node8/proc/irq/24/smp_affinity", nil)
	if err != nil || !slices.Equal(m.CPUs(), []int{5}) {
		t.Fatalf("mask = %v, %v", m, err)
	}
	if _, err := r.Mask("testdata/node8/proc/irq/99/smp_affinity", nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing mask err = %v", err)
	}
	v, err := r.Uint("testdata/node8/sys/devices/pci0000:00/0000:00:02.0/numa_node")
	if err != nil || v != 0 {
		t.Fatalf("uint = %d, %v", v, err)
	}
	if _, err := r.Uint("testdata/node8/sys/devices/system/cpu/online"); err == nil || err.Error() != `read online: unexpected proc file format: "0-7"` {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseSoftnet(f *testing.F) {
	f.Add([]byte("00000010 00000002 00000003 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000005\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseSoftnet(b, nil)
		if err != nil {
			return
		}
		if len(got) > bytes.Count(b, []byte{'\n'})+1 {
			t.Fatalf("%d lines from %d newlines", len(got), bytes.Count(b, []byte{'\n'}))
		}
	})
}

func FuzzParseSoftirqLine(f *testing.F) {
	f.Add([]byte("   CPU0 CPU1\n NET_RX: 1 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseSoftirqLine(b, "NET_RX", nil)
		if err == nil && !bytes.Contains(b, []byte("NET_RX:")) {
			t.Fatalf("parsed %v without a NET_RX line", got)
		}
	})
}
