package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/report"
)

const auditUsage = `Usage:
  remedy audit query   [filters] [-o table|json|jsonl] [--follow]
  remedy audit show    [-o table|json|jsonl] <correlation-id>
  remedy audit verify  [--file export.jsonl --key-file KEY]
  remedy audit export  [filters] [--out FILE]
`

// errChainBroken makes `remedy audit verify` fail when the chain is broken.
var errChainBroken = errors.New("audit chain broken")

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "query":
		return auditQuery(ctx, args[1:], stdout, stderr)
	case "show":
		return auditShow(ctx, args[1:], stdout, stderr)
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "export":
		return auditExport(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, auditUsage)
	return fmt.Errorf("unknown command \"audit %s\"", args[0])
}

// auditFlags is clientFlags (--server, --token-file) for the audit API.
func auditFlags(name string, stderr io.Writer) (*flag.FlagSet, func() *api.Client) {
	fs, client := clientFlags(name, stderr)
	return fs, func() *api.Client {
		c := client()
		return &api.Client{BaseURL: c.BaseURL, Token: c.Token, HTTP: c.HTTP}
	}
}

// filterFlags adds the audit filters and returns them as API query parameters.
func filterFlags(fs *flag.FlagSet) url.Values {
	q := url.Values{}
	for _, name := range []string{"node", "action", "kind", "type", "outcome", "actor", "correlation-id", "since", "until", "limit"} {
		usage := "filter by " + name
		switch name {
		case "actor":
			usage = "filter by actor: engine, agent or user:<identity>"
		case "since", "until":
			usage = name + ": RFC 3339 time or a duration back from now (24h)"
		case "limit":
			usage = "at most this many events (default 1000; 20 with --follow)"
		}
		fs.Func(name, usage, func(v string) error {
			q.Set(strings.ReplaceAll(name, "-", "_"), v)
			return nil
		})
	}
	return q
}

func printEvents(w io.Writer, format string, evs []audit.Event) error {
	switch format {
	case "table":
		return report.Table(w, evs)
	case "json":
		return report.JSON(w, evs)
	case "jsonl":
		return report.JSONL(w, evs)
	}
	return fmt.Errorf("-o %q: use table, json or jsonl", format)
}

func auditQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, client := auditFlags("remedy audit query", stderr)
	q := filterFlags(fs)
	format := fs.String("o", "table", "output: table, json or jsonl")
	follow := fs.Bool("follow", false, "print the latest events, then new ones as they come (oldest first)")
	every := fs.Duration("interval", time.Second, "with --follow, how often to ask for new events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := client()
	if !*follow {
		evs, err := c.Events(ctx, q)
		if err != nil {
			return err
		}
		return printEvents(stdout, *format, evs)
	}
	if *format == "json" {
		return errors.New("-o json cannot follow: use table or jsonl")
	}
	return followEvents(ctx, c, q, *format, *every, stdout)
}

// followEvents prints the latest matching events oldest first, then polls for newer
// ones by seq until ctx ends.
func followEvents(ctx context.Context, c *api.Client, q url.Values, format string, every time.Duration, w io.Writer) error {
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
	header := format == "table"
	for {
		if len(evs) > 0 {
			var buf bytes.Buffer
			if err := printEvents(&buf, format, evs); err != nil {
				return err
			}
			out := buf.Bytes()
			if format == "table" && !header {
				_, out, _ = bytes.Cut(out, []byte("\n")) // the header is printed once
			}
			header = false
			if _, err := w.Write(out); err != nil {
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

func auditShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, client := auditFlags("remedy audit show", stderr)
	format := fs.String("o", "table", "output: table (a timeline), json or jsonl")
	id, err := parseWithID(fs, args, false)
	if err != nil {
		return err
	}
	if id == "" {
		return errors.New("remedy audit show: give a correlation id")
	}
	evs, err := client().Incident(ctx, id)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		return fmt.Errorf("no audit events for correlation id %q", id)
	}
	if *format != "table" {
		return printEvents(stdout, *format, evs)
	}
	return printTimeline(stdout, id, evs)
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

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, client := auditFlags("remedy audit verify", stderr)
	file := fs.String("file", "", "verify this complete JSONL export instead of the engine's log")
	keyFile := fs.String("key-file", "", "with --file: the checkpoint key (ed25519-pub:… is enough)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rep audit.VerifyReport
	if *file != "" {
		var keys audit.Signer
		if *keyFile != "" {
			var err error
			if keys, err = loadAuditKey(*keyFile); err != nil {
				return err
			}
		}
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		if rep, err = audit.VerifyJSONL(f, keys); err != nil {
			return err
		}
	} else {
		var err error
		if rep, err = client().Verify(ctx); err != nil {
			return err
		}
	}
	if rep.Break != nil {
		fmt.Fprintf(stdout, "BROKEN at seq %d: %s (%d rows checked)\n", rep.Break.Seq, rep.Break.Reason, rep.Rows)
		return errChainBroken
	}
	fmt.Fprintf(stdout, "intact: %d rows, seq %d..%d, head %s\n", rep.Rows, rep.First, rep.Last, dashed(rep.Head))
	if cp := rep.Checkpoint; cp != nil {
		fmt.Fprintf(stdout, "rows 1..%d removed by retention (before %s), checkpoint signed by %s\n",
			cp.ThroughSeq, cp.Before.Format(time.RFC3339), cp.KeyID)
	}
	return nil
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, client := auditFlags("remedy audit export", stderr)
	q := filterFlags(fs)
	out := fs.String("out", "", "write to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return client().Export(ctx, q, stdout)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := client().Export(ctx, q, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
