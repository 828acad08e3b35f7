package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remedyhq/remedy/wire/signal"
)

// BenchmarkSubmitDurable measures durable intake: every Submit returns after an fsync'd
// SQLite commit, with 16 concurrent submitters sharing commits (group commit).
func BenchmarkSubmitDurable(b *testing.B) {
	v := newEnvB(b)
	defer v.store.Close()
	var n atomic.Int64
	b.SetParallelism(8) // 8 x GOMAXPROCS(2) = 16 concurrent webhooks
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			s := sig("psi", fmt.Sprintf("node-%d", i%500))
			s.Fingerprint = fmt.Sprint(i)
			if err := v.e.Submit(context.Background(), []signal.Signal{s}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "alerts/s")
}

// BenchmarkDecide is one full decision: facts, history query, policy evaluation, the
// catalogue check and the durable record of decision and action.
func BenchmarkDecide(b *testing.B) {
	v := newEnvB(b)
	defer v.store.Close()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s := sig("packet_drops", fmt.Sprintf("node-%d", i%500))
		s.Fingerprint = fmt.Sprint(i)
		if err := v.e.Handle(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}
