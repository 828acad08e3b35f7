package incident

import (
	"fmt"
	"time"
)

// FormatSeconds writes a fix time as the page and `remedy report` show it: rounded to
// the millisecond, "-" for none.
func FormatSeconds(s Seconds) string {
	if s == 0 {
		return "-"
	}
	return s.Duration().Round(time.Millisecond).String()
}

// FormatRatio writes n of of as a whole percentage, "-" when of is 0.
func FormatRatio(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", float64(n)*100/float64(of))
}
