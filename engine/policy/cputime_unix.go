//go:build unix

package policy

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return time.Duration(time.Now().UnixNano()) // as if never starved: wall-clock deadlines
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
