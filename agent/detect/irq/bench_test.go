package irq

import (
	"context"
	"testing"
	"time"

	"github.com/remedyhq/remedy/agent/detect/detecttest"
	"github.com/remedyhq/remedy/nodefs"
)

// BenchmarkScan96 is one IRQ scan of the 96-CPU fixture (32 queue IRQs), reading the
// affinities every scan (the worst case: an affinity change seen in the interrupts)
// and at the default cadence.
func BenchmarkScan96(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every int
	}{{"affinity-every-scan", 1}, {"default", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			n, d := detecttest.Replay(b, "node96", func(fs nodefs.FS, now func() time.Time) (*Detector, error) {
				return New(fs, Options{AffinityEvery: bc.every, Now: now})
			})
			for n.Next(b) {
			}
			if _, err := d.Scan(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			c0 := detecttest.CPUTime(b)
			for b.Loop() {
				if _, err := d.Scan(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			detecttest.ReportCPU(b, c0)
		})
	}
}
