package nodefs

import (
	"slices"
	"testing"
)

func TestParseCPUMask(t *testing.T) {
	tests := []struct {
		in      string
		cpus    []int
		wantErr string
	}{
		{in: "10\n", cpus: []int{4}},
		{in: "20", cpus: []int{5}},
		{in: "00000000,00000010", cpus: []int{4}},
		{in: "00000001,00000000", cpus: []int{32}},
		{in: "ff", cpus: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{in: "80000000,00000000,00000001", cpus: []int{0, 95}},
		{in: "0", cpus: []int{}},
		{in: "", wantErr: "invalid cpu mask: empty"},
		{in: "1,,2", wantErr: `invalid cpu mask: group ""`},
		{in: "123456789", wantErr: `invalid cpu mask: group "123456789"`},
		{in: "xz", wantErr: `invalid cpu mask: group "xz"`},
	}
	for _, tt := range tests {
		m, err := ParseCPUMask(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseCPUMask(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCPUMask(%q): %v", tt.in, err)
			continue
		}
		if got := m.CPUs(); !slices.Equal(got, tt.cpus) {
			t.Errorf("ParseCPUMask(%q) = %v, want %v", tt.in, got, tt.cpus)
		}
	}
}

func TestFormatCPUMask(t *testing.T) {
	tests := []struct {
		cpus []int
		ncpu int
		want string
	}{
		{cpus: []int{4}, ncpu: 8, want: "10"},
		{cpus: []int{5}, ncpu: 8, want: "20"},
		{cpus: []int{0, 1}, ncpu: 2, want: "3"},
		{cpus: []int{4}, ncpu: 64, want: "00000000,00000010"},
		{cpus: []int{4}, ncpu: 96, want: "00000000,00000000,00000010"},
		{cpus: []int{95}, ncpu: 96, want: "80000000,00000000,00000000"},
		{cpus: []int{40}, ncpu: 8, want: "100,00000000"}, // set CPUs are never dropped
		{cpus: nil, ncpu: 8, want: "00"},
	}
	for _, tt := range tests {
		if got := MaskOf(tt.cpus...).Format(tt.ncpu); got != tt.want {
			t.Errorf("MaskOf(%v).Format(%d) = %q, want %q", tt.cpus, tt.ncpu, got, tt.want)
		}
	}
	if got := MaskOf(4, 33).String(); got != "2,00000010" {
		t.Errorf("String = %q", got)
	}
	if got := MaskOf().String(); got != "0" {
		t.Errorf("empty String = %q", got)
	}
}

func TestMaskOps(t *testing.T) {
	m := MaskOf(1, 70)
	if !m.Has(70) || m.Has(2) || m.Has(-1) || m.Has(500) || m.Count() != 2 {
		t.Fatalf("mask ops wrong on %v", m)
	}
	if !m.Equal(CPUMask{2, 0, 64, 0}) || m.Equal(MaskOf(1)) {
		t.Fatal("Equal wrong")
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "0-7\n", want: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{in: "0,2-3,8", want: []int{0, 2, 3, 8}},
		{in: "", want: nil},
		{in: "3-1", wantErr: `invalid cpu list: "3-1"`},
		{in: "a", wantErr: `invalid cpu list: "a"`},
		{in: "0-99999", wantErr: `invalid cpu list: "0-99999"`},
		{in: "+1", wantErr: `invalid cpu list: "+1"`},
	}
	for _, tt := range tests {
		got, err := ParseCPUList(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseCPUList(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if tt.want != nil {
			if back := FormatCPUList(got); back != "0-7" && back != "0,2-3,8" {
				t.Errorf("FormatCPUList(%v) = %q", got, back)
			}
		}
	}
}

func FuzzParseCPUMask(f *testing.F) {
	for _, s := range []string{"10", "00000000,00000010", "ff,ffffffff", "", ",", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseCPUMask(s)
		if err != nil {
			return
		}
		// Round trip: what we format, we parse back to the same set.
		back, err := ParseCPUMask(m.String())
		if err != nil {
			t.Fatalf("reparse %q (from %q): %v", m.String(), s, err)
		}
		if !back.Equal(m) {
			t.Fatalf("round trip %q -> %q changed the set", s, m.String())
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0-7", "0,2-3,8", "", "1-", "-1", "7-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s)
		if err != nil {
			return
		}
		back, err := ParseCPUList(FormatCPUList(cpus))
		if err != nil || !slices.Equal(back, cpus) {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	})
}
