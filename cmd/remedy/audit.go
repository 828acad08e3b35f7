package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/audit/sqlite"
	"github.com/remedyhq/remedy/engine/report"
)

// errChainBroken makes `remedy audit verify` fail when the chain is broken.
var errChainBroken = errors.New("audit chain broken")

func auditCommand() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "audit",
		Short: "Query, follow, show, verify and export the audit log",
	})
	c.AddCommand(auditQueryCommand(), auditShowCommand(), auditVerifyCommand(), auditExportCommand())
	return c
}

// filterFlags adds the audit filters and returns a function that gives those set as API
// query parameters.
func filterFlags(fs *pflag.FlagSet) func() url.Values {
	vals := map[string]*string{}
	for _, name := range []string{"node", "action", "kind", "type", "outcome", "actor", "correlation-id", "since", "until", "limit"} {
		usage := "only events with this " + name
		switch name {
		case "kind":
			usage = "only incidents of this signal kind: every event of an incident with a matching event, its dispatch and result too"
		case "actor":
			usage = "only events by this actor: engine, agent or user:<identity>"
		case "since", "until":
			usage = name + ": RFC 3339 time or a duration back from now (24h)"
		case "limit":
			usage = "at most this many events (default 1000; 20 with --follow)"
		}
		vals[name] = fs.String(name, "", usage)
	}
	return func() url.Values {
		q := url.Values{}
		for name, v := range vals {
			if *v != "" {
				q.Set(strings.ReplaceAll(name, "-", "_"), *v)
			}
		}
		return q
	}
}

// completeTypes completes --type with the audit event types.
func completeTypes(c *cobra.Command) {
	var types []string
	for _, t := range audit.Types() {
		types = append(types, string(t))
	}
	_ = c.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(types, cobra.ShellCompDirectiveNoFileComp))
}

// printEvents prints audit events in one of the -o formats.
func printEvents(w io.Writer, out *cli.Output, evs []audit.Event) error {
	switch out.Format {
	case cli.Table:
		return report.Table(w, evs)
	case cli.JSONL:
		return report.JSONL(w, evs)
	case cli.JSON:
		return report.JSON(w, evs)
	}
	if evs == nil {
		evs = []audit.Event{}
	}
	return out.Print(w, evs, nil)
}

func auditQueryCommand() *cobra.Command {
	c := &cobra.Command{Use: "query", Short: "Query the audit log by filters; --follow prints new events as they come", Args: cli.NoArgs}
	client := apiClientFlags(c)
	filters := filterFlags(c.Flags())
	completeTypes(c)
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML, cli.JSONL)
	follow := c.Flags().Bool("follow", false, "print the latest events, then new ones as they come (oldest first; -o table or jsonl)")
	every := c.Flags().Duration("interval", time.Second, "with --follow, how often to ask for new events")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *follow && out.Format != cli.Table && out.Format != cli.JSONL {
			return cli.Usagef("-o %s cannot follow: use table or jsonl", out.Format)
		}
		c, err := client()
		if err != nil {
			return err
		}
		q := filters()
		if !*follow {
			evs, err := c.Events(cmd.Context(), q)
			if err != nil {
				return err
			}
			return printEvents(cmd.OutOrStdout(), out, evs)
		}
		return followEvents(cmd.Context(), c, q, out, *every, cmd.OutOrStdout())
	}
	return c
}

// followEvents prints the latest matching events oldest first, then polls for newer
// ones by seq until ctx ends.
func followEvents(ctx context.Context, c *api.Client, q url.Values, out *cli.Output, every time.Duration, w io.Writer) error {
	if q.Get("limit") == "" {
		q.Set("limit", "20")
	}
	evs, err := c.Events(ctx, q)
	if err != nil {
		return err
	}
	slices.Reverse(evs)
	q.Del("limit")
	q.Set("order", "asc")
	header := out.Format == cli.Table
	for {
		if len(evs) > 0 {
			var buf bytes.Buffer
			if err := printEvents(&buf, out, evs); err != nil {
				return err
			}
			b := buf.Bytes()
			if out.Format == cli.Table && !header {
				_, b, _ = bytes.Cut(b, []byte("\n")) // the header is printed once
			}
			header = false
			if _, err := w.Write(b); err != nil {
				return err
			}
			q.Set("after_seq", strconv.FormatInt(evs[len(evs)-1].Seq, 10))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
		if evs, err = c.Events(ctx, q); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func auditShowCommand() *cobra.Command {
	c := &cobra.Command{Use: "show CORRELATION-ID", Short: "Show one incident as a timeline: signal, decision, approval, execution, verification",
		Args: cli.Args(cobra.ExactArgs(1))}
	client := apiClientFlags(c)
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML, cli.JSONL)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := client()
		if err != nil {
			return err
		}
		id := args[0]
		evs, err := c.Incident(cmd.Context(), id)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return fmt.Errorf("no audit events for correlation id %q", id)
		}
		if out.Format != cli.Table {
			return printEvents(cmd.OutOrStdout(), out, evs)
		}
		return printTimeline(cmd.OutOrStdout(), id, evs)
	}
	return c
}

// printTimeline prints one incident: signal → decision → approval → execution →
// verification, with each step's time since the first.
func printTimeline(w io.Writer, id string, evs []audit.Event) error {
	first := evs[0]
	fmt.Fprintf(w, "incident %s  node %s  kind %s  policy %s\n", id, dashed(first.Node), dashed(first.Kind), dashed(policyRev(evs)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tAFTER\tTYPE\tACTOR\tACTION\tOUTCOME\tDETAIL")
	for _, e := range evs {
		fmt.Fprintf(tw, "%d\t%s\t+%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("15:04:05.000"),
			e.Time.Sub(first.Time).Round(time.Millisecond), e.Type, dashed(e.Actor), dashed(e.Action), dashed(e.Outcome), report.Summary(e))
	}
	return tw.Flush()
}

func policyRev(evs []audit.Event) string {
	for _, e := range evs {
		if e.PolicyRev != "" {
			return e.PolicyRev
		}
	}
	return ""
}

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditVerifyCommand() *cobra.Command {
	c := &cobra.Command{Use: "verify", Short: "Verify the audit log's hash chain: the engine's, an export's, or a SQLite file's", Args: cli.NoArgs,
		Long: `Verify the audit log's hash chain and its retention checkpoint.

By default the running engine verifies its own log (--server). --export-file verifies a
complete JSONL export (remedy audit export); --db verifies a SQLite audit log file
offline, opened read-only, without an engine. Exit code 1 when the chain is broken.`}
	client := apiClientFlags(c)
	file := c.Flags().String("export-file", "", "verify this complete JSONL export instead of the engine's log")
	db := c.Flags().String("db", "", "verify this SQLite audit log file (data/audit.db) offline, read-only")
	keyFile := c.Flags().String("key-file", "", "with --export-file or --db: the checkpoint key (ed25519-pub:… is enough)")
	cli.Alias(c.Flags(), "file", "export-file")
	c.MarkFlagsMutuallyExclusive("export-file", "db")
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		var keys audit.Signer
		if *keyFile != "" {
			var err error
			if keys, err = loadAuditKey(*keyFile); err != nil {
				return err
			}
		}
		var rep audit.VerifyReport
		var err error
		switch {
		case *file != "":
			rep, err = verifyExport(*file, keys)
		case *db != "":
			rep, err = verifyDB(cmd.Context(), *db, keys)
		default:
			var c *api.Client
			if c, err = client(); err == nil {
				rep, err = c.Verify(cmd.Context())
			}
		}
		if err != nil {
			return err
		}
		if err := out.Print(cmd.OutOrStdout(), rep, func(w io.Writer) error { return verifyTable(w, rep) }); err != nil {
			return err
		}
		if rep.Break != nil {
			return errChainBroken
		}
		return nil
	}
	return c
}

func verifyExport(path string, keys audit.Signer) (audit.VerifyReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return audit.VerifyReport{}, err
	}
	defer f.Close()
	return audit.VerifyJSONL(f, keys)
}

func verifyTable(w io.Writer, rep audit.VerifyReport) error {
	if rep.Break != nil {
		_, err := fmt.Fprintf(w, "BROKEN at seq %d: %s (%d rows checked)\n", rep.Break.Seq, rep.Break.Reason, rep.Rows)
		return err
	}
	fmt.Fprintf(w, "intact: %d rows, seq %d..%d, head %s\n", rep.Rows, rep.First, rep.Last, dashed(rep.Head))
	if cp := rep.Checkpoint; cp != nil {
		fmt.Fprintf(w, "rows 1..%d removed by retention (before %s), checkpoint signed by %s\n",
			cp.ThroughSeq, cp.Before.Format(time.RFC3339), cp.KeyID)
	}
	return nil
}

func auditExportCommand() *cobra.Command {
	c := &cobra.Command{Use: "export", Short: "Export the audit log (or the filtered part) as JSONL, with its checkpoint", Args: cli.NoArgs}
	client := apiClientFlags(c)
	filters := filterFlags(c.Flags())
	completeTypes(c)
	out := c.Flags().String("out-file", "", "write to this file instead of standard output")
	cli.Alias(c.Flags(), "out", "out-file")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := client()
		if err != nil {
			return err
		}
		q := filters()
		if *out == "" {
			return c.Export(cmd.Context(), q, cmd.OutOrStdout())
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := c.Export(cmd.Context(), q, f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return c
}

// loadAuditKey reads a checkpoint key file (audit.ParseKey's format).
func loadAuditKey(path string) (audit.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	k, err := audit.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// verifyDB verifies a SQLite audit log file offline: opened read-only, no engine needed.
func verifyDB(ctx context.Context, path string, keys audit.Signer) (audit.VerifyReport, error) {
	st, err := sqlite.OpenReadOnly(path, audit.Options{})
	if err != nil {
		return audit.VerifyReport{}, err
	}
	defer st.Close()
	return audit.VerifyLog(ctx, st, keys)
}
