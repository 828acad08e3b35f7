// Package cli is the command model both binaries share (remedy and remedy-agent): spf13/cobra
// commands with kubectl's habits. -h/--help prints to standard output and exits 0; a usage
// mistake (unknown command or flag, a bad flag value, a missing argument) exits 2 with the
// error and a hint on standard error; a command that was understood but failed exits 1.
// Flags are parsed here and in cmd/ only: the packages the commands call take options.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed: a refused request, a broken chain, failed tests
	ExitUsage   = 2 // the command line was wrong: nothing was attempted
)

// UsageError marks an error as a mistake in the command line (exit 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var u UsageError
	return errors.As(err, &u)
}

// Root prepares a root command: errors are printed by Execute, not by cobra, help goes to
// standard output, flag errors are usage errors, and the commands are sorted as added.
func Root(c *cobra.Command) *cobra.Command {
	c.SilenceErrors, c.SilenceUsage = true, true
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{err} })
	cobra.EnableCommandSorting = false
	return c
}

// Group makes c a command that only holds subcommands: without one it prints its help (exit
// 0), with an unknown one it is a usage error (exit 2), as kubectl does.
func Group(c *cobra.Command) *cobra.Command {
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return c
}

// Args wraps a cobra positional-argument check so that its error is a usage error.
func Args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return UsageError{err}
		}
		return nil
	}
}

// NoArgs is cobra.NoArgs as a usage error.
var NoArgs = Args(cobra.NoArgs)

// Run runs root with args. An error from the command line, not from running the command,
// is a UsageError: everything cobra checks before a command's RunE starts (flags, arguments,
// required flags, unknown commands) is the command line's fault.
func Run(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) (*cobra.Command, error) {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ran := markRuns(root)
	cmd, err := root.ExecuteContextC(ctx)
	if cmd == nil {
		cmd = root
	}
	if err != nil && !IsUsage(err) && !*ran {
		err = UsageError{err}
	}
	return cmd, err
}

// Execute runs root with args and returns the exit code. The error, if any, is printed to
// stderr as "<root>: <error>", and a usage error is followed by where to find the usage.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	cmd, err := Run(ctx, root, args, stdout, stderr)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	if IsUsage(err) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return ExitUsage
	}
	return ExitFailure
}

// markRuns wraps every RunE in the tree so Execute can tell whether one started.
func markRuns(root *cobra.Command) *bool {
	ran := new(bool)
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		plainBools(c.Flags())
		plainBools(c.PersistentFlags())
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error {
				*ran = true
				warnDeprecated(cmd)
				return run(cmd, args)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return ran
}

// plainBool is a bool flag's value without pflag's IsBoolFlag, so that help prints
// "--dry-run" rather than pflag 1.1's "--dry-run[=true|false]" (a bare --dry-run still
// means true: that is the flag's NoOptDefVal, and --dry-run=false still works).
type plainBool struct{ pflag.Value }

func plainBools(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if _, done := f.Value.(plainBool); !done && f.Value.Type() == "bool" {
			f.Value = plainBool{f.Value}
		}
	})
}

// Main runs root with the process's arguments and exits with its code.
func Main(ctx context.Context, root *cobra.Command) {
	os.Exit(Execute(ctx, root, os.Args[1:], os.Stdout, os.Stderr))
}

// Alias registers old as a deprecated name of the flag new, sharing its value: existing
// command lines and manifests keep working, help shows only the new name, and using the old
// one prints a deprecation note on stderr.
func Alias(fs *pflag.FlagSet, old, new string) {
	f := fs.Lookup(new)
	if f == nil {
		panic("cli.Alias: no flag --" + new)
	}
	a := *f
	a.Name, a.Shorthand, a.Usage, a.Annotations = old, "", "deprecated: use --"+new, nil
	fs.AddFlag(&a)
	Deprecate(fs, old, "use --"+new)
}

// deprecated is the annotation that holds a deprecated flag's note.
const deprecated = "remedy.deprecated"

// Deprecate hides a flag from help and makes its use print "Flag --name has been
// deprecated, note" on stderr. (pflag's MarkDeprecated prints through cobra's output
// writer, which is standard output once a command's output is set.)
func Deprecate(fs *pflag.FlagSet, name, note string) {
	f := fs.Lookup(name)
	f.Hidden = true
	_ = fs.SetAnnotation(name, deprecated, []string{note})
}

func warnDeprecated(cmd *cobra.Command) {
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if note := f.Annotations[deprecated]; len(note) > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "Flag --%s has been deprecated, %s\n", f.Name, note[0])
		}
	})
}

// Env says in a flag's usage which environment variable sets it.
func Env(usage, name string) string { return usage + " (env " + name + ")" }

// FromEnv sets each named flag that was not given on the command line from its environment
// variable, so that a flag beats the environment and the environment beats the default.
func FromEnv(fs *pflag.FlagSet, flagToEnv map[string]string) error {
	given := map[pflag.Value]bool{} // by value: a flag given by an Alias's old name counts
	fs.Visit(func(f *pflag.Flag) { given[f.Value] = true })
	for name, env := range flagToEnv {
		f := fs.Lookup(name)
		if f == nil || given[f.Value] {
			continue
		}
		if v, ok := os.LookupEnv(env); ok && v != "" {
			if err := f.Value.Set(v); err != nil {
				return Usagef("$%s: %v", env, err)
			}
		}
	}
	return nil
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(v string) []string {
	var out []string
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
