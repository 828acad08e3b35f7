package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/remedyhq/remedy/engine/approval"
)

// approvalsCmd runs `remedy approvals list|show|approve|reject`.
func approvalsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("approvals: use list, show, approve or reject")
	}
	verb := args[0]
	fs, c := clientFlags("remedy approvals "+verb, stderr)
	all := fs.Bool("all", false, "list decided requests too")
	format := fs.String("o", "table", "output: table or json")
	reason := fs.String("reason", "", "why (required to approve or reject)")
	id, err := parseWithID(fs, args[1:], verb != "list")
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		list, err := c().List(ctx, *all)
		if err != nil {
			return err
		}
		if *format == "json" {
			return writeJSONOut(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tACTION\tNODE\tRISK\tVOTES\tREQUESTED BY\tEXPIRES\tREASON")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.ID, r.State, r.Held.Request.Action, r.Held.Request.Node,
				r.Held.Decision.Risk, len(r.Votes), r.NeedVotes, r.Held.Requester, r.ExpiresAt.UTC().Format(time.RFC3339), r.Held.Decision.Reason)
		}
		return tw.Flush()
	case "show":
		r, err := c().Get(ctx, id)
		if err != nil {
			return err
		}
		return writeJSONOut(stdout, r)
	case "approve", "reject":
		if strings.TrimSpace(*reason) == "" {
			return errors.New("--reason is required")
		}
		do := c().Approve
		if verb == "reject" {
			do = c().Reject
		}
		r, err := do(ctx, id, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s: %s (%d of %d approvals)\n", verb, r.ID, r.State, len(r.Votes), r.NeedVotes)
		return nil
	}
	return fmt.Errorf("approvals %s: use list, show, approve or reject", verb)
}

// pauseCmd runs `remedy pause` (resume false) and `remedy resume`.
func pauseCmd(ctx context.Context, resume bool, args []string, stdout, stderr io.Writer) error {
	name := "remedy pause"
	if resume {
		name = "remedy resume"
	}
	fs, c := clientFlags(name, stderr)
	reason := fs.String("reason", "", "why (required)")
	kind := fs.String("kind", "", "resume: close this kind's storm breaker instead of the kill switch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return errors.New("--reason is required")
	}
	var st any
	var err error
	if resume {
		st, err = c().Resume(ctx, *kind, *reason)
	} else {
		st, err = c().Pause(ctx, *reason)
	}
	if err != nil {
		return err
	}
	return writeJSONOut(stdout, st)
}

// clientFlags adds --server and --token-file; the token comes from the file or
// REMEDY_TOKEN and is never printed. --tls-ca, --tls-cert and --tls-key reach an engine
// serving https, with a client certificate when it requires one (serve --tls-client-ca).
func clientFlags(name string, stderr io.Writer) (*flag.FlagSet, func() *approval.Client) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://127.0.0.1:9095", "engine HTTP API")
	tokenFile := fs.String("token-file", "", "file holding your API token (default: $REMEDY_TOKEN)")
	caFile := fs.String("tls-ca", "", "CA bundle that signed the engine's certificate (default: the system's)")
	certFile := fs.String("tls-cert", "", "client certificate, for an engine that requires mutual TLS")
	keyFile := fs.String("tls-key", "", "the client certificate's key")
	return fs, func() *approval.Client {
		tok := os.Getenv("REMEDY_TOKEN")
		if *tokenFile != "" {
			if b, err := os.ReadFile(*tokenFile); err == nil {
				tok = string(trimSpace(b))
			}
		}
		return &approval.Client{BaseURL: *server, Token: tok, HTTP: httpClient(*caFile, *certFile, *keyFile)}
	}
}

// httpClient is the CLI's HTTP client: the default one, or one with the TLS files given.
// A file that does not load makes every request fail with that error.
func httpClient(caFile, certFile, keyFile string) *http.Client {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	err := func() error {
		if caFile != "" {
			b, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("--tls-ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(b) {
				return fmt.Errorf("--tls-ca %s: no PEM certificate in it", caFile)
			}
		}
		if (certFile == "") != (keyFile == "") {
			return errors.New("--tls-cert and --tls-key go together")
		}
		if certFile != "" {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		return nil
	}()
	if err != nil {
		return &http.Client{Transport: failing{err}}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment}}
}

// failing is a transport that fails every request with err.
type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// parseWithID parses flags before and after one positional id.
func parseWithID(fs *flag.FlagSet, args []string, need bool) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	id := ""
	if fs.NArg() > 0 {
		id = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return "", err
		}
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if need && id == "" {
		return "", errors.New("an approval id is required")
	}
	return id, nil
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
