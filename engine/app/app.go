// Package app assembles a running engine from options: the audit store, NATS (embedded
// by default), the policy, the action catalogue, the engine, its NATS consumers and the
// HTTP API. cmd/remedy only turns flags into Options; tests start the same App.
package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/remedyhq/remedy/engine"
	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/approval"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/auditstore"
	"github.com/remedyhq/remedy/engine/facts"
	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/guard/verify"
	"github.com/remedyhq/remedy/engine/kube"
	"github.com/remedyhq/remedy/engine/natsauth"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/engine/transport"
	"github.com/remedyhq/remedy/engine/webauth"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	kubeexec "github.com/remedyhq/remedy/executors/kube"
	"github.com/remedyhq/remedy/webhooks/alertmanager"
	"github.com/remedyhq/remedy/webhooks/mtls"
	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/bus/embedded"
)

// Options configure the engine process.
type Options struct {
	// DataDir holds the SQLite audit log and the embedded JetStream store.
	DataDir string
	// PolicyDir is the directory of Rego policies and data.
	PolicyDir string
	// Listen is the HTTP address (webhook, API, metrics); ":0" picks a free port.
	Listen string
	// NATSURL selects an external NATS; empty starts the embedded server.
	NATSURL string
	// NATSReplicas is the replica count of remedy's streams on an external NATS cluster
	// (default 1; 3 on a 3-node cluster, so a stream survives losing a server).
	NATSReplicas int
	// NATSListen is the embedded server's client address for agents (default
	// 127.0.0.1:4222; "127.0.0.1:-1" picks a free port).
	NATSListen string
	// NATSAuth, when set, answers the NATS server's auth callout (engine/natsauth):
	// agents connect with their projected ServiceAccount token and get a user confined
	// to their node's subjects. It needs Kube; the embedded server is configured for it,
	// an external one (NATSURL) must name Issuer's public key as auth_callout issuer
	// and this engine's user in auth_users.
	NATSAuth *NATSAuth
	// DryRun makes every action a dry run.
	DryRun bool
	// WebhookToken, when set, is required as a bearer token on the webhook.
	WebhookToken string
	// TLS, when its certificate and key are set, serves Listen over TLS; with a client
	// CA every client must present a certificate it signed (mutual TLS). The files are
	// reloaded when they change.
	TLS mtls.Files
	// MaxBody bounds webhook bodies.
	MaxBody int64
	// MaxAlerts bounds the alerts of one webhook (default 1000; more get 413).
	MaxAlerts int
	// MetricsOpen serves /metrics without a token when an approvers file protects the
	// API (for scrapers that cannot send one).
	MetricsOpen bool
	// Facts provides node and cluster facts (default: none known).
	Facts facts.Provider
	// GuardsFile is the guards and approvals configuration (docs/guards.md); empty
	// uses the defaults.
	GuardsFile string
	// ApproversFile maps API tokens to identities and roles; empty allows no one.
	ApproversFile string
	// SessionTTL is how long a login to the browser pages lasts (default 12h).
	SessionTTL time.Duration
	// TrustedOrigins may post to the pages besides their own origin (the public origin
	// of a reverse proxy that rewrites Host), e.g. https://remedy.example.com.
	TrustedOrigins []string
	// AuditDSN selects the audit store: postgres://… for PostgreSQL, else a SQLite file
	// (default DataDir/audit.db).
	AuditDSN string
	// AuditKey signs audit retention checkpoints and checks them in verify.
	AuditKey audit.Signer
	// AuditRetention removes audit rows older than this; 0 keeps everything.
	AuditRetention time.Duration
	// SigningKey signs every dispatched action (executors/signed); agents holding the
	// public key refuse anything else. Nil dispatches unsigned actions.
	SigningKey ed25519.PrivateKey
	// Kube connects the engine to a Kubernetes cluster (engine/kube): node facts from an
	// informer cache, the cluster actions, node-condition signals and, optionally, leader
	// election around the consumers. Nil runs without a cluster.
	Kube *kube.Options
	// PolicyReload is how often PolicyDir is looked at for changes; a change is loaded
	// (compiled, tested, checked against the action catalogue) and swapped in, or
	// rejected and audited while the running policy stays. 0 means every 5s; negative
	// turns reloading off.
	PolicyReload time.Duration
	// PolicyEvalTimeout bounds each policy evaluation (default 500ms, negative: no
	// deadline); an evaluation cut off is a policy_error decision.
	PolicyEvalTimeout time.Duration
	// ClusterExecutors run in the engine (Kubernetes actions). Without Kube, the cluster
	// actions not among them answer executors.Unavailable (kube.Unconfigured).
	ClusterExecutors []executors.Executor
	ActionTTL        time.Duration
	// RedispatchAfter re-publishes a dispatched action that has no result after this
	// long (engine default 2m).
	RedispatchAfter time.Duration
	SweepInterval   time.Duration
	Logger          *slog.Logger
}

// NATSAuth configures the auth callout for agents.
type NATSAuth struct {
	// Issuer is the account key pair the server's auth_callout names as issuer.
	Issuer nkeys.KeyPair
	// Namespace and ServiceAccount are the agents' (the DaemonSet's).
	Namespace, ServiceAccount string
	// Audience of the agents' projected tokens (default natsauth.DefaultAudience).
	Audience string
}

// App is a running engine.
type App struct {
	Engine   *engine.Engine
	Store    audit.Store
	Policy   *policy.Holder
	NATS     *nats.Conn
	JS       jetstream.JetStream
	Registry *prometheus.Registry
	Guards   *guard.Guards
	// Approvals holds actions waiting for a human.
	Approvals *approval.Service
	// Sessions are the logins of the browser pages (engine/webauth), one store for every
	// page.
	Sessions *webauth.Sessions

	addr     string
	scheme   string
	natsURL  string
	ns       *server.Server
	srv      *http.Server
	cancel   context.CancelFunc
	leading  prometheus.Gauge
	wg       sync.WaitGroup
	stopOnce sync.Once
	log      *slog.Logger
	kube     *kube.Cluster
	natsAuth *natsauth.Service
}

// Addr is the HTTP listen address.
func (a *App) Addr() string { return a.addr }

// URL is the HTTP base URL (https:// when serving TLS).
func (a *App) URL() string { return a.scheme + "://" + a.addr }

// NATSURL is the NATS client URL agents connect to.
func (a *App) NATSURL() string { return a.natsURL }

// Start builds and starts everything; Stop undoes it.
func Start(ctx context.Context, o Options) (_ *App, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		o.DataDir = "data"
	}
	if o.PolicyDir == "" {
		o.PolicyDir = "policies"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:9095"
	}
	if o.NATSListen == "" {
		o.NATSListen = "127.0.0.1:4222"
	}
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	a := &App{log: o.Logger, Registry: prometheus.NewRegistry()}
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			a.Stop()
		}
	}()

	cutoffs := prometheus.NewCounter(prometheus.CounterOpts{Name: "remedy_policy_eval_deadline_exceeded_total",
		Help: "Policy evaluations cut off at their deadline (recorded as policy_error decisions)."})
	a.Registry.MustRegister(cutoffs)
	polOpts := policy.Options{Check: policy.CatalogueChecker(ShippedActions()), EvalTimeout: o.PolicyEvalTimeout, DeadlineExceeded: cutoffs}
	pol, err := policy.LoadWith(ctx, o.PolicyDir, polOpts)
	if err != nil {
		return nil, err
	}
	a.Policy = policy.NewHolder(pol)

	st, err := openAudit(ctx, o)
	if err != nil {
		return nil, err
	}
	a.Store = st
	a.auditPolicy(policy.Event{Loaded: true, Source: o.PolicyDir, Revision: pol.Revision, Files: pol.Files, Tests: pol.Tests})

	if o.NATSURL == "" {
		eo := embedded.Options{Listen: o.NATSListen, StoreDir: filepath.Join(o.DataDir, "jetstream")}
		var auth []nats.Option
		if o.NATSAuth != nil {
			if eo.CalloutIssuer, err = o.NATSAuth.Issuer.PublicKey(); err != nil {
				return nil, fmt.Errorf("nats auth callout issuer: %w", err)
			}
			eo.EnginePassword = rand.Text()
			auth = append(auth, nats.UserInfo(embedded.EngineUser, eo.EnginePassword))
		}
		a.ns, err = embedded.Start(eo)
		if err != nil {
			return nil, err
		}
		a.natsURL = a.ns.ClientURL()
		a.NATS, err = nats.Connect("", append([]nats.Option{nats.InProcessServer(a.ns), nats.Name("remedy-engine")}, auth...)...)
	} else {
		a.natsURL = o.NATSURL
		a.NATS, err = nats.Connect(o.NATSURL, nats.Name("remedy-engine"), nats.MaxReconnects(-1))
	}
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	if a.JS, err = jetstream.New(a.NATS); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := bus.EnsureStreams(ctx, a.JS, max(1, o.NATSReplicas)); err != nil {
		return nil, err
	}

	if _, err := a.startKube(ctx, &o); err != nil {
		return nil, err
	}
	if err := a.startNATSAuth(o); err != nil {
		return nil, err
	}
	reg := executors.NewRegistry()
	if err := reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...); err != nil {
		return nil, err
	}
	if err := reg.Add(executors.InCluster, o.ClusterExecutors...); err != nil {
		return nil, err
	}
	if a.kube == nil {
		// No cluster: the cluster actions are still known, and answer "unavailable" with
		// what to configure instead of being refused as unknown.
		var have []string
		for _, e := range o.ClusterExecutors {
			have = append(have, e.Action())
		}
		if err := reg.Add(executors.InCluster, kubeexec.Unconfigured(have...)...); err != nil {
			return nil, err
		}
	}
	gcfg, err := guard.Parse(nil)
	if o.GuardsFile != "" {
		gcfg, err = guard.LoadFile(o.GuardsFile)
	}
	if err != nil {
		return nil, err
	}
	var tokens webauth.Tokens
	if o.ApproversFile != "" {
		if tokens, err = webauth.LoadTokens(o.ApproversFile); err != nil {
			return nil, err
		}
	}
	sessions, err := webauth.New(webauth.Options{Tokens: tokens, TTL: o.SessionTTL, TrustedOrigins: o.TrustedOrigins})
	if err != nil {
		return nil, err
	}
	a.Sessions = sessions
	a.Guards = guard.New(guard.Options{Config: gcfg, Store: st, Facts: o.Facts, Registerer: a.Registry})
	if err := a.Guards.Restore(ctx); err != nil {
		return nil, err
	}
	a.Engine, err = engine.New(engine.Options{
		Store: st, Policy: a.Policy, Actions: reg, Facts: o.Facts, Gate: a.Guards,
		Dispatcher: transport.Dispatcher{JS: a.JS, Key: o.SigningKey}, DryRun: o.DryRun, ActionTTL: o.ActionTTL, RedispatchAfter: o.RedispatchAfter,
		SweepInterval: o.SweepInterval, Logger: o.Logger, Registerer: a.Registry,
	})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.Engine.Start(runCtx)
	if o.PolicyReload >= 0 {
		w, err := policy.NewWatcher(a.Policy, o.PolicyDir, policy.WatchOptions{Load: polOpts, Interval: o.PolicyReload,
			OnChange: a.auditPolicy, Logger: o.Logger, Registerer: a.Registry})
		if err != nil {
			return nil, err
		}
		a.goRun(func() error { w.Run(runCtx); return nil })
	}
	a.Approvals = approval.New(approval.Options{Store: st, Engine: a.Engine, Guards: a.Guards, Config: gcfg.Approval,
		Logger: o.Logger, Registerer: a.Registry})
	verifier := verify.New(verify.Options{Store: st, Sink: a.Engine, Config: gcfg.Verification, Logger: o.Logger})
	// The consumers and the periodic loops (approval expiry, verification, retention)
	// run on the leader only when replicas elect one; the API serves on every replica.
	leaderWork := []func(context.Context) error{
		func(ctx context.Context) error {
			return transport.ConsumeSignals(ctx, a.JS, a.Engine, o.Logger)
		},
		func(ctx context.Context) error { return transport.ConsumeResults(ctx, a.JS, a.Engine, o.Logger) },
		func(ctx context.Context) error {
			a.Approvals.Run(ctx, min(gcfg.Approval.TTL/4, 10*time.Second))
			return nil
		},
		func(ctx context.Context) error { verifier.Run(ctx, 5*time.Second); return nil },
	}
	if o.AuditRetention > 0 {
		leaderWork = append(leaderWork, func(ctx context.Context) error {
			auditstore.RunRetention(ctx, st, o.AuditRetention, time.Hour, nil, o.Logger)
			return nil
		})
	}
	a.leading = prometheus.NewGauge(prometheus.GaugeOpts{Name: "remedy_leader",
		Help: "1 while this replica leads (consumes signals and results, runs the expiry, verification and retention loops)."})
	a.Registry.MustRegister(a.leading)
	a.goRun(func() error { return a.consume(runCtx, a.Engine, leaderWork...) })
	// Every replica answers agents' run checks (from the shared ledger) and hears their
	// heartbeats.
	a.goRun(func() error { return transport.ServeAgents(runCtx, a.NATS, a.Engine, o.Logger) })

	hook := alertmanager.NewHandler(alertmanager.Options{Sink: a.Engine, BearerToken: o.WebhookToken, MaxBody: o.MaxBody,
		MaxAlerts: o.MaxAlerts, Identify: requesterOf(tokens), Logger: o.Logger})
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", o.Listen, err)
	}
	a.addr, a.scheme = ln.Addr().String(), "http"
	if o.TLS.Enabled() {
		cfg, err := mtls.ServerConfig(o.TLS, o.Logger)
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln, a.scheme = tls.NewListener(ln, cfg), "https"
	}
	approvals := approval.Handler(approval.HandlerOptions{Service: a.Approvals, Sessions: sessions, Switch: a.Guards})
	incidents := a.incidentsPage(st, sessions)
	a.srv = &http.Server{
		Handler:           api.Handler(api.Options{Webhook: hook, Store: st, Policy: a.Policy, Gatherer: a.Registry, Ready: a.ready, Approvals: approvals, Incidents: incidents, Authorize: auditAuth(tokens), MetricsOpen: o.MetricsOpen}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Refused handshakes (no or a foreign client certificate) are logged here.
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	a.goRun(func() error {
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	o.Logger.Info("remedy engine started", "listen", a.addr, "nats", a.natsURL, "embedded_nats", a.ns != nil,
		"policy_revision", pol.Revision, "policy_files", len(pol.Files), "dry_run", o.DryRun, "actions", reg.Actions())
	return a, nil
}

// startNATSAuth answers the auth callout on every replica (a queue group shares the
// work): a replica that is not the leader still lets agents in.
func (a *App) startNATSAuth(o Options) error {
	if o.NATSAuth == nil {
		return nil
	}
	if a.kube == nil {
		return errors.New("nats auth callout: needs the Kubernetes API for token reviews (--kubeconfig or --in-cluster)")
	}
	na := o.NATSAuth
	if na.Namespace == "" || na.ServiceAccount == "" {
		return errors.New("nats auth callout: the agents' namespace and ServiceAccount are required")
	}
	svc, err := natsauth.Start(a.NATS, natsauth.Options{
		Issuer:   na.Issuer,
		Reviewer: natsauth.KubeReviewer{Client: a.kube.Client, Namespace: na.Namespace, ServiceAccount: na.ServiceAccount, Audience: na.Audience},
		Logger:   o.Logger,
	})
	if err != nil {
		return err
	}
	a.natsAuth = svc
	return nil
}

// ShippedActions is every action remedy ships, node and cluster, for checking policies:
// a policy is judged against the whole catalogue, whether or not this engine runs the
// cluster actions (a decision for one it lacks is refused and audited when made).
func ShippedActions() *executors.Registry {
	reg := executors.NewRegistry()
	_ = reg.Add(executors.OnNode, catalog.Node(catalog.Options{})...)
	_ = reg.Add(executors.InCluster, kubeexec.Cluster(nil, kubeexec.Options{})...)
	return reg
}

// auditPolicy records a policy load (policy.loaded) or a rejected change
// (policy.rejected, with the error and the revision that keeps running).
func (a *App) auditPolicy(ev policy.Event) {
	detail := map[string]any{"source": ev.Source, "previous": ev.Previous, "files": ev.Files, "tests": ev.Tests}
	e := audit.Event{Type: audit.PolicyLoaded, Actor: audit.ActorEngine, Outcome: audit.OutcomeOK, PolicyRev: ev.Revision}
	if !ev.Loaded {
		detail["error"] = ev.Err.Error()
		e.Type, e.Outcome, e.PolicyRev = audit.PolicyRejected, audit.OutcomeRefused, ev.Previous
	}
	e.Detail, _ = json.Marshal(detail)
	e.Key = fmt.Sprintf("%s:%s:%d", e.Type, e.PolicyRev, time.Now().UnixNano())
	if _, err := a.Store.Append(context.Background(), e); err != nil {
		a.log.Error("audit policy change", "type", e.Type, "err", err)
	}
}

func (a *App) goRun(f func() error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := f(); err != nil {
			a.log.Error("component stopped", "err", err)
		}
	}()
}

func (a *App) ready() error {
	if a.NATS == nil || !a.NATS.IsConnected() {
		return errors.New("nats not connected")
	}
	return nil
}

// Stop shuts down in reverse order: HTTP first (no new work), then consumers and
// engine, then NATS and the store.
func (a *App) Stop() {
	a.stopOnce.Do(func() {
		if a.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = a.srv.Shutdown(ctx)
			cancel()
		}
		if a.cancel != nil {
			a.cancel()
		}
		if a.Engine != nil {
			a.Engine.Stop()
		}
		a.wg.Wait()
		if a.natsAuth != nil {
			a.natsAuth.Stop()
		}
		if a.kube != nil {
			a.kube.Stop()
		}
		if a.NATS != nil {
			a.NATS.Close()
		}
		if a.ns != nil {
			a.ns.Shutdown()
			a.ns.WaitForShutdown()
		}
		if a.Store != nil {
			_ = a.Store.Close()
		}
	})
}

// Run starts the engine and blocks until ctx ends.
func Run(ctx context.Context, o Options) error {
	a, err := Start(ctx, o)
	if err != nil {
		return err
	}
	<-ctx.Done()
	a.Stop()
	return nil
}
