// Package bus is remedy's use of NATS JetStream: the subjects and streams, and the
// publish and consume helpers shared by the engine and the node agent. It depends only
// on nats.go, so the lean agent can use it.
//
// Subjects:
//
//	remedy.signals.<node>.<kind>  CloudEvent signals from agents and other producers
//	remedy.actions.<node>         actions for one node's agent
//	remedy.results.<node>         results reported by that agent
//	remedy.runcheck.<node>        the agent asks the engine whether to run an action it
//	                              has no journal entry for (core NATS request/reply)
//	remedy.heartbeats.<node>      the agent's liveness, every HeartbeatInterval (core NATS)
//
// <node> is signal.NodeToken(node): the node name with its dots as underscores, other
// names escaped so that no two nodes share a token (docs/architecture.md).
package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/wire/signal"
)

// Stream names and subject roots.
const (
	StreamSignals = "REMEDY_SIGNALS"
	StreamActions = "REMEDY_ACTIONS"
	StreamResults = "REMEDY_RESULTS"

	SignalsPrefix = "remedy.signals"
	ActionsPrefix = "remedy.actions"
	ResultsPrefix = "remedy.results"

	// DuplicateWindow is how long JetStream remembers message ids: a repeat publish of
	// the same signal, action or result inside it is dropped by the server.
	DuplicateWindow = 10 * time.Minute
)

// RunCheckSubject is where a node's agent asks whether to run an action (RunCheck).
func RunCheckSubject(node string) string { return RunCheckPrefix + "." + signal.NodeToken(node) }

// HeartbeatSubject is where a node's agent says it is alive.
func HeartbeatSubject(node string) string { return HeartbeatsPrefix + "." + signal.NodeToken(node) }

// Core NATS subjects (no stream): questions and liveness are worth nothing later.
const (
	RunCheckPrefix   = "remedy.runcheck"
	HeartbeatsPrefix = "remedy.heartbeats"
	// HeartbeatInterval is how often an agent says it is alive; the engine counts a node
	// without a heartbeat for three intervals as having no live agent.
	HeartbeatInterval = 10 * time.Second
)

// RunCheck is the question an agent asks before it runs an action it has no journal
// entry for (a fresh node, or a state directory lost): is this attempt still to be run?
// The engine answers from its ledger, so a replayed envelope of an action that already
// ran is refused even when the agent's journal forgot it.
type RunCheck struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
}

// RunAnswer is the engine's answer to a RunCheck.
type RunAnswer struct {
	Run    bool   `json:"run"`
	Reason string `json:"reason,omitempty"`
}

// Heartbeat is an agent's liveness message.
type Heartbeat struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// ActionSubject is the subject of a node's actions.
func ActionSubject(node string) string { return ActionsPrefix + "." + signal.NodeToken(node) }

// ResultSubject is the subject of a node's results.
func ResultSubject(node string) string { return ResultsPrefix + "." + signal.NodeToken(node) }

// AgentConsumer is the durable consumer name of a node's agent.
func AgentConsumer(node string) string { return "agent-" + signal.NodeToken(node) }

// AgentInboxPrefix is the reply-subject prefix of a node's agent: its requests'
// replies (JetStream API answers, pulled messages) arrive under it, so the agent may
// subscribe to its own replies only, not to every _INBOX.
func AgentInboxPrefix(node string) string { return "_INBOX_agent." + signal.NodeToken(node) }

// MaxNameLen is the longest stream or consumer name JetStream accepts.
const MaxNameLen = 255

// CheckNode refuses a node name whose agent consumer name JetStream would refuse.
func CheckNode(node string) error {
	if node == "" {
		return errors.New("empty node name")
	}
	if c := AgentConsumer(node); len(c) > MaxNameLen {
		return fmt.Errorf("node name %q is too long: its consumer name has %d characters, JetStream allows %d", node, len(c), MaxNameLen)
	}
	return nil
}

// StreamConfigs are the streams remedy needs.
func StreamConfigs(replicas int) []jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	mk := func(name, subj string, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{subj + ".>"},
			Storage:    jetstream.FileStorage,
			Retention:  jetstream.LimitsPolicy,
			MaxAge:     maxAge,
			Duplicates: DuplicateWindow,
			Replicas:   replicas,
		}
	}
	return []jetstream.StreamConfig{
		mk(StreamSignals, SignalsPrefix, 24*time.Hour),
		mk(StreamActions, ActionsPrefix, 24*time.Hour),
		mk(StreamResults, ResultsPrefix, 24*time.Hour),
	}
}

// EnsureStreams creates or updates remedy's streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range StreamConfigs(replicas) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// PublishTimeout bounds every publish (a context's earlier deadline still applies).
const PublishTimeout = 10 * time.Second

// Publish publishes data with a message id (JetStream drops duplicates by id) and waits
// for the server's acknowledgement, at most PublishTimeout.
//
// A publish in flight when the server died may never be acknowledged. Waiting for it as
// long as the caller's context allows held an agent's handler for minutes: its
// InProgress heartbeats kept the action claimed, so nothing else reached the node (the
// NATS-restart test, with a 3-minute test context, stalled that way about one run in
// five under load).
func Publish(ctx context.Context, js jetstream.JetStream, subject, msgID string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, PublishTimeout)
	defer cancel()
	ack, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
	if err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	_ = ack.Duplicate // a duplicate is success: the first copy is stored
	return nil
}

// Handler processes one message; returning an error naks it for redelivery, returning
// ErrTerminal terminates it (never redelivered, e.g. undecodable).
type Handler func(ctx context.Context, msg jetstream.Msg) error

// ErrTerminal marks a message that must not be redelivered.
var ErrTerminal = errors.New("terminal message error")

// Consume runs h for every message of a durable consumer until ctx ends, with up to
// workers messages in flight (1: strictly one at a time); it acks after h succeeds.
// Each handler's work is durable (an fsync'd commit), so concurrent handlers share
// commits instead of queueing behind each other's fsync.
//
// It returns an error when the consumer stalls: the server reports messages waiting
// (pending or claimed) but none has reached this client for two ack waits. A pull
// subscription can be lost when the server restarts (seen with nats-server 2.9); the
// caller consumes again, which issues fresh pulls, and claimed messages are
// redelivered.
func Consume(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, workers int, h Handler) error {
	if workers < 1 {
		workers = 1
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		// A consumer restarted after a stall (restart) begins at a sequence, which an
		// update to the configured start cannot change: go on with it as it is.
		existing, gerr := js.Consumer(ctx, stream, cfg.Durable)
		if gerr != nil || existing.CachedInfo().Config.DeliverPolicy != jetstream.DeliverByStartSequencePolicy {
			return fmt.Errorf("consumer %s on %s: %w", cfg.Durable, stream, err)
		}
		cons = existing
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(64, 2*workers)))
	if err != nil {
		return fmt.Errorf("consume %s: %w", cfg.Durable, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var w watch
	w.last.Store(time.Now().UnixNano())
	stalled := make(chan struct{})
	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	go w.run(wctx, cons, ackWaitOf(cfg), func() { close(stalled); it.Stop() })
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range msgs {
				w.busy.Add(1)
				settle(ctx, msg, h(ctx, msg))
				w.last.Store(time.Now().UnixNano())
				w.busy.Add(-1)
			}
		}()
	}
	stopWorkers := sync.OnceFunc(func() { close(msgs); wg.Wait() })
	defer stopWorkers()
	for {
		msg, err := it.Next()
		if err != nil {
			select {
			case <-stalled:
				stopWorkers() // no handler runs while the consumer is replaced
				if rerr := restart(ctx, js, stream, cfg); rerr != nil {
					return fmt.Errorf("consume %s: %w; restarting it: %w", cfg.Durable, ErrStalled, rerr)
				}
				return fmt.Errorf("consume %s: %w (restarted from its ack floor)", cfg.Durable, ErrStalled)
			default:
			}
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("consume %s: %w", cfg.Durable, err)
		}
		w.last.Store(time.Now().UnixNano())
		msgs <- msg
	}
}

// restart replaces a stalled durable consumer by one that starts right after its ack
// floor. A server restart can leave a consumer with a claimed message it never
// redelivers (nats-server 2.9 and 2.15 both did, about one restart in four under load):
// with one message in flight at most, nothing else is ever delivered. Every message after
// the floor comes again; handlers are idempotent (the agent's journal, the audit keys).
func restart(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) error {
	cons, err := js.Consumer(ctx, stream, cfg.Durable)
	if err != nil {
		return err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return err
	}
	if err := js.DeleteConsumer(ctx, stream, cfg.Durable); err != nil {
		return err
	}
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, info.AckFloor.Stream+1
	_, err = js.CreateConsumer(ctx, stream, cfg)
	return err
}

// ErrStalled is returned by Consume when the server holds messages for the consumer
// but none arrives; the consumer has been restarted from its ack floor.
var ErrStalled = errors.New("consumer stalled: messages are waiting on the server but none arrives")

func ackWaitOf(cfg jetstream.ConsumerConfig) time.Duration {
	if cfg.AckWait > 0 {
		return cfg.AckWait
	}
	return 30 * time.Second // the server's default
}

// watch tells a stalled consumer from an idle or busy one.
type watch struct {
	last atomic.Int64 // unix nanos of the last message received or settled
	busy atomic.Int32 // handlers running
}

// run calls stalled once the consumer has had messages waiting on the server while no
// handler ran and none was received or settled here for two ack waits.
func (w *watch) run(ctx context.Context, cons jetstream.Consumer, ackWait time.Duration, stalled func()) {
	t := time.NewTicker(ackWait / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.busy.Load() > 0 || time.Since(time.Unix(0, w.last.Load())) < 2*ackWait {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err != nil || (info.NumPending == 0 && info.NumAckPending == 0) {
			continue // idle, or the server is unreachable (the client reconnects)
		}
		stalled()
		return
	}
}

func settle(ctx context.Context, msg jetstream.Msg, herr error) {
	switch {
	case herr == nil:
		// Wait for the server to confirm the ack: an ack lost at shutdown means a
		// redelivery, which is safe but noisy.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = msg.DoubleAck(actx)
		cancel()
	case errors.Is(herr, ErrTerminal):
		_ = msg.Term()
	default:
		_ = msg.NakWithDelay(time.Second)
	}
}
