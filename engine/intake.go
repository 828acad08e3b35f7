package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/wire/signal"
)

// The intake stage: signals are recorded durably before anything else happens to them.

// Submit records signals durably and queues the new ones for a decision. It returns
// once the signals are committed; a nil error is the caller's licence to acknowledge.
// Invalid signals are recorded as rejected, not returned as an error: re-sending them
// would not make them valid.
func (e *Engine) Submit(ctx context.Context, sigs []signal.Signal) error {
	if len(sigs) == 0 {
		return nil
	}
	events := make([]audit.Event, len(sigs))
	for i := range sigs {
		events[i] = signalEvent(&sigs[i])
	}
	e.intake.Add(1)
	inserted, err := e.appendEvents(ctx, events...)
	e.intake.Add(-1)
	if err != nil {
		return fmt.Errorf("record signals: %w", err)
	}
	for i, s := range sigs {
		e.m.signal(s.Source, events[i].Type, inserted[i])
		if !inserted[i] || events[i].Type != audit.SignalReceived {
			continue
		}
		key := s.Key()
		e.queued.Store(key, struct{}{})
		select {
		case e.queue <- s:
		default:
			// Queue full: the signal is recorded, the sweep will decide it.
			e.queued.Delete(key)
		}
	}
	return nil
}

// Handle records one signal and decides it before returning: the NATS intake acks a
// message only after its decision is in the audit log.
func (e *Engine) Handle(ctx context.Context, s signal.Signal) error {
	ev := signalEvent(&s)
	ins, err := e.appendEvents(ctx, ev)
	if err != nil {
		return fmt.Errorf("record signal: %w", err)
	}
	e.m.signal(s.Source, ev.Type, ins[0])
	if ev.Type != audit.SignalReceived {
		return nil
	}
	return e.decide(ctx, s, decideOptions{})
}

// Reject records a message that could not become a signal (undecodable, or not
// believed: a node other than its subject's) as signal.rejected, with the reason and the
// subject it came on. key makes a redelivery of the same message one event.
func (e *Engine) Reject(ctx context.Context, source, subject, key, reason string, raw json.RawMessage) error {
	ev := audit.Event{Type: audit.SignalRejected, Actor: source, Outcome: "rejected", Key: "rejected:" + key,
		Detail: mustJSON(map[string]any{"error": reason, "subject": subject, "raw": raw})}
	ins, err := e.appendEvents(ctx, ev)
	if err != nil {
		return fmt.Errorf("record rejected signal: %w", err)
	}
	e.m.signal(source, audit.SignalRejected, ins[0])
	return nil
}

func signalEvent(s *signal.Signal) audit.Event {
	key := s.Key()
	ev := audit.Event{
		Type:          audit.SignalReceived,
		CorrelationID: CorrelationID(s),
		Node:          s.Node,
		Kind:          string(s.Kind),
		Actor:         s.Source,
		Outcome:       string(s.Status),
		Key:           audit.SignalKey(key),
	}
	if err := s.Validate(); err != nil {
		ev.Type = audit.SignalRejected
		ev.Outcome = "rejected"
		ev.Key = "rejected:" + key
		ev.Detail = mustJSON(map[string]any{"error": err.Error(), "signal": s})
		return ev
	}
	ev.Detail = mustJSON(s)
	return ev
}

func (e *Engine) work() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case s := <-e.queue:
			e.queued.Delete(s.Key())
			release := e.yieldToIntake()
			// Decisions are committed after the intake waiting beside them: a storm is
			// acknowledged first, and decided as fast as the rest of each commit allows.
			if err := e.decide(e.ctx, s, decideOptions{deferred: true, batchRecords: true}); err != nil && e.ctx.Err() == nil {
				e.log.Error("decide", "node", s.Node, "kind", s.Kind, "err", err)
			}
			release()
		}
	}
}

// stormIntake is how many webhook batches waiting for their commit at once make a
// storm: then the workers decide one signal at a time, leaving the CPU to intake, so a
// storm is acknowledged first and decided right after. (At 1,000 alerts/s offered a
// commit or two are in flight; sixteen busy senders keep about sixteen.)
const stormIntake = 4

// yieldToIntake waits, during a storm, for the one decision slot a storm allows, and
// returns its release.
func (e *Engine) yieldToIntake() (release func()) {
	if e.intake.Load() < stormIntake {
		return func() {}
	}
	select {
	case e.stormSlot <- struct{}{}:
		return func() { <-e.stormSlot }
	case <-e.ctx.Done():
		return func() {}
	}
}
