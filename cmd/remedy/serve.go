package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/demo"
	"github.com/remedyhq/remedy/executors/signed"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o app.Options
	fs.StringVar(&o.DataDir, "data-dir", "data", "directory for the audit log and the embedded JetStream store")
	fs.StringVar(&o.PolicyDir, "policies", "", "directory of Rego policies and data (default: the shipped library built in)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:9095", "HTTP address for the webhook, API and metrics")
	fs.StringVar(&o.NATSURL, "nats-url", "", "external NATS URL (default: run an embedded NATS server)")
	fs.IntVar(&o.NATSReplicas, "nats-replicas", 1, "replicas of remedy's JetStream streams on an external NATS cluster (3 on a 3-node cluster)")
	fs.StringVar(&o.NATSListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server")
	fs.BoolVar(&o.DryRun, "dry-run", false, "make every action a dry run")
	fs.DurationVar(&o.ActionTTL, "action-ttl", 10*time.Minute, "how long a dispatched action stays worth running")
	fs.StringVar(&o.GuardsFile, "guards", "", "guards and approvals file (docs/guards.md; default: built-in defaults)")
	fs.StringVar(&o.ApproversFile, "approvers", "", "file mapping API tokens to identities and roles")
	fs.Int64Var(&o.MaxBody, "webhook-max-body", 1<<20, "webhook body limit in bytes")
	tokenFile := fs.String("webhook-token-file", "", "file holding the bearer token the webhook requires")
	fs.StringVar(&o.TLS.Cert, "tls-cert", "", "PEM certificate (chain): serve the webhook and API over HTTPS (reloaded when it changes)")
	fs.StringVar(&o.TLS.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.TLS.ClientCA, "tls-client-ca", "", "PEM CA certificates: require and verify a client certificate they signed (mutual TLS)")
	fs.StringVar(&o.AuditDSN, "audit-dsn", "", "audit store: postgres://… for PostgreSQL (default: SQLite in --data-dir)")
	auditKey := fs.String("audit-key-file", "", "key that signs audit retention checkpoints (docs/audit.md)")
	fs.DurationVar(&o.AuditRetention, "audit-retention", 0, "remove audit rows older than this, leaving a signed checkpoint (0: keep all)")
	keyFile := fs.String("signing-key", "", "ed25519 private key (PEM) that signs every action (remedy keygen makes one)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	kubeOptions := kubeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ko, err := kubeOptions()
	if err != nil {
		return err
	}
	o.Kube = ko
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		o.WebhookToken = string(trimSpace(b))
	}
	if *keyFile != "" {
		k, err := signed.LoadPrivateKey(*keyFile)
		if err != nil {
			return err
		}
		o.SigningKey = k
	}
	if *auditKey != "" {
		k, err := loadAuditKey(*auditKey)
		if err != nil {
			return err
		}
		o.AuditKey = k
	}
	if env := os.Getenv("REMEDY_WEBHOOK_TOKEN"); env != "" && o.WebhookToken == "" {
		o.WebhookToken = env
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	o.Logger = log
	return app.Run(ctx, o)
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o demo.Options
	fs.StringVar(&o.PolicyDir, "policies", "", "directory of Rego policies and data (default: the shipped library built in)")
	fs.StringVar(&o.PayloadDir, "payloads", "", "directory of sample Alertmanager webhook payloads (default: the samples built in)")
	fs.StringVar(&o.DataDir, "data-dir", "", "keep the engine's data here (default: a temporary directory)")
	fs.BoolVar(&o.Live, "live", false, "let the agents really change this machine (default: dry run)")
	fs.DurationVar(&o.Timeout, "timeout", 20*time.Second, "how long to wait for decisions and results")
	level := fs.String("log-level", "warn", "log level of the engine and agents")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	o.Logger = log
	return demo.Run(ctx, o, stdout)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	priv := fs.String("key", "signing.key", "where to write the engine's private key")
	pub := fs.String("pub", "signing.pub", "where to write the agents' public key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := signed.GenerateKey(*priv, *pub); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "wrote %s (remedy serve --signing-key) and %s (remedy-agent run --verify-key)\n", *priv, *pub)
	return err
}
