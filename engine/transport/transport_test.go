package transport_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/transport"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/signal"
)

// record keeps what the intake handed on.
type record struct {
	mu       sync.Mutex
	signals  []signal.Signal
	rejected []string // reasons
	results  []string // subjects
}

func (r *record) Handle(_ context.Context, s signal.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signals = append(r.signals, s)
	return nil
}

func (r *record) Reject(_ context.Context, _, _, _, reason string, _ json.RawMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected = append(r.rejected, reason)
	return nil
}

// AcceptResult: the engine judges results (engine.Engine.AcceptResult, test/trust); the
// transport hands on every one with the subject it came on.
func (r *record) AcceptResult(_ context.Context, subject string, _ []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, subject)
	return nil
}

func (r *record) counts() (int, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.signals), len(r.rejected), len(r.results)
}

// A signal or result on one node's subject that names another node in its body (what an
// agent confined to node-a's subjects could still publish) is not taken as the other
// node's: the signal is rejected with the reason; results go to the engine with their
// subject, which it checks against its ledger.
func TestIntakeRefusesAnotherNodesPayloadOnANodesSubject(t *testing.T) {
	ctx, _, _, js := testenv.JetStream(t)
	rec := &record{}
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = transport.ConsumeSignals(cctx, js, rec, slog.New(slog.DiscardHandler)) })
	wg.Go(func() { _ = transport.ConsumeResults(cctx, js, rec, slog.New(slog.DiscardHandler)) })
	defer func() { stop(); wg.Wait() }()

	sig := func(node string) []byte {
		s := signal.Signal{Source: "agent", Kind: signal.KindIRQSkew, Node: node, Status: signal.Firing, StartsAt: time.Now()}
		b, err := signal.EncodeCloudEvent(&s, "remedy-agent/"+node)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mine, theirs := signal.Signal{Node: "node-a", Kind: signal.KindIRQSkew}, signal.Signal{Node: "node-b", Kind: signal.KindIRQSkew}
	for i, p := range []struct {
		subject string
		data    []byte
	}{
		{mine.Subject(), sig("node-a")},
		{mine.Subject(), sig("node-b")}, // node-a speaking for node-b
		{theirs.Subject(), sig("node-b")},
	} {
		if err := bus.Publish(ctx, js, p.subject, "s"+string(rune('0'+i)), p.data); err != nil {
			t.Fatal(err)
		}
	}
	res := func(node, id string) []byte {
		b, _ := json.Marshal(executors.Result{ID: id, Node: node, Status: executors.Succeeded})
		return b
	}
	if err := bus.Publish(ctx, js, bus.ResultSubject("node-a"), "r1", res("node-b", "forged")); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, js, bus.ResultSubject("node-a"), "r2", res("node-a", "real")); err != nil {
		t.Fatal(err)
	}
	// Every message settled: whatever the intake took is recorded.
	testenv.Eventually(t, 20*time.Second, "the intake to settle every message", func() bool {
		for stream, name := range map[string]string{bus.StreamSignals: transport.SignalsConsumer, bus.StreamResults: transport.ResultsConsumer} {
			c, err := js.Consumer(ctx, stream, name)
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			if err != nil || info.NumPending != 0 || info.NumAckPending != 0 || info.Delivered.Stream == 0 {
				return false
			}
		}
		return true
	})
	if s, r, n := rec.counts(); s != 2 || r != 1 || n != 2 {
		t.Fatalf("%d signals, %d rejected, %d results; want 2, 1, 2", s, r, n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := rec.rejected[0]; got != `the event is for node "node-b" (kind "irq_skew") but came on remedy.signals.node-a.irq_skew: a node may only report itself` {
		t.Errorf("rejection reason %q", got)
	}
	for _, subj := range rec.results {
		if subj != bus.ResultSubject("node-a") {
			t.Errorf("result handed on with subject %q", subj)
		}
	}
}
