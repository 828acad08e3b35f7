package testenv

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/wire/bus"
)

// AsyncErrors is a nats option sending the connection's asynchronous errors (the
// server's permission violations among them) to the returned channel.
func AsyncErrors() (nats.Option, <-chan error) {
	errs := make(chan error, 64)
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}), errs
}

// Denied fails the test unless the server refuses do (op on subject) with a permissions
// violation, returned by do or reported asynchronously on errs (AsyncErrors) within 3 s.
func Denied(t testing.TB, nc *nats.Conn, errs <-chan error, op, subject string, do func() error) {
	t.Helper()
	if err := do(); err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			return
		}
		t.Fatalf("%s %s: %v", op, subject, err)
	}
	_ = nc.Flush()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case err := <-errs:
			s := strings.ToLower(err.Error())
			if strings.Contains(s, "permissions violation") && strings.Contains(s, strings.ToLower(subject)) {
				return
			}
		case <-deadline:
			t.Errorf("could %s %s", op, subject)
			return
		}
	}
}

// NextResult waits up to 30 s for a result on node's result subject (read through an
// ephemeral consumer from the start of the stream) and fails the test without one.
func NextResult(t testing.TB, ctx context.Context, js jetstream.JetStream, node string) executors.Result {
	t.Helper()
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamResults, jetstream.ConsumerConfig{
		FilterSubject: bus.ResultSubject(node), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		var r executors.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatalf("result: %v: %s", err, m.Data())
		}
		return r
	}
	t.Fatalf("no result from %s's agent within 30s (its consumer, fetch, ack or result publish was refused?) %v", node, batch.Error())
	return executors.Result{}
}
