package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/test/testenv"
	"github.com/remedyhq/remedy/wire/bus"
)

// A consumer that holds one claimed message and never gets it back (the server-side
// stall seen after nats-server restarts) is restarted from its ack floor: every message
// after the floor is delivered again, the claimed one included, and consuming goes on
// with the restarted consumer.
func TestRestartAfterStall(t *testing.T) {
	ctx, _, _, js := testenv.JetStream(t)
	cfg := jetstream.ConsumerConfig{Durable: bus.AgentConsumer("n1"), FilterSubject: bus.ActionSubject("n1"),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour, MaxAckPending: 1, DeliverPolicy: jetstream.DeliverAllPolicy}
	for i := range 3 {
		if err := bus.Publish(ctx, js, bus.ActionSubject("n1"), fmt.Sprint("m", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Message 0 is acked; message 1 is claimed and never settled (the ack wait is an
	// hour): with one claim at most, message 2 waits behind it.
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamActions, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			if i == 0 {
				_ = m.DoubleAck(ctx)
			}
		}
	}
	if err := bus.ExportRestart(ctx, js, bus.StreamActions, cfg); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bus.Consume(cctx, js, bus.StreamActions, cfg, 1, func(_ context.Context, m jetstream.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(m.Data()))
			return nil
		})
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart got %v, want messages 1 and 2", got)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consuming the restarted consumer: %v", err)
	}
	if fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("after the restart got %v, want [1 2]", got)
	}
}
