package nodefs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// The readers below parse /proc/interrupts and /proc/stat by hand for the detectors'
// every-scan path. procfs parses the same files (Interrupts uses it) but keeps every
// field of every line as a string and scans /proc/stat with fmt.Sscanf: on a 96-CPU
// node that alone is several times the agent's budget of one millisecond a scan. These
// read into reused buffers and parse only what is asked for.

// ErrBadProcFile is wrapped by the hand parsers' errors.
var ErrBadProcFile = errors.New("unexpected proc file format")

// Reader reads per-scan counters into reused buffers. It is not safe for concurrent use.
type Reader struct {
	fs  FS
	buf []byte
}

// NewReader returns a Reader over fs.
func (fs FS) NewReader() *Reader { return &Reader{fs: fs} }

// Read reads a whole file into the Reader's buffer; the bytes are valid until the next
// call.
func (r *Reader) Read(path string) ([]byte, error) {
	return r.read(path)
}

// read uses the raw syscalls: os.Open would also register each file with the
// runtime's poller (an extra, failing epoll_ctl) and a finalizer, which on the agent's
// hot path cost as much as the read itself.
func (r *Reader) read(path string) ([]byte, error) {
	var fd int
	var err error = syscall.EINTR
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	r.buf = r.buf[:0]
	for {
		if cap(r.buf)-len(r.buf) < 512 {
			r.buf = append(r.buf, make([]byte, 4096)...)[:len(r.buf)]
		}
		want := cap(r.buf) - len(r.buf)
		n, err := syscall.Read(fd, r.buf[len(r.buf):cap(r.buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		r.buf = r.buf[:len(r.buf)+n]
		// proc, sys and cgroup files fill a read until their end (seq_file, kernfs), as
		// regular files do: a short read is the end, which spares the read that would
		// return nothing.
		if n == 0 || n < want {
			return r.buf, nil
		}
	}
}

// Mask reads a CPU mask file (smp_affinity, effective_affinity) into m's storage.
func (r *Reader) Mask(path string, m CPUMask) (CPUMask, error) {
	b, err := r.read(path)
	if err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	m, err = parseMaskBytes(b, m[:0])
	if err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return m, nil
}

// parseMaskBytes is ParseCPUMask without allocating when m has room.
func parseMaskBytes(b []byte, m CPUMask) (CPUMask, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadMask)
	}
	groups := bytes.Count(b, []byte{','}) + 1
	if groups > MaxCPUs/32 {
		return nil, fmt.Errorf("%w: %d groups", ErrBadMask, groups)
	}
	for len(m) < groups {
		m = append(m, 0)
	}
	m = m[:groups]
	for i := range groups {
		g, rest, _ := bytes.Cut(b, []byte{','})
		b = rest
		if len(g) == 0 || len(g) > 8 {
			return nil, fmt.Errorf("%w: group %q", ErrBadMask, g)
		}
		var w uint32
		for _, c := range g {
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v = c - 'A' + 10
			default:
				return nil, fmt.Errorf("%w: group %q", ErrBadMask, g)
			}
			w = w<<4 | uint32(v)
		}
		m[groups-1-i] = w
	}
	return m, nil
}

// InterruptCounts reads the per-CPU counts of the IRQs that are keys of into, into
// their slices (grown as needed). It returns the number of keys found; a key left
// out went away.
func (r *Reader) InterruptCounts(into map[int][]uint64) (int, error) {
	b, err := r.read(r.fs.ProcPath("interrupts"))
	if err != nil {
		return 0, fmt.Errorf("read interrupts: %w", err)
	}
	n, err := ParseInterruptCounts(b, into)
	if err != nil {
		return 0, fmt.Errorf("read interrupts: %w", err)
	}
	return n, nil
}

// ParseInterruptCounts parses /proc/interrupts as InterruptCounts does.
func ParseInterruptCounts(b []byte, into map[int][]uint64) (int, error) {
	header, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return 0, fmt.Errorf("%w: no header line", ErrBadProcFile)
	}
	ncpu := bytes.Count(header, []byte("CPU"))
	if ncpu == 0 {
		return 0, fmt.Errorf("%w: no CPU columns", ErrBadProcFile)
	}
	found := 0
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line = bytes.TrimLeft(line, " ")
		irq, n := atoi(line)
		if n == 0 || n >= len(line) || line[n] != ':' {
			continue // NMI, LOC, ... or an empty line
		}
		dst, want := into[irq]
		if !want {
			continue
		}
		if cap(dst) < ncpu {
			dst = make([]uint64, ncpu)
		}
		dst = dst[:ncpu]
		p := line[n+1:]
		for i := range ncpu {
			p = bytes.TrimLeft(p, " ")
			v, m := atoi(p)
			if m == 0 {
				return 0, fmt.Errorf("%w: irq %d has %d of %d counts", ErrBadProcFile, irq, i, ncpu)
			}
			dst[i] = uint64(v)
			p = p[m:]
		}
		into[irq] = dst
		found++
	}
	return found, nil
}

// atoi parses the leading decimal digits of b; n is how many bytes it used (0: none).
// It reads at most 18 digits, so it never overflows.
func atoi(b []byte) (v, n int) {
	for n < len(b) && n < 18 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int(b[n]-'0')
		n++
	}
	return v, n
}

// CPUTime is one CPU's time from /proc/stat, in USER_HZ ticks.
type CPUTime struct {
	SoftIRQ uint64
	// Total sums user, nice, system, idle, iowait, irq, softirq and steal.
	Total uint64
}

// CPUTimes reads the per-CPU times of /proc/stat into into, indexed by CPU number
// (grown as needed); CPUs not listed (offline) stay zero.
func (r *Reader) CPUTimes(into []CPUTime) ([]CPUTime, error) {
	b, err := r.read(r.fs.ProcPath("stat"))
	if err != nil {
		return into, fmt.Errorf("read stat: %w", err)
	}
	out, err := ParseCPUTimes(b, into)
	if err != nil {
		return into, fmt.Errorf("read stat: %w", err)
	}
	return out, nil
}

// ParseCPUTimes parses /proc/stat as CPUTimes does.
func ParseCPUTimes(b []byte, into []CPUTime) ([]CPUTime, error) {
	for i := range into {
		into[i] = CPUTime{}
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) < 4 || string(line[:3]) != "cpu" || line[3] < '0' || line[3] > '9' {
			continue // the "cpu " total line, intr, ctxt, ...
		}
		cpu, n := atoi(line[3:])
		if cpu >= MaxCPUs {
			return into, fmt.Errorf("%w: cpu%d", ErrBadProcFile, cpu)
		}
		p := line[3+n:]
		var t CPUTime
		// user nice system idle iowait irq softirq steal [guest guest_nice]
		for i := range 8 {
			p = bytes.TrimLeft(p, " ")
			v, m := atoi(p)
			if m == 0 {
				if i < 4 {
					return into, fmt.Errorf("%w: cpu%d has %d fields", ErrBadProcFile, cpu, i)
				}
				break // old kernels stop early
			}
			p = p[m:]
			t.Total += uint64(v)
			if i == 6 {
				t.SoftIRQ = uint64(v)
			}
		}
		for len(into) <= cpu {
			into = append(into, CPUTime{})
		}
		into[cpu] = t
	}
	return into, nil
}

// Uint reads a one-number file (a sysfs counter).
func (r *Reader) Uint(path string) (uint64, error) {
	b, err := r.read(path)
	if err != nil {
		return 0, err
	}
	b = bytes.TrimSpace(b)
	v, n := atoi(b)
	if n == 0 || n != len(b) {
		return 0, fmt.Errorf("read %s: %w: %q", filepath.Base(path), ErrBadProcFile, b)
	}
	return uint64(v), nil
}

// NetRX reads the NET_RX line of /proc/softirqs into into, by column.
func (r *Reader) NetRX(into []uint64) ([]uint64, error) {
	b, err := r.read(r.fs.ProcPath("softirqs"))
	if err != nil {
		return into, fmt.Errorf("read softirqs: %w", err)
	}
	out, err := ParseSoftirqLine(b, "NET_RX", into)
	if err != nil {
		return into, fmt.Errorf("read softirqs: %w", err)
	}
	return out, nil
}

// ParseSoftirqLine parses one line ("NET_RX") of /proc/softirqs into into, by column.
func ParseSoftirqLine(b []byte, name string, into []uint64) ([]uint64, error) {
	into = into[:0]
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		line = bytes.TrimLeft(line, " ")
		label, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok || string(label) != name {
			continue
		}
		for {
			rest = bytes.TrimLeft(rest, " ")
			if len(rest) == 0 {
				return into, nil
			}
			v, n := atoi(rest)
			if n == 0 {
				return into, fmt.Errorf("%w: %s: %q", ErrBadProcFile, name, rest)
			}
			into = append(into, uint64(v))
			rest = rest[n:]
		}
	}
	return into, fmt.Errorf("%w: no %s line", ErrBadProcFile, name)
}

// Softnet is one CPU's line of /proc/net/softnet_stat. The counters are 32-bit and wrap.
type Softnet struct {
	CPU          int
	Dropped      uint32
	TimeSqueezed uint32
}

// Softnet reads /proc/net/softnet_stat into into.
func (r *Reader) Softnet(into []Softnet) ([]Softnet, error) {
	b, err := r.read(r.fs.ProcPath("net", "softnet_stat"))
	if err != nil {
		return into, fmt.Errorf("read softnet_stat: %w", err)
	}
	out, err := ParseSoftnet(b, into)
	if err != nil {
		return into, fmt.Errorf("read softnet_stat: %w", err)
	}
	return out, nil
}

// ParseSoftnet parses /proc/net/softnet_stat: hex columns processed, dropped,
// time_squeeze, ..., and since Linux 5.14 the CPU number in column 13; before, a
// line's position is its CPU (offline CPUs are skipped, so that is a guess).
func ParseSoftnet(b []byte, into []Softnet) ([]Softnet, error) {
	into = into[:0]
	var cols [13]uint32
	for i := 0; len(b) > 0; i++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		n := 0
		for p := line; n < len(cols); n++ {
			p = bytes.TrimLeft(p, " ")
			if len(p) == 0 {
				break
			}
			f, rest, _ := bytes.Cut(p, []byte{' '})
			p = rest
			if len(f) > 8 {
				return into, fmt.Errorf("%w: softnet field %q", ErrBadProcFile, f)
			}
			var w uint32
			for _, c := range f {
				switch {
				case c >= '0' && c <= '9':
					w = w<<4 | uint32(c-'0')
				case c >= 'a' && c <= 'f':
					w = w<<4 | uint32(c-'a'+10)
				default:
					return into, fmt.Errorf("%w: softnet field %q", ErrBadProcFile, f)
				}
			}
			cols[n] = w
		}
		if n == 0 {
			continue
		}
		if n < 9 {
			return into, fmt.Errorf("%w: softnet line %d has %d columns", ErrBadProcFile, i, n)
		}
		s := Softnet{CPU: i, Dropped: cols[1], TimeSqueezed: cols[2]}
		if n >= 13 {
			s.CPU = int(cols[12])
		}
		into = append(into, s)
	}
	return into, nil
}
