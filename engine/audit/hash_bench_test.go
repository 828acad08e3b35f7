package audit_test

import (
	"encoding/json"
	"testing"

	"github.com/remedyhq/remedy/engine/audit"
)

func BenchmarkHashEvent(b *testing.B) {
	e := audit.Event{Seq: 1, Time: t0, Type: audit.ActionResult, CorrelationID: "inc-123456", Node: "node-0042",
		Kind: "irq_skew", Action: "irq.spread", ActionID: "a-123456", Actor: audit.ActorEngine, Outcome: audit.OutcomeOK,
		PolicyRev: "r1", Key: "result:a-123456", PrevHash: "9f2c0a4b8d1e6f3a5c7b9d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f2c",
		Detail: json.RawMessage(`{"before":{"smp_affinity":"3"},"after":{"smp_affinity":"f"}}`)}
	b.ReportAllocs()
	for b.Loop() {
		audit.HashEvent(&e)
	}
}
