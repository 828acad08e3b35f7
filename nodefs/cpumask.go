package nodefs

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// MaxCPUs bounds the CPU numbers the parsers accept, so a corrupt file cannot make them
// allocate without limit. It matches the kernel's largest NR_CPUS.
const MaxCPUs = 8192

// Sentinel errors of the mask and list parsers.
var (
	ErrBadMask    = errors.New("invalid cpu mask")
	ErrBadCPUList = errors.New("invalid cpu list")
)

// CPUMask is a set of CPUs. Word i holds CPUs 32*i to 32*i+31, the kernel's comma-grouped
// hex format read from right to left.
type CPUMask []uint32

// MaskOf returns the mask holding cpus.
func MaskOf(cpus ...int) CPUMask {
	var m CPUMask
	for _, c := range cpus {
		m = m.Set(c)
	}
	return m
}

// Set returns m with cpu added; it grows m as needed. Negative cpus are ignored.
func (m CPUMask) Set(cpu int) CPUMask {
	if cpu < 0 {
		return m
	}
	w := cpu / 32
	for len(m) <= w {
		m = append(m, 0)
	}
	m[w] |= 1 << (cpu % 32)
	return m
}

// Has reports whether cpu is in m.
func (m CPUMask) Has(cpu int) bool {
	if cpu < 0 || cpu/32 >= len(m) {
		return false
	}
	return m[cpu/32]&(1<<(cpu%32)) != 0
}

// Count is the number of CPUs in m.
func (m CPUMask) Count() int {
	n := 0
	for _, w := range m {
		n += bits.OnesCount32(w)
	}
	return n
}

// CPUs lists the CPUs in m in ascending order.
func (m CPUMask) CPUs() []int {
	out := make([]int, 0, m.Count())
	for i, w := range m {
		for w != 0 {
			b := bits.TrailingZeros32(w)
			out = append(out, i*32+b)
			w &^= 1 << b
		}
	}
	return out
}

// Equal reports whether m and o hold the same CPUs.
func (m CPUMask) Equal(o CPUMask) bool {
	n := max(len(m), len(o))
	for i := range n {
		var a, b uint32
		if i < len(m) {
			a = m[i]
		}
		if i < len(o) {
			b = o[i]
		}
		if a != b {
			return false
		}
	}
	return true
}

// highest is the highest CPU in m, or -1.
func (m CPUMask) highest() int {
	for i := len(m) - 1; i >= 0; i-- {
		if m[i] != 0 {
			return i*32 + bits.Len32(m[i]) - 1
		}
	}
	return -1
}

// String formats m in the kernel's format with the fewest digits that hold its highest
// CPU ("10", "00000001,00000000"); the empty mask is "0".
func (m CPUMask) String() string {
	return m.Format(1)
}

// Format formats m as the kernel prints a mask of ncpu bits: comma-separated groups of
// eight hex digits, the leading group only as wide as ncpu needs, so that on an 8-CPU
// node CPU 4 is "10" and on a 96-CPU node it is "00000000,00000000,00000010". The
// kernel accepts this format back in smp_affinity.
func (m CPUMask) Format(ncpu int) string {
	if ncpu < 1 {
		ncpu = 1
	}
	if hb := m.highest() + 1; hb > ncpu {
		ncpu = hb // never drop set CPUs
	}
	groups := (ncpu + 31) / 32
	var b strings.Builder
	b.Grow(groups * 9)
	for g := groups - 1; g >= 0; g-- {
		var w uint32
		if g < len(m) {
			w = m[g]
		}
		digits := 8
		if g == groups-1 {
			digits = (ncpu - g*32 + 3) / 4
		}
		s := strconv.FormatUint(uint64(w), 16)
		for i := len(s); i < digits; i++ {
			b.WriteByte('0')
		}
		b.WriteString(s)
		if g > 0 {
			b.WriteByte(',')
		}
	}
	return b.String()
}

// ParseCPUMask parses the kernel's mask format ("00000000,00000010", "ff", "3\n").
func ParseCPUMask(s string) (CPUMask, error) {
	return parseMaskBytes([]byte(s), nil)
}

// ParseCPUList parses the kernel's list format ("0-3,8,10-11", "" for none) into
// ascending CPU numbers.
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var m CPUMask
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", ErrBadCPUList, part)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil || b < a {
				return nil, fmt.Errorf("%w: %q", ErrBadCPUList, part)
			}
		}
		for c := a; c <= b; c++ {
			m = m.Set(c)
		}
	}
	return m.CPUs(), nil
}

func parseCPU(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= MaxCPUs || s[0] == '+' {
		return 0, ErrBadCPUList
	}
	return n, nil
}

// FormatCPUList formats ascending CPUs in the kernel's list format ("0-3,8").
func FormatCPUList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}
