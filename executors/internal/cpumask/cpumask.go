// Package cpumask parses and formats the kernel's CPU masks as the node executors write
// them: the comma-grouped hex of rps_cpus and smp_affinity ("ff,ffffffff") and the CPU
// lists of sysfs ("0-3,8").
//
// nodefs reads masks for the detectors; this package is the executors' write side, where a
// mask given in a policy must be rejected with a clear message before anything is written.
package cpumask

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// MaxCPUs bounds the masks accepted from policies (the kernel's NR_CPUS on large distros).
const MaxCPUs = 8192

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed cpu mask")

// Mask is a set of CPUs, bit i of word i/64 standing for CPU i.
type Mask struct{ words []uint64 }

// Of returns the mask holding the given CPUs.
func Of(cpus ...int) Mask {
	var m Mask
	for _, c := range cpus {
		m.Set(c)
	}
	return m
}

// First returns the mask of CPUs 0..n-1.
func First(n int) Mask {
	var m Mask
	for c := range n {
		m.Set(c)
	}
	return m
}

// Set adds a CPU.
func (m *Mask) Set(cpu int) {
	for len(m.words) <= cpu/64 {
		m.words = append(m.words, 0)
	}
	m.words[cpu/64] |= 1 << (cpu % 64)
}

// Has reports whether the mask holds a CPU.
func (m Mask) Has(cpu int) bool {
	return cpu >= 0 && cpu/64 < len(m.words) && m.words[cpu/64]&(1<<(cpu%64)) != 0
}

// Count is the number of CPUs in the mask.
func (m Mask) Count() int {
	n := 0
	for _, w := range m.words {
		n += bits.OnesCount64(w)
	}
	return n
}

// CPUs lists the mask's CPUs in ascending order.
func (m Mask) CPUs() []int {
	var out []int
	for i, w := range m.words {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, i*64+b)
			w &^= 1 << b
		}
	}
	return out
}

// Empty reports whether no CPU is set.
func (m Mask) Empty() bool { return m.Count() == 0 }

// Minus returns the CPUs of m that are not in o.
func (m Mask) Minus(o Mask) Mask {
	var out Mask
	for _, c := range m.CPUs() {
		if !o.Has(c) {
			out.Set(c)
		}
	}
	return out
}

// String formats the mask the way the kernel prints it, without leading zero groups:
// 32-bit hex groups separated by commas ("3", "1,00000000"). An empty mask is "0".
func (m Mask) String() string {
	var groups []uint32
	for _, w := range m.words {
		groups = append(groups, uint32(w), uint32(w>>32))
	}
	for len(groups) > 1 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	if len(groups) == 0 {
		return "0"
	}
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(groups[len(groups)-1]), 16))
	for i := len(groups) - 2; i >= 0; i-- {
		fmt.Fprintf(&b, ",%08x", groups[i])
	}
	return b.String()
}

// List formats the mask as a CPU list ("0-3,8").
func (m Mask) List() string {
	cpus := m.CPUs()
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// ParseHex parses a kernel hex mask: hex digits, optionally grouped by commas into 32-bit
// groups, with an optional 0x prefix ("0f", "ff,ffffffff").
func ParseHex(s string) (Mask, error) {
	s = strings.TrimSpace(s)
	orig := s
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if s == "" {
		return Mask{}, fmt.Errorf("%w %q: empty", ErrMalformed, orig)
	}
	groups := strings.Split(s, ",")
	var m Mask
	cpu := 0
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		if g == "" || len(g) > 8 || (i > 0 && len(g) != 8) {
			return Mask{}, fmt.Errorf("%w %q: groups are 8 hex digits separated by commas", ErrMalformed, orig)
		}
		for j := len(g) - 1; j >= 0; j-- {
			d, err := strconv.ParseUint(g[j:j+1], 16, 8)
			if err != nil {
				return Mask{}, fmt.Errorf("%w %q: %q is not a hex digit", ErrMalformed, orig, g[j])
			}
			for b := range 4 {
				if d&(1<<b) == 0 {
					continue
				}
				if cpu+b >= MaxCPUs {
					return Mask{}, fmt.Errorf("%w %q: more than %d CPUs", ErrMalformed, orig, MaxCPUs)
				}
				m.Set(cpu + b)
			}
			cpu += 4
		}
	}
	return m, nil
}

// ParseList parses a CPU list ("0-3,8"); an empty or blank list is an empty mask.
func ParseList(s string) (Mask, error) {
	var m Mask
	s = strings.TrimSpace(s)
	if s == "" {
		return m, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a >= MaxCPUs {
			return Mask{}, fmt.Errorf("%w %q: bad cpu %q", ErrMalformed, s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b >= MaxCPUs {
				return Mask{}, fmt.Errorf("%w %q: bad range %q", ErrMalformed, s, part)
			}
		}
		for c := a; c <= b; c++ {
			m.Set(c)
		}
	}
	return m, nil
}
