package psi

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Line is one line of a pressure file: the kernel's running averages (percent) and the
// total stall time in microseconds.
type Line struct {
	Avg10, Avg60, Avg300 float64
	Total                uint64
}

// Pressure is a pressure file. Full is nil where the kernel prints no full line (the
// node's cpu before Linux 5.13).
type Pressure struct {
	Some, Full *Line
}

// ErrBadPressure is wrapped by every pressure parse error.
var ErrBadPressure = errors.New("invalid pressure file")

// ParsePressure parses a cgroup v2 *.pressure file (the same format as
// /proc/pressure/*, which procfs reads for the node). Unknown lines are skipped, as the
// kernel may add some.
func ParsePressure(b []byte) (Pressure, error) {
	var p Pressure
	for len(b) > 0 {
		var text []byte
		text, b, _ = bytes.Cut(b, []byte{'\n'})
		kind, rest, _ := strings.Cut(string(text), " ")
		if kind != "some" && kind != "full" {
			continue
		}
		var l Line
		seen := 0
		for field := range strings.FieldsSeq(rest) {
			k, v, ok := strings.Cut(field, "=")
			if !ok {
				return Pressure{}, fmt.Errorf("%w: field %q", ErrBadPressure, field)
			}
			var err error
			switch k {
			case "avg10":
				l.Avg10, err = parsePct(v)
			case "avg60":
				l.Avg60, err = parsePct(v)
			case "avg300":
				l.Avg300, err = parsePct(v)
			case "total":
				l.Total, err = strconv.ParseUint(v, 10, 64)
			default:
				continue
			}
			if err != nil {
				return Pressure{}, fmt.Errorf("%w: %s=%q", ErrBadPressure, k, v)
			}
			seen++
		}
		if seen != 4 {
			return Pressure{}, fmt.Errorf("%w: %s line has %d of 4 fields", ErrBadPressure, kind, seen)
		}
		if kind == "some" {
			p.Some = &l
		} else {
			p.Full = &l
		}
	}
	if p.Some == nil {
		return Pressure{}, fmt.Errorf("%w: no some line", ErrBadPressure)
	}
	return p, nil
}

func parsePct(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 100 {
		return 0, ErrBadPressure
	}
	return f, nil
}

// CPUStat holds the CFS bandwidth counters of a cgroup v2 cpu.stat.
type CPUStat struct {
	UsageUsec, NrPeriods, NrThrottled, ThrottledUsec uint64
}

// ErrBadCPUStat is wrapped by every cpu.stat parse error.
var ErrBadCPUStat = errors.New("invalid cpu.stat")

// ParseCPUStat parses cgroup v2 cpu.stat ("usage_usec 123\nnr_throttled 4\n..."). A
// cgroup without the cpu controller has only the usage lines: its throttling reads 0.
func ParseCPUStat(b []byte) (CPUStat, error) {
	var s CPUStat
	for len(b) > 0 {
		var text []byte
		text, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := strings.Cut(string(text), " ")
		if !ok {
			if strings.TrimSpace(k) == "" {
				continue
			}
			return CPUStat{}, fmt.Errorf("%w: line %q", ErrBadCPUStat, k)
		}
		var dst *uint64
		switch k {
		case "usage_usec":
			dst = &s.UsageUsec
		case "nr_periods":
			dst = &s.NrPeriods
		case "nr_throttled":
			dst = &s.NrThrottled
		case "throttled_usec":
			dst = &s.ThrottledUsec
		default:
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return CPUStat{}, fmt.Errorf("%w: %s=%q", ErrBadCPUStat, k, v)
		}
		*dst = n
	}
	return s, nil
}
