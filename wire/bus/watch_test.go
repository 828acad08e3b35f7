package bus

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// infoConsumer answers Info with what the server would report; the watchdog asks
// nothing else. (The stall itself — a pull subscription the server forgot on restart —
// is a nats-server 2.9 bug the embedded 2.15 server does not reproduce.)
type infoConsumer struct {
	jetstream.Consumer
	pending, ackPending atomic.Int64
}

func (c *infoConsumer) Info(context.Context) (*jetstream.ConsumerInfo, error) {
	return &jetstream.ConsumerInfo{NumPending: uint64(c.pending.Load()), NumAckPending: int(c.ackPending.Load())}, nil
}

func TestWatchTellsStalledFromIdleAndBusy(t *testing.T) {
	const ackWait = 20 * time.Millisecond
	run := func(w *watch, c *infoConsumer, d time.Duration) bool {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		fired := make(chan struct{}, 1)
		w.run(ctx, c, ackWait, func() { fired <- struct{}{} })
		select {
		case <-fired:
			return true
		default:
			return false
		}
	}
	idle := &infoConsumer{}
	if run(&watch{}, idle, 20*ackWait) {
		t.Error("an idle consumer (nothing pending on the server) was called stalled")
	}
	busy := &watch{}
	busy.busy.Store(1)
	claimed := &infoConsumer{}
	claimed.ackPending.Store(1)
	if run(busy, claimed, 20*ackWait) {
		t.Error("a consumer whose handler is running was called stalled")
	}
	fresh := &watch{}
	fresh.last.Store(time.Now().Add(time.Hour).UnixNano()) // a message "just" arrived
	if run(fresh, claimed, 20*ackWait) {
		t.Error("a consumer that just received a message was called stalled")
	}
	waiting := &infoConsumer{}
	waiting.pending.Store(50)
	if !run(&watch{}, waiting, 20*ackWait) {
		t.Error("50 messages waiting on the server and none received: not called stalled")
	}
	if !run(&watch{}, claimed, 20*ackWait) {
		t.Error("a message claimed on the server and no handler running: not called stalled")
	}
}
