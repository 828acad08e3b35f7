// Package transport connects the engine to NATS JetStream: it dispatches node actions
// to remedy.actions.<node>, and consumes CloudEvent signals (remedy.signals.>) and agent
// results (remedy.results.>) through durable consumers that ack only after the engine
// has recorded what the message carried.
package transport

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/signed"
	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/signal"
)

// Consumer names of the engine.
const (
	SignalsConsumer = "engine-signals"
	ResultsConsumer = "engine-results"
)

// Workers is how many signals or results the engine handles at once per consumer.
const Workers = 32

// Dispatcher publishes actions; it satisfies engine.Dispatcher.
type Dispatcher struct {
	JS jetstream.JetStream
	// Key signs every action (agents with the public key refuse anything else); nil
	// sends unsigned actions.
	Key ed25519.PrivateKey
}

// Dispatch publishes an action with its id as message id, so a re-dispatch after a
// crash is dropped by the stream's duplicate window.
func (d Dispatcher) Dispatch(ctx context.Context, req executors.Request) error {
	b, err := signed.Seal(req, d.Key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return bus.Publish(ctx, d.JS, bus.ActionSubject(req.Node), "action:"+req.ID, b)
}

// SignalHandler decides one signal before returning (engine.Engine.Handle).
type SignalHandler interface {
	Handle(ctx context.Context, s signal.Signal) error
}

// RejectSink records an undecodable event (engine.Engine.Submit records invalid
// signals as rejected).
type RejectSink = signal.Sink

// ConsumeSignals runs the signal intake until ctx ends. Undecodable events are recorded
// as rejected through sink and terminated; an event is acked once decided.
func ConsumeSignals(ctx context.Context, js jetstream.JetStream, h SignalHandler, rejects RejectSink, log *slog.Logger) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       SignalsConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * Workers,
	}
	return consumeForever(ctx, js, bus.StreamSignals, cfg, log, func(ctx context.Context, msg jetstream.Msg) error {
		s, err := signal.DecodeCloudEvent(msg.Data())
		if err == nil && s.Subject() != msg.Subject() {
			// A publisher confined to one node's subjects (engine/natsauth) must not speak
			// for another node.
			err = fmt.Errorf("signal of node %q, kind %q on subject %s, not %s", s.Node, s.Kind, msg.Subject(), s.Subject())
		}
		if err != nil {
			log.Warn("rejected signal event", "subject", msg.Subject(), "err", err)
			bad := signal.Signal{Source: "nats", Status: "invalid", Labels: map[string]string{"subject": msg.Subject(), "error": err.Error()}}
			if meta, merr := msg.Metadata(); merr == nil {
				bad.Fingerprint = fmt.Sprintf("%s/%d", meta.Stream, meta.Sequence.Stream)
			}
			if len(msg.Data()) <= signal.MaxEventSize {
				bad.Raw = rawOrString(msg.Data())
			}
			if err := rejects.Submit(ctx, []signal.Signal{bad}); err != nil {
				return err // not recorded: redeliver
			}
			return bus.ErrTerminal
		}
		return h.Handle(ctx, *s)
	})
}

// ResultRecorder audits a result (engine.Engine.RecordResult).
type ResultRecorder interface {
	RecordResult(ctx context.Context, r executors.Result) error
}

// ConsumeResults runs the result intake until ctx ends.
func ConsumeResults(ctx context.Context, js jetstream.JetStream, rec ResultRecorder, log *slog.Logger) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       ResultsConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * Workers,
	}
	return consumeForever(ctx, js, bus.StreamResults, cfg, log, func(ctx context.Context, msg jetstream.Msg) error {
		var r executors.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil || r.ID == "" {
			log.Warn("undecodable result dropped", "subject", msg.Subject(), "err", err)
			return bus.ErrTerminal
		}
		if msg.Subject() != bus.ResultSubject(r.Node) {
			// An agent reports for its own node only (engine/natsauth confines its publishes).
			log.Warn("result for another node's subject dropped", "subject", msg.Subject(), "node", r.Node, "action_id", r.ID)
			return bus.ErrTerminal
		}
		return rec.RecordResult(ctx, r)
	})
}

func consumeForever(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, log *slog.Logger, h bus.Handler) error {
	for {
		err := bus.Consume(ctx, js, stream, cfg, Workers, h)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("consumer stopped; retrying", "consumer", cfg.Durable, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func rawOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return append(json.RawMessage(nil), b...)
	}
	s, _ := json.Marshal(string(b))
	return s
}
