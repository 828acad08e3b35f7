package audittest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// BenchmarkAppend measures durable appends (each call returns after its commit is on
// disk) from 1 and 16 concurrent writers, one event and ten events per call; open
// returns a store over an empty database.
func BenchmarkAppend(b *testing.B, open func(b *testing.B) audit.Log) {
	for _, bc := range []struct {
		writers, perCall int
	}{{1, 1}, {16, 1}, {16, 10}} {
		b.Run(fmt.Sprintf("writers=%d/events=%d", bc.writers, bc.perCall), func(b *testing.B) {
			st := open(b)
			defer st.Close()
			var n atomic.Int64
			b.SetParallelism((bc.writers + 1) / 2) // GOMAXPROCS is 2 on the reference machine
			if bc.writers == 1 {
				b.SetParallelism(1)
			}
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				events := make([]audit.Event, bc.perCall)
				for pb.Next() {
					i := n.Add(1)
					for j := range events {
						events[j] = benchEvent(i*int64(bc.perCall)+int64(j), time.Time{})
					}
					if _, err := st.Append(context.Background(), events...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(n.Load())*float64(bc.perCall)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// benchRows is the size of the query benchmarks' log: $REMEDY_AUDIT_BENCH_ROWS or a
// million.
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("REMEDY_AUDIT_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// Nodes and incident shape of the query benchmarks' log.
const (
	benchNodes     = 1000
	benchIncident  = 7 // events per correlation id
	benchRowsEvery = time.Millisecond
)

var benchTypes = []audit.Type{audit.SignalReceived, audit.Decision, audit.ApprovalRequested, audit.ApprovalGranted,
	audit.Dispatched, audit.ActionResult, audit.Verification}

func benchEvent(i int64, at time.Time) audit.Event {
	inc := i / benchIncident
	return audit.Event{
		Time:          at,
		Type:          benchTypes[i%benchIncident],
		CorrelationID: fmt.Sprintf("inc-%d", inc),
		Node:          fmt.Sprintf("node-%04d", inc%benchNodes),
		Kind:          "irq_skew",
		Action:        "irq.spread",
		ActionID:      fmt.Sprintf("a-%d", inc),
		Actor:         audit.ActorEngine,
		Outcome:       audit.OutcomeOK,
		PolicyRev:     "r1",
		Key:           fmt.Sprintf("e:%d", i),
		Detail:        json.RawMessage(`{"before":{"smp_affinity":"3"},"after":{"smp_affinity":"f"}}`),
	}
}

// BenchmarkQuery loads a log of benchRows events (1,000 nodes, 7-event incidents, one
// event a millisecond) and measures the queries people run on it.
func BenchmarkQuery(b *testing.B, open func(b *testing.B) audit.Log) {
	st := open(b)
	defer st.Close()
	rows := benchRows()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	const batch = 2000
	for i := 0; i < rows; i += batch {
		events := make([]audit.Event, min(batch, rows-i))
		for j := range events {
			n := int64(i + j)
			events[j] = benchEvent(n, t0.Add(time.Duration(n)*benchRowsEvery))
		}
		if _, err := st.Append(context.Background(), events...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d rows in %v", rows, time.Since(start).Round(time.Millisecond))
	end := t0.Add(time.Duration(rows) * benchRowsEvery)
	lastInc := int64(rows-1) / benchIncident
	for _, bc := range []struct {
		name string
		f    audit.Filter
		want int
	}{
		{"node-last-100", audit.Filter{Node: "node-0042", Limit: 100}, 100},
		{"node-type-last-100", audit.Filter{Node: "node-0042", Type: audit.ActionResult, Limit: 100}, 100},
		{"node-last-hour", audit.Filter{Node: "node-0042", Since: end.Add(-time.Hour), Limit: 100}, 100},
		{"correlation", audit.Filter{CorrelationID: fmt.Sprintf("inc-%d", lastInc/2), Ascending: true}, benchIncident},
		{"actor-last-100", audit.Filter{Actor: audit.ActorEngine, Limit: 100}, 100},
		{"follow-page", audit.Filter{AfterSeq: int64(rows) - 500, Ascending: true, Limit: 1000}, 500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				got, err := st.Query(context.Background(), bc.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != bc.want {
					b.Fatalf("%d events, want %d", len(got), bc.want)
				}
			}
			reportCPU(b, cpu)
		})
	}
	b.Run("verify", func(b *testing.B) {
		cpu := cpuTime()
		defer reportCPU(b, cpu)
		for b.Loop() {
			rep, err := st.Verify(context.Background())
			if err != nil || !rep.OK() || rep.Rows != int64(rows) {
				b.Fatalf("verify = %+v, %v", rep, err)
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// cpuTime is the CPU time this process has used. On a shared machine it says more than
// wall time; it leaves out a database server's own work (PostgreSQL runs apart).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
