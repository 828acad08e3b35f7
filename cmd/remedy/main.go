// Command remedy is the remediation engine and its CLI: `remedy serve` runs the engine,
// `remedy demo` runs everything on one machine, `remedy policy eval` asks the policy
// what it would decide, and `remedy audit query` reads the audit log of a running
// engine.
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
	"syscall"
)

const usage = `remedy — policy-driven remediation engine

Usage:
  remedy serve        [flags]   run the engine (embedded NATS + SQLite by default)
  remedy demo         [flags]   run engine, agents and sample alerts on this machine
  remedy policy eval  [flags]   evaluate the policy for one signal or input document
  remedy policy test  [flags]   run the policy's Rego tests and catalogue check
  remedy policy replay [flags]  re-decide recorded signals with a candidate policy
  remedy audit query|show|verify|export [flags]
                                read, follow, verify and export the audit log
  remedy report       [flags]   effectiveness per action and kind for a time range
  remedy bench        [flags]   load-test the webhook path (in-process engine vs bare decode)
  remedy keygen       [flags]   make the ed25519 key pair that signs actions
  remedy approvals list|show|approve|reject [id] [flags]
                                actions waiting for a human
  remedy pause        --reason  stop all dispatch (the kill switch)
  remedy resume       --reason  [--kind K]  resume, or close a kind's storm breaker

Run "remedy <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "remedy:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "demo":
		return demoCmd(ctx, rest, stdout, stderr)
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr)
	case "keygen":
		return keygen(rest, stdout, stderr)
	case "policy":
		return policyCmd(ctx, rest, stdout, stderr)
	case "audit":
		return auditCmd(ctx, rest, stdout, stderr)
	case "approvals":
		return approvalsCmd(ctx, rest, stdout, stderr)
	case "report":
		return reportCmd(ctx, rest, stdout, stderr)
	case "pause", "resume":
		return pauseCmd(ctx, cmd == "resume", rest, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", joinArgs(args, 2))
}

func joinArgs(args []string, n int) string {
	if len(args) < n {
		n = len(args)
	}
	s := ""
	for i, a := range args[:n] {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
