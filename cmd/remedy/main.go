// Command remedy is the remediation engine and its CLI: `remedy serve` runs the engine,
// `remedy policy eval` asks the policy what it would decide, `remedy audit query` reads the
// audit log, `remedy approvals` and `remedy pause` are the operator's levers, and `remedy
// demo` runs everything on one machine.
//
// The command model (cmd/internal/cli, spf13/cobra) is kubectl's: -h/--help prints to
// standard output and exits 0, a usage mistake exits 2, a command that ran and failed exits 1.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"
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

// Command groups of `remedy --help`. demo and bench are in their own group at the end: they
// run on one machine to try remedy or measure it, not against an installation, and keeping
// their names keeps `make demo`, `make bench` and BENCHMARKS.md's command lines working.
const (
	groupRun     = "run"
	groupOperate = "operate"
	groupPolicy  = "policy"
	groupTry     = "try"
)

func newRoot() *cobra.Command {
	root := cli.Root(&cobra.Command{
		Use:   "remedy",
		Short: "Policy-driven remediation engine",
		Long: `remedy — policy-driven remediation engine.

Exit codes: 0 success; 1 the command ran and failed (a refused request, a broken audit
chain, failing policy tests); 2 a usage mistake (unknown command or flag, bad value).`,
		Args: cli.Args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	})
	root.AddGroup(
		&cobra.Group{ID: groupRun, Title: "Run the engine:"},
		&cobra.Group{ID: groupOperate, Title: "Operate a running engine:"},
		&cobra.Group{ID: groupPolicy, Title: "Write and check policy:"},
		&cobra.Group{ID: groupTry, Title: "Try and measure on this machine:"},
	)
	add := func(group string, cs ...*cobra.Command) {
		for _, c := range cs {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add(groupRun, serveCommand(), keygenCommand())
	add(groupOperate, approvalsCommand(), pauseCommand(false), pauseCommand(true), auditCommand(), reportCommand())
	add(groupPolicy, policyCommand())
	add(groupTry, demoCommand(), benchCommand())
	root.AddCommand(cli.VersionCommand("remedy"))
	return root
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, cli.Usagef("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// readSecretFile reads a token file, without its trailing newline.
func readSecretFile(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return string(trimSpace(b)), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
