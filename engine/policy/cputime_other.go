//go:build !unix

package policy

import "time"

// processCPU stands in for the process's CPU time where it cannot be read: wall-clock
// time, so that deadlines are wall-clock deadlines.
func processCPU() time.Duration { return time.Duration(time.Now().UnixNano()) }
