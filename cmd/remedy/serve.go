package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/engine/app"
	"github.com/remedyhq/remedy/engine/demo"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/executors/signed"
	"github.com/remedyhq/remedy/webhooks/alertmanager"
)

func serveCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the engine (embedded NATS and SQLite by default)",
		Long: `Run the engine: the Alertmanager webhook, the policy, the guards, the dispatch to the
agents, the audit log and the HTTP API, until SIGINT or SIGTERM.

Files given by flag are named --*-file; the old names (--signing-key, --guards,
--approvers, --tls-cert, --tls-key, --tls-client-ca) still work and print a deprecation note.`,
		Args: cli.NoArgs,
	}
	options := serveFlags(c.Flags())
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		o, err := options(cmd)
		if err != nil {
			return err
		}
		return app.Run(cmd.Context(), o)
	}
	return c
}

// serveFlags is every flag of `remedy serve` and how it becomes app.Options: the one place
// that maps the command line onto the engine's options.
func serveFlags(fs *pflag.FlagSet) func(*cobra.Command) (app.Options, error) {
	var o app.Options
	fs.StringVar(&o.DataDir, "data-dir", "data", "directory for the audit log and the embedded JetStream store")
	fs.StringVar(&o.PolicyDir, "policies", "policies", "directory or bundle of Rego policies and data")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:9095", "HTTP address for the webhook, API and metrics")
	fs.StringVar(&o.NATSURL, "nats-url", "", "external NATS URL (default: run an embedded NATS server)")
	fs.IntVar(&o.NATSReplicas, "nats-replicas", 1, "replicas of remedy's JetStream streams on an external NATS cluster (3 on a 3-node cluster)")
	fs.StringVar(&o.NATSListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server")
	fs.BoolVar(&o.DryRun, "dry-run", false, "make every action a dry run")
	fs.DurationVar(&o.ActionTTL, "action-ttl", 10*time.Minute, "how long a dispatched action stays worth running")
	fs.StringVar(&o.GuardsFile, "guards-file", "", "guards and approvals file (docs/guards.md; default: built-in defaults)")
	fs.StringVar(&o.ApproversFile, "approvers-file", "", "file mapping API tokens to identities and roles")
	fs.Int64Var(&o.MaxBody, "webhook-max-body", 1<<20, "webhook body limit in bytes")
	tokenFile := fs.String("webhook-token-file", "", cli.Env("file holding the bearer token the webhook requires; the token itself may be given", "REMEDY_WEBHOOK_TOKEN"))
	fs.StringVar(&o.TLS.Cert, "tls-cert-file", "", "PEM certificate (chain): serve the webhook and API over HTTPS (reloaded when it changes)")
	fs.StringVar(&o.TLS.Key, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&o.TLS.ClientCA, "tls-client-ca-file", "", "PEM CA certificates: require and verify a client certificate they signed (mutual TLS)")
	fs.StringVar(&o.AuditDSN, "audit-dsn", "", "audit store: postgres://… for PostgreSQL (default: SQLite in --data-dir)")
	auditKey := fs.String("audit-key-file", "", "key that signs audit retention checkpoints (docs/audit.md)")
	fs.DurationVar(&o.AuditRetention, "audit-retention", 0, "remove audit rows older than this, leaving a signed checkpoint (0: keep all)")
	keyFile := fs.String("signing-key-file", "", "ed25519 private key (PEM) that signs every action (remedy keygen makes one)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	kubeOptions := kubeFlags(fs)
	natsAuth := natsAuthFlags(fs)
	// The doors: the policy's deadline, the webhook's alert cap, /metrics, sessions of the
	// browser pages.
	fs.IntVar(&o.MaxAlerts, "webhook-max-alerts", alertmanager.DefaultMaxAlerts, "most alerts in one webhook; more are refused with 413")
	fs.BoolVar(&o.MetricsOpen, "metrics-open", false, "serve /metrics without a token when --approvers-file protects the API (for scrapers that cannot send one)")
	fs.DurationVar(&o.PolicyEvalTimeout, "policy-eval-timeout", policy.DefaultEvalTimeout, "deadline of one policy evaluation; one cut off is recorded as a policy_error")
	fs.DurationVar(&o.SessionTTL, "session-ttl", 12*time.Hour, "how long a login to the approvals page lasts")
	fs.StringArrayVar(&o.TrustedOrigins, "trusted-origin", nil, "another origin whose pages may post to the approvals page (a reverse proxy's public https://host; repeatable)")
	for old, new := range map[string]string{"guards": "guards-file", "approvers": "approvers-file", "tls-cert": "tls-cert-file",
		"tls-key": "tls-key-file", "tls-client-ca": "tls-client-ca-file", "signing-key": "signing-key-file"} {
		cli.Alias(fs, old, new)
	}
	return func(cmd *cobra.Command) (app.Options, error) {
		ko, err := kubeOptions()
		if err != nil {
			return o, err
		}
		o.Kube = ko
		if o.NATSAuth, err = natsAuth(); err != nil {
			return o, err
		}
		if *tokenFile != "" {
			if o.WebhookToken, err = readSecretFile("webhook-token-file", *tokenFile); err != nil {
				return o, err
			}
		} else if env := os.Getenv("REMEDY_WEBHOOK_TOKEN"); env != "" {
			o.WebhookToken = env
		}
		if *keyFile != "" {
			if o.SigningKey, err = signed.LoadPrivateKey(*keyFile); err != nil {
				return o, err
			}
		}
		if *auditKey != "" {
			if o.AuditKey, err = loadAuditKey(*auditKey); err != nil {
				return o, err
			}
		}
		o.Logger, err = newLogger(cmd.ErrOrStderr(), *level)
		return o, err
	}
}

func demoCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run an engine, agents and sample alerts on this machine (dry run unless --live)",
		Args:  cli.NoArgs,
	}
	var o demo.Options
	fs := c.Flags()
	fs.StringVar(&o.PolicyDir, "policies", "", "directory of Rego policies and data (default: the shipped library built in)")
	fs.StringVar(&o.PayloadDir, "payloads", "", "directory of sample Alertmanager webhook payloads (default: the samples built in)")
	fs.StringVar(&o.DataDir, "data-dir", "", "keep the engine's data here (default: a temporary directory)")
	fs.BoolVar(&o.Live, "live", false, "let the agents really change this machine (default: dry run)")
	fs.DurationVar(&o.Timeout, "timeout", 20*time.Second, "how long to wait for decisions and results")
	level := fs.String("log-level", "warn", "log level of the engine and agents")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		log, err := newLogger(cmd.ErrOrStderr(), *level)
		if err != nil {
			return err
		}
		o.Logger = log
		return demo.Run(cmd.Context(), o, cmd.OutOrStdout())
	}
	return c
}

func keygenCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "keygen",
		Short: "Make the ed25519 key pair that signs actions",
		Args:  cli.NoArgs,
	}
	fs := c.Flags()
	priv := fs.String("key-file", "signing.key", "where to write the engine's private key")
	pub := fs.String("pub-file", "signing.pub", "where to write the agents' public key")
	cli.Alias(fs, "key", "key-file")
	cli.Alias(fs, "pub", "pub-file")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := signed.GenerateKey(*priv, *pub); err != nil {
			return err
		}
		_, err := fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (remedy serve --signing-key-file) and %s (remedy-agent run --verify-key-file)\n", *priv, *pub)
		return err
	}
	return c
}
