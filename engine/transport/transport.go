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

	"github.com/nats-io/nats.go"
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

// SignalHandler decides one signal before returning (engine.Engine.Handle) and records
// the messages that cannot be signals (engine.Engine.Reject).
type SignalHandler interface {
	Handle(ctx context.Context, s signal.Signal) error
	Reject(ctx context.Context, source, subject, key, reason string, raw json.RawMessage) error
}

// ConsumeSignals runs the signal intake until ctx ends. A message is acked once decided.
// Undecodable events, and events whose node is not the node their subject names (the
// subject is what a node's NATS credentials confine it to), are recorded as rejected
// with the reason and terminated.
func ConsumeSignals(ctx context.Context, js jetstream.JetStream, h SignalHandler, log *slog.Logger) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       SignalsConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * Workers,
	}
	return consumeForever(ctx, js, bus.StreamSignals, cfg, log, func(ctx context.Context, msg jetstream.Msg) error {
		s, err := signal.DecodeCloudEvent(msg.Data())
		if err == nil && msg.Subject() != s.Subject() {
			err = fmt.Errorf("the event is for node %q (kind %q) but came on %s: a node may only report itself", s.Node, s.Kind, msg.Subject())
		}
		if err != nil {
			log.Warn("rejected signal event", "subject", msg.Subject(), "err", err)
			key := msg.Subject()
			if meta, merr := msg.Metadata(); merr == nil {
				key = fmt.Sprintf("%s/%d", meta.Stream, meta.Sequence.Stream)
			}
			var raw json.RawMessage
			if len(msg.Data()) <= signal.MaxEventSize {
				raw = rawOrString(msg.Data())
			}
			if err := h.Reject(ctx, "nats", msg.Subject(), "nats:"+key, err.Error(), raw); err != nil {
				return err // not recorded: redeliver
			}
			return bus.ErrTerminal
		}
		return h.Handle(ctx, *s)
	})
}

// ResultAcceptor records a result message, or why it refused it
// (engine.Engine.AcceptResult).
type ResultAcceptor interface {
	AcceptResult(ctx context.Context, subject string, data []byte) error
}

// ConsumeResults runs the result intake until ctx ends: every message, decodable or
// not, is handed to the acceptor with its subject, and acked once recorded.
func ConsumeResults(ctx context.Context, js jetstream.JetStream, rec ResultAcceptor, log *slog.Logger) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       ResultsConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * Workers,
	}
	return consumeForever(ctx, js, bus.StreamResults, cfg, log, func(ctx context.Context, msg jetstream.Msg) error {
		return rec.AcceptResult(ctx, msg.Subject(), msg.Data())
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

// AgentAnswerer answers agents' questions and notes their heartbeats
// (engine.Engine.MayRun, engine.Engine.Heartbeat).
type AgentAnswerer interface {
	MayRun(ctx context.Context, subject string, q bus.RunCheck) (bus.RunAnswer, error)
	Heartbeat(subject string, data []byte)
}

// ServeAgents answers run checks (one replica each, in a queue group) and listens to
// heartbeats (every replica) until ctx ends.
func ServeAgents(ctx context.Context, nc *nats.Conn, e AgentAnswerer, log *slog.Logger) error {
	checks, err := nc.QueueSubscribe(bus.RunCheckPrefix+".*", "remedy-engine", func(m *nats.Msg) {
		var q bus.RunCheck
		var ans bus.RunAnswer
		if err := json.Unmarshal(m.Data, &q); err != nil || q.ID == "" {
			ans.Reason = "undecodable run check"
		} else if ans, err = e.MayRun(ctx, m.Subject, q); err != nil {
			log.Warn("run check", "subject", m.Subject, "err", err)
			return // no answer: the agent asks again
		}
		if !ans.Run {
			log.Warn("agent told not to run an action", "subject", m.Subject, "action_id", q.ID, "reason", ans.Reason)
		}
		b, _ := json.Marshal(ans)
		_ = m.Respond(b)
	})
	if err != nil {
		return fmt.Errorf("subscribe run checks: %w", err)
	}
	beats, err := nc.Subscribe(bus.HeartbeatsPrefix+".*", func(m *nats.Msg) { e.Heartbeat(m.Subject, m.Data) })
	if err != nil {
		_ = checks.Unsubscribe()
		return fmt.Errorf("subscribe heartbeats: %w", err)
	}
	<-ctx.Done()
	_ = checks.Unsubscribe()
	_ = beats.Unsubscribe()
	return nil
}
