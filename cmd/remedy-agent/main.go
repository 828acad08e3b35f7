// Command remedy-agent is remedy's node executor: `remedy-agent run --node N` executes
// the actions the engine dispatches to node N, `remedy-agent scan` is a one-shot diagnosis.
// It is deliberately lean (no OPA, client-go, nats-server or SQL drivers) because it runs on
// every node. Its command model is remedy's (cmd/internal/cli): -h exits 0, a usage mistake
// exits 2, a failure exits 1.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/agent"
	"github.com/remedyhq/remedy/agent/detect/freeze"
	"github.com/remedyhq/remedy/agent/scan"
	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/catalog"
	"github.com/remedyhq/remedy/executors/signed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, newRoot(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the exit, for tests: the error is a cli.UsageError for a usage mistake.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, err := cli.Run(ctx, newRoot(), args, stdout, stderr)
	return err
}

func newRoot() *cobra.Command {
	root := cli.Root(&cobra.Command{
		Use:   "remedy-agent",
		Short: "remedy's node executor",
		Long: `remedy-agent — remedy's node executor.

Exit codes: 0 success; 1 the command ran and failed; 2 a usage mistake (unknown command or
flag, bad value).`,
		Args: cli.Args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	})
	root.AddCommand(runCommand(), scanCommand(), cli.VersionCommand("remedy-agent"))
	return root
}

func runCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "run --node NAME",
		Short: "Detect conditions and execute the actions dispatched to this node",
		Args:  cli.NoArgs,
	}
	fs := c.Flags()
	var o agent.Options
	hostname, _ := os.Hostname()
	fs.StringVar(&o.Node, "node", "", "this node's name (default $NODE_NAME, else the host name)")
	fs.StringVar(&o.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS URL")
	fs.StringVar(&o.NATSTokenFile, "nats-token-file", "", "connect with this token, read again on every reconnect: the pod's projected ServiceAccount token, for the engine's auth callout")
	fs.StringVar(&o.StateDir, "state-dir", "/var/lib/remedy-agent", "directory for the action journal")
	fs.BoolVar(&o.DryRun, "dry-run", false, "report what each action would change, change nothing")
	fs.BoolVar(&o.AskEngine, "ask-engine", true, "before running an action the journal has never seen, ask the engine whether it is still to be run (run-once after a lost state directory)")
	fs.DurationVar(&o.ActionTimeout, "action-timeout", 2*time.Minute, "time limit of one action")
	hostRoot := fs.String("host-root", "/", "where the host's / is mounted (/host in a pod)")
	verifyKey := fs.String("verify-key-file", "", "engine's ed25519 public key (PEM); when set, unsigned or wrongly signed actions are refused")
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
	ifaces := fs.StringSlice("interfaces", nil, "comma-separated NICs to watch (default: every device-backed NIC)")
	disable := fs.StringSlice("disable", nil, "comma-separated detectors to leave out: irq, drops, psi, freeze")
	cli.Alias(fs, "verify-key", "verify-key-file")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if o.Node == "" {
			o.Node = os.Getenv("NODE_NAME")
		}
		if o.Node == "" {
			o.Node = hostname
		}
		if *detectOn {
			d.Detectors.Interfaces, d.Detectors.Disable = *ifaces, *disable
			d.Detectors.HostRoot, d.Detectors.Interval = *hostRoot, d.Runner.Interval
			o.Detect = &d
		}
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			return cli.Usagef("--log-level: %w", err)
		}
		o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: l}))
		if *verifyKey != "" {
			k, err := signed.LoadPublicKey(*verifyKey)
			if err != nil {
				return err
			}
			o.VerifyKey = k
		} else {
			o.Logger.Warn("no --verify-key-file: actions are not authenticated; anyone who can publish on the action subject can act on this node")
		}
		o.Registry = executors.NewRegistry()
		if err := o.Registry.Add(executors.OnNode, catalog.Node(catalog.Options{HostRoot: *hostRoot})...); err != nil {
			return err
		}
		return agent.Run(cmd.Context(), o)
	}
	return c
}

func scanCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "scan",
		Short: "One-shot diagnosis: run every detector over a few scans and print the evidence",
		Long: `Run every detector over --count scans, --interval apart (the first is a baseline), and
print what they found with the evidence: which IRQs sit on which CPUs, which counters grew,
which pods stall.`,
		Args: cli.NoArgs,
	}
	fs := c.Flags()
	var o scan.Options
	fs.StringVar(&o.HostRoot, "host-root", "/", "where the host's / is mounted (/host in a pod)")
	fs.DurationVar(&o.Interval, "interval", time.Second, "time between scans")
	fs.IntVar(&o.Count, "count", 3, "number of scans; the first is a baseline, so at least 2")
	fs.StringSliceVar(&o.Interfaces, "interfaces", nil, "comma-separated interfaces to watch (default: every NIC backed by a device)")
	fs.StringVar(&o.IMDS, "imds-endpoint", "", "Azure Scheduled Events URL, e.g. "+freeze.DefaultAzureEndpoint+" (default: off)")
	fs.BoolVar(&o.DriverStats, "driver-stats", true, "read the drivers' own counters (ethtool -S) in this network namespace")
	fs.StringSliceVar(&o.Disable, "disable", nil, "comma-separated detectors to leave out: irq, drops, psi, freeze")
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML)
	c.PreRunE = func(*cobra.Command, []string) error {
		if err := o.Check(); err != nil {
			return cli.UsageError{Err: err}
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		res, err := scan.Run(cmd.Context(), o, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		return out.Print(cmd.OutOrStdout(), res, func(w io.Writer) error { return scan.PrintTable(w, res) })
	}
	return c
}
