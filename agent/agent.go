// Package agent is remedy's node executor: it consumes the actions addressed to its node
// from JetStream, runs each through an explicit executor registry exactly once (a
// journal on local disk remembers what ran), and publishes the result.
//
// The agent runs on every node, so it stays lean: it must not import OPA, client-go,
// nats-server or SQL drivers (TestAgentDependencies enforces it).
package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/remedyhq/remedy/agent/detect"
	"github.com/remedyhq/remedy/agent/detect/detectors"
	"github.com/remedyhq/remedy/agent/journal"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/signed"
	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/signal"
)

// Options configure an agent.
type Options struct {
	Node     string
	NATSURL  string
	NATSOpts []nats.Option
	// NATSTokenFile, when set, holds the token the agent connects with: its pod's
	// projected ServiceAccount token, checked by the engine's auth callout
	// (engine/natsauth). It is read again on every reconnect, since the kubelet rotates it.
	NATSTokenFile string
	// StateDir holds the action journal.
	StateDir string
	Registry *executors.Registry
	// DryRun forces every action to a dry run, whatever the engine sent.
	DryRun bool
	// VerifyKey, when set, makes the agent refuse actions not signed by the engine's
	// key (executors/signed).
	VerifyKey ed25519.PublicKey
	// ActionTimeout bounds one execution (default 2m).
	ActionTimeout time.Duration
	// AskEngine makes the agent ask the engine (remedy.runcheck.<node>) before it runs
	// an action its journal has never seen: a wiped state directory, a re-imaged node
	// with the same name. The engine answers from its ledger, so a replayed envelope of
	// an action that already ran is refused, not run twice. Without an answer the action
	// waits (it is redelivered).
	AskEngine bool
	// Detect, when set, runs the node detectors and publishes what they find as
	// signals on remedy.signals.<node>.<kind>; Runner.Node and Publisher are filled in.
	Detect *Detection
	// MetricsListen serves /metrics (detector measurements) when set, e.g. ":9102".
	MetricsListen string
	Logger        *slog.Logger
	Now           func() time.Time
}

// Detection configures the detectors the agent runs beside its executors.
type Detection struct {
	Detectors detectors.Options
	Runner    detect.Options
}

// ackWait is how long an unacknowledged action stays claimed by this agent.
const ackWait = 30 * time.Second

// Agent executes one node's actions.
type Agent struct {
	o   Options
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
	j   *journal.Journal
}

// Run connects and executes actions until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Node == "" {
		return errors.New("agent: --node is required")
	}
	if err := bus.CheckNode(o.Node); err != nil {
		return fmt.Errorf("agent: --node: %w", err)
	}
	if o.Registry == nil {
		return errors.New("agent: no executor registry")
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	j, err := journal.Open(o.StateDir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer j.Close()
	opts := []nats.Option{nats.Name("remedy-agent " + o.Node), nats.MaxReconnects(-1), nats.CustomInboxPrefix(bus.AgentInboxPrefix(o.Node))}
	if o.NATSTokenFile != "" {
		if _, err := readToken(o.NATSTokenFile); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		opts = append(opts, nats.TokenHandler(func() string {
			tok, err := readToken(o.NATSTokenFile)
			if err != nil {
				o.Logger.Warn("nats token unreadable", "err", err)
			}
			return tok
		}),
			// A refusal while no engine answers the callout (or before the kubelet has
			// rotated an expired token) must not end the reconnects for good.
			nats.IgnoreAuthErrorAbort())
	}
	opts = append(opts, o.NATSOpts...)
	nc, err := nats.Connect(o.NATSURL, opts...)
	if err != nil {
		return fmt.Errorf("agent: connect nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("agent: jetstream: %w", err)
	}
	a := &Agent{o: o, log: o.Logger.With("node", o.Node), nc: nc, js: js, j: j}
	a.log.Info("agent running", "actions", o.Registry.Actions(), "dry_run", o.DryRun)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.heartbeats(ctx)
	}()
	if o.Detect != nil {
		if err := a.startDetectors(ctx, reg, &wg); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	if o.MetricsListen != "" {
		srv := &http.Server{Addr: o.MetricsListen, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		ln, err := net.Listen("tcp", o.MetricsListen)
		if err != nil {
			return fmt.Errorf("agent: metrics listen: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Serve(ln)
		}()
		context.AfterFunc(ctx, func() { _ = srv.Close() })
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       bus.AgentConsumer(o.Node),
		FilterSubject: bus.ActionSubject(o.Node),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Short: an action whose ack was lost (NATS restarted mid-action) comes back
		// within AckWait; a long action keeps its claim with InProgress heartbeats.
		AckWait:       ackWait,
		MaxAckPending: 1, // one action at a time on a node
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	for {
		err := bus.Consume(ctx, js, bus.StreamActions, cfg, 1, a.handle)
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("action consumer stopped; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("nats token: %s is empty", path)
	}
	return tok, nil
}

// startDetectors runs the detectors and publishes their signals as CloudEvents, with the
// signal key as JetStream message id.
func (a *Agent) startDetectors(ctx context.Context, reg prometheus.Registerer, wg *sync.WaitGroup) error {
	d := *a.o.Detect
	d.Detectors.Registerer, d.Detectors.Logger = reg, a.o.Logger
	ds, err := detectors.New(d.Detectors)
	if err != nil {
		return fmt.Errorf("detectors: %w", err)
	}
	source := "remedy-agent/" + a.o.Node
	d.Runner.Node, d.Runner.Registerer, d.Runner.Logger = a.o.Node, reg, a.o.Logger
	d.Runner.Publisher = detect.PublisherFunc(func(ctx context.Context, s signal.Signal) error {
		b, err := signal.EncodeCloudEvent(&s, source)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return bus.Publish(pctx, a.js, s.Subject(), s.Key(), b)
	})
	r, err := detect.NewRunner(d.Runner, ds.List...)
	if err != nil {
		ds.Close()
		return fmt.Errorf("detectors: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer ds.Close()
		_ = r.Run(ctx)
	}()
	return nil
}

func (a *Agent) handle(ctx context.Context, msg jetstream.Msg) error {
	req, err := signed.Open(msg.Data(), a.o.VerifyKey)
	if req.ID == "" {
		a.log.Error("undecodable action; dropped", "subject", msg.Subject(), "err", err)
		return bus.ErrTerminal
	}
	if err != nil {
		// Not from the engine: refuse without touching the journal (a forged action must
		// not pre-empt the real one with the same id), and report the refusal.
		a.log.Warn("action refused", "action_id", req.ID, "action", req.Action, "err", err)
		res := executors.Failure(req, a.o.Now(), executors.Refused, err)
		res.Unverified = true
		if perr := a.publish(ctx, res); perr != nil {
			return perr
		}
		return bus.ErrTerminal
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	res, err := a.Execute(ctx, req)
	if err != nil {
		return err
	}
	return a.publish(ctx, res)
}

// Execute runs one action at most once per id: a known id returns its recorded result;
// an id whose execution started but never finished (the agent died mid-action) is
// retried once, then reported failed.
func (a *Agent) Execute(ctx context.Context, req executors.Request) (executors.Result, error) {
	if req.Node != a.o.Node {
		// Signed for another node: refuse it, in this agent's name (the audit's actor is
		// the result's node), without journaling (the id is another node's to run).
		a.log.Warn("action for another node refused", "action_id", req.ID, "action", req.Action, "action_node", req.Node)
		res := executors.Failure(req, a.o.Now(), executors.Refused, fmt.Errorf("action for node %q delivered to the agent of %q", req.Node, a.o.Node))
		res.Node = a.o.Node
		return res, nil
	}
	st := a.j.Get(req.ID)
	if st.Result != nil {
		a.log.Info("action already ran; re-reporting", "action_id", req.ID, "status", st.Result.Status)
		return *st.Result, nil
	}
	now := a.o.Now()
	var res executors.Result
	switch {
	case !req.Deadline.IsZero() && now.After(req.Deadline):
		res = executors.Failure(req, now, executors.Expired, fmt.Errorf("deadline %s passed", req.Deadline.Format(time.RFC3339)))
	case st.Starts >= 2:
		res = executors.Failure(req, now, executors.Failed, errors.New("agent stopped during this action twice; not retrying"))
	default:
		exec, _, err := a.o.Registry.Get(req.Action)
		if err != nil {
			res = executors.Failure(req, now, executors.Refused, err)
			break
		}
		if a.o.AskEngine && st.Starts == 0 {
			ans, err := a.ask(ctx, req)
			if err != nil {
				return res, err // no answer: the action comes back and asks again
			}
			if !ans.Run {
				res = executors.Failure(req, now, executors.Refused, fmt.Errorf("the engine says not to run it: %s", ans.Reason))
				break
			}
		}
		if err := a.j.Write(journal.Entry{ID: req.ID, Started: true}); err != nil {
			return res, err
		}
		if a.o.DryRun {
			req.DryRun = true
		}
		ectx, cancel := context.WithTimeout(ctx, a.o.ActionTimeout)
		res = exec.Execute(ectx, req)
		cancel()
	}
	if err := a.j.Write(journal.Entry{ID: req.ID, Result: &res}); err != nil {
		return res, err
	}
	a.log.Info("action done", "action", req.Action, "action_id", req.ID, "status", res.Status, "message", res.Message)
	return res, nil
}

// ask asks the engine whether an action the journal has never seen is still to be run.
func (a *Agent) ask(ctx context.Context, req executors.Request) (bus.RunAnswer, error) {
	q, _ := json.Marshal(bus.RunCheck{ID: req.ID, Attempt: req.Attempt})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := a.nc.RequestWithContext(ctx, bus.RunCheckSubject(a.o.Node), q)
	if err != nil {
		return bus.RunAnswer{}, fmt.Errorf("ask the engine about action %s: %w", req.ID, err)
	}
	var ans bus.RunAnswer
	if err := json.Unmarshal(msg.Data, &ans); err != nil {
		return bus.RunAnswer{}, fmt.Errorf("ask the engine about action %s: undecodable answer: %w", req.ID, err)
	}
	return ans, nil
}

// heartbeats says every bus.HeartbeatInterval that this node's agent is alive.
func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(bus.HeartbeatInterval)
	defer t.Stop()
	for {
		b, _ := json.Marshal(bus.Heartbeat{Node: a.o.Node, At: a.o.Now().UTC()})
		if err := a.nc.Publish(bus.HeartbeatSubject(a.o.Node), b); err != nil {
			a.log.Debug("heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publish reports a result on this node's subject, in this node's name: a refusal of
// an action that claims another node is still this agent's refusal.
func (a *Agent) publish(ctx context.Context, res executors.Result) error {
	res.Node = a.o.Node
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return bus.Publish(ctx, a.js, bus.ResultSubject(a.o.Node), "result:"+res.ID+":"+string(res.Status), b)
}
