// Command remedy-agent is remedy's node executor: `remedy-agent run --node N` executes
// the actions the engine dispatches to node N. It is deliberately lean (no OPA,
// client-go, nats-server or SQL drivers) because it runs on every node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/agent/scan"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/executors/signed"
)

const usage = `remedy-agent — remedy's node executor

Usage:
  remedy-agent run  --node NAME [flags]   detect conditions and execute the actions dispatched to this node
  remedy-agent scan [flags]               one-shot diagnosis: run every detector over N scans and print the evidence
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "remedy-agent:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return runAgent(ctx, args[1:], stderr)
	case "scan":
		return scan.Run(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runAgent(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o agent.Options
	hostname, _ := os.Hostname()
	fs.StringVar(&o.Node, "node", envOr("NODE_NAME", hostname), "this node's name (default $NODE_NAME or the hostname)")
	fs.StringVar(&o.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS URL")
	fs.StringVar(&o.NATSTokenFile, "nats-token-file", "", "connect with this token, read again on every reconnect: the pod's projected ServiceAccount token, for the engine's auth callout")
	fs.StringVar(&o.StateDir, "state-dir", "/var/lib/remedy-agent", "directory for the action journal")
	fs.BoolVar(&o.DryRun, "dry-run", false, "report what each action would change, change nothing")
	fs.BoolVar(&o.AskEngine, "ask-engine", true, "before running an action the journal has never seen, ask the engine whether it is still to be run (run-once after a lost state directory)")
	fs.DurationVar(&o.ActionTimeout, "action-timeout", 2*time.Minute, "time limit of one action")
	hostRoot := fs.String("host-root", "/", "where the host's / is mounted (/host in a pod)")
	verifyKey := fs.String("verify-key", "", "engine's ed25519 public key (PEM); when set, unsigned or wrongly signed actions are refused")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.MetricsListen, "metrics-listen", ":9102", "address of /metrics (empty: none)")
	detectOn := fs.Bool("detect", true, "run the node detectors and publish their signals")
	var d agent.Detection
	fs.DurationVar(&d.Runner.Interval, "scan-interval", time.Second, "detector scan interval")
	fs.IntVar(&d.Runner.FireAfter, "fire-after", 3, "consecutive scans a condition must hold before it fires")
	fs.IntVar(&d.Runner.ResolveAfter, "resolve-after", 0, "consecutive clear scans before a firing condition resolves (default: --fire-after)")
	fs.BoolVar(&d.Detectors.DriverStats, "driver-stats", true, "read NIC driver counters (ethtool -S)")
	fs.StringVar(&d.Detectors.IMDSEndpoint, "imds-endpoint", "", "Azure IMDS scheduled events URL (enables the Freeze event detector)")
	fs.StringVar(&d.Detectors.VMName, "vm-name", "", "this VM's name in scheduled events")
	fs.Func("interfaces", "comma-separated NICs to watch (default: every device-backed NIC)", func(v string) error {
		d.Detectors.Interfaces = splitList(v)
		return nil
	})
	fs.Func("disable", "comma-separated detectors to leave out: irq, drops, psi, freeze", func(v string) error {
		d.Detectors.Disable = splitList(v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *detectOn {
		d.Detectors.HostRoot, d.Detectors.Interval = *hostRoot, d.Runner.Interval
		o.Detect = &d
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l}))
	if *verifyKey != "" {
		k, err := signed.LoadPublicKey(*verifyKey)
		if err != nil {
			return err
		}
		o.VerifyKey = k
	} else {
		o.Logger.Warn("no --verify-key: actions are not authenticated; anyone who can publish on the action subject can act on this node")
	}
	o.Registry = executors.NewRegistry()
	if err := o.Registry.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: *hostRoot})...); err != nil {
		return err
	}
	return agent.Run(ctx, o)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
