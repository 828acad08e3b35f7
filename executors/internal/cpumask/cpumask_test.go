package cpumask_test

import (
	"errors"
	"testing"

	"github.com/remedyhq/remedy/executors/internal/cpumask"
)

func TestParseHex(t *testing.T) {
	tests := []struct {
		in, str, list, err string
	}{
		{in: "3", str: "3", list: "0-1"},
		{in: "0x0f\n", str: "f", list: "0-3"},
		{in: "00000000,00000003", str: "3", list: "0-1"},
		{in: "1,00000000", str: "1,00000000", list: "32"},
		{in: "80,00000001", str: "80,00000001", list: "0,39"},
		{in: "0", str: "0", list: ""},
		{in: "", err: `malformed cpu mask "": empty`},
		{in: "xyz", err: `malformed cpu mask "xyz": 'z' is not a hex digit`},
		{in: "1,3", err: `malformed cpu mask "1,3": groups are 8 hex digits separated by commas`},
		{in: "ff,", err: `malformed cpu mask "ff,": groups are 8 hex digits separated by commas`},
		{in: "-1", err: `malformed cpu mask "-1": '-' is not a hex digit`},
	}
	for _, tc := range tests {
		m, err := cpumask.ParseHex(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !errors.Is(err, cpumask.ErrMalformed) {
				t.Errorf("ParseHex(%q) = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || m.String() != tc.str || m.List() != tc.list {
			t.Errorf("ParseHex(%q) = %s (%s), %v; want %s (%s)", tc.in, m, m.List(), err, tc.str, tc.list)
		}
	}
}

func TestParseList(t *testing.T) {
	m, err := cpumask.ParseList("0-3,8\n")
	if err != nil || m.String() != "10f" || m.Count() != 5 {
		t.Fatalf("got %s %v", m, err)
	}
	if _, err := cpumask.ParseList("3-1"); err == nil || err.Error() != `malformed cpu mask "3-1": bad range "3-1"` {
		t.Errorf("got %v", err)
	}
	if got := cpumask.Of(0, 1, 2, 5).Minus(cpumask.First(2)).List(); got != "2,5" {
		t.Errorf("Minus: %s", got)
	}
}

func FuzzParseHex(f *testing.F) {
	for _, s := range []string{"3", "ff,ffffffff", "0x1", "", ",", "1,00000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := cpumask.ParseHex(s)
		if err != nil {
			return
		}
		back, err := cpumask.ParseHex(m.String())
		if err != nil || back.String() != m.String() {
			t.Fatalf("%q -> %s -> %s, %v", s, m, back, err)
		}
	})
}
