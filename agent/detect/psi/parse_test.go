package psi

import (
	"fmt"
	"testing"
)

func TestParsePressure(t *testing.T) {
	tests := []struct {
		name, in string
		some     Line
		full     *Line
		wantErr  string
	}{
		{name: "cpu before 5.13", in: "some avg10=35.76 avg60=10.44 avg300=4.66 total=21584659\n",
			some: Line{35.76, 10.44, 4.66, 21584659}},
		{name: "some and full", in: "some avg10=1.00 avg60=2.00 avg300=3.00 total=4\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=9\n",
			some: Line{1, 2, 3, 4}, full: &Line{Avg10: 0.5, Total: 9}},
		{name: "future line skipped", in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nextra x=1\n", some: Line{}},
		{name: "empty", in: "", wantErr: "invalid pressure file: no some line"},
		{name: "missing total", in: "some avg10=0.00 avg60=0.00 avg300=0.00\n", wantErr: "invalid pressure file: some line has 3 of 4 fields"},
		{name: "bad number", in: "some avg10=x avg60=0.00 avg300=0.00 total=1\n", wantErr: `invalid pressure file: avg10="x"`},
		{name: "over 100", in: "some avg10=101 avg60=0.00 avg300=0.00 total=1\n", wantErr: `invalid pressure file: avg10="101"`},
		{name: "no equals", in: "full avg10\n", wantErr: `invalid pressure file: field "avg10"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePressure([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *p.Some != tt.some {
				t.Errorf("some = %+v, want %+v", *p.Some, tt.some)
			}
			if (p.Full == nil) != (tt.full == nil) || (p.Full != nil && *p.Full != *tt.full) {
				t.Errorf("full = %+v, want %+v", p.Full, tt.full)
			}
		})
	}
}

func TestParseCPUStat(t *testing.T) {
	s, err := ParseCPUStat([]byte("usage_usec 900\nuser_usec 800\nnr_periods 10\nnr_throttled 8\nthrottled_usec 280000\nnr_bursts 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s != (CPUStat{UsageUsec: 900, NrPeriods: 10, NrThrottled: 8, ThrottledUsec: 280000}) {
		t.Fatalf("stat = %+v", s)
	}
	for in, want := range map[string]string{
		"nr_throttled x\n": `invalid cpu.stat: nr_throttled="x"`,
		"garbage\n":        `invalid cpu.stat: line "garbage"`,
	} {
		if _, err := ParseCPUStat([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("ParseCPUStat(%q) err = %v, want %q", in, err, want)
		}
	}
}

func FuzzParsePressure(f *testing.F) {
	f.Add([]byte("some avg10=1.00 avg60=2.00 avg300=3.00 total=4\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=9\n"))
	f.Add([]byte("some avg10=0 avg60=0 avg300=0 total=0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePressure(b)
		if err != nil {
			return
		}
		if p.Some == nil || p.Some.Avg10 < 0 || p.Some.Avg10 > 100 {
			t.Fatalf("accepted %q as %+v", b, p.Some)
		}
		line := func(kind string, l *Line) string {
			return fmt.Sprintf("%s avg10=%g avg60=%g avg300=%g total=%d\n", kind, l.Avg10, l.Avg60, l.Avg300, l.Total)
		}
		out := line("some", p.Some)
		if p.Full != nil {
			out += line("full", p.Full)
		}
		back, err := ParsePressure([]byte(out))
		if err != nil || *back.Some != *p.Some || (p.Full != nil && *back.Full != *p.Full) {
			t.Fatalf("round trip of %q: %+v, %v", b, back, err)
		}
	})
}

func FuzzParseCPUStat(f *testing.F) {
	f.Add([]byte("usage_usec 900\nnr_periods 10\nnr_throttled 8\nthrottled_usec 280000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCPUStat(b)
		if err != nil {
			return
		}
		// What is accepted prints back to a file that parses to the same counters.
		out := fmt.Sprintf("usage_usec %d\nnr_periods %d\nnr_throttled %d\nthrottled_usec %d\n", s.UsageUsec, s.NrPeriods, s.NrThrottled, s.ThrottledUsec)
		back, err := ParseCPUStat([]byte(out))
		if err != nil || back != s {
			t.Fatalf("round trip of %q: %+v, %v", b, back, err)
		}
	})
}
