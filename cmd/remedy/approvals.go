package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/approval"
	"github.com/remedyhq/remedy/engine/guard"
)

func approvalsCommand() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:     "approvals",
		Aliases: []string{"approval"},
		Short:   "List, show, approve and reject the actions waiting for a human",
	})
	list := &cobra.Command{Use: "list", Short: "List pending approval requests (--all: decided ones too)", Args: cli.NoArgs}
	listClient := clientFlags(list)
	all := list.Flags().Bool("all", false, "list decided requests too")
	listOut := cli.OutputFlag(list, cli.Table, cli.JSON, cli.YAML)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := listClient()
		if err != nil {
			return err
		}
		rs, err := c.List(cmd.Context(), *all)
		if err != nil {
			return err
		}
		if rs == nil {
			rs = []approval.Request{}
		}
		return listOut.Print(cmd.OutOrStdout(), rs, func(w io.Writer) error { return approvalTable(w, rs) })
	}

	show := &cobra.Command{Use: "show ID", Short: "Show one approval request: what would run, why, and the votes so far", Args: cli.Args(cobra.ExactArgs(1))}
	showClient := clientFlags(show)
	showOut := cli.OutputFlag(show, cli.Table, cli.JSON, cli.YAML)
	show.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := showClient()
		if err != nil {
			return err
		}
		r, err := c.Get(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return showOut.Print(cmd.OutOrStdout(), r, func(w io.Writer) error { return approvalTable(w, []approval.Request{r}) })
	}
	c.AddCommand(list, show, voteCommand("approve"), voteCommand("reject"))
	return c
}

// voteCommand is `remedy approvals approve|reject ID --reason R`.
func voteCommand(verb string) *cobra.Command {
	c := &cobra.Command{Use: verb + " ID --reason WHY", Short: strings.ToUpper(verb[:1]) + verb[1:] + " a pending request (your vote, with why)",
		Args: cli.Args(cobra.ExactArgs(1))}
	client := clientFlags(c)
	reason := c.Flags().String("reason", "", "why (required; recorded in the audit log)")
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if strings.TrimSpace(*reason) == "" {
			return cli.Usagef("--reason is required")
		}
		c, err := client()
		if err != nil {
			return err
		}
		do := c.Approve
		if verb == "reject" {
			do = c.Reject
		}
		r, err := do(cmd.Context(), args[0], *reason)
		if err != nil {
			return err
		}
		return out.Print(cmd.OutOrStdout(), r, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s %s: %s (%d of %d approvals)\n", verb, r.ID, r.State, len(r.Votes), r.NeedVotes)
			return err
		})
	}
	return c
}

func approvalTable(w io.Writer, list []approval.Request) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tACTION\tNODE\tRISK\tVOTES\tREQUESTED BY\tEXPIRES\tREASON")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.ID, r.State, r.Held.Request.Action, r.Held.Request.Node,
			r.Held.Decision.Risk, len(r.Votes), r.NeedVotes, r.Held.Requester, r.ExpiresAt.UTC().Format(time.RFC3339), r.Held.Decision.Reason)
	}
	return tw.Flush()
}

// pauseCommand is `remedy pause` (resume false) and `remedy resume`.
func pauseCommand(resume bool) *cobra.Command {
	c := &cobra.Command{Use: "pause --reason WHY", Short: "Stop all dispatch (the kill switch)", Args: cli.NoArgs}
	if resume {
		c.Use, c.Short = "resume --reason WHY [--kind K]", "Resume dispatch, or close one kind's storm breaker"
	}
	client := clientFlags(c)
	reason := c.Flags().String("reason", "", "why (required; recorded in the audit log)")
	var kind *string
	if resume {
		kind = c.Flags().String("kind", "", "close this kind's storm breaker instead of the kill switch")
	}
	out := cli.OutputFlag(c, cli.Table, cli.JSON, cli.YAML)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if strings.TrimSpace(*reason) == "" {
			return cli.Usagef("--reason is required")
		}
		c, err := client()
		if err != nil {
			return err
		}
		var st guard.State
		if resume {
			st, err = c.Resume(cmd.Context(), *kind, *reason)
		} else {
			st, err = c.Pause(cmd.Context(), *reason)
		}
		if err != nil {
			return err
		}
		return out.Print(cmd.OutOrStdout(), st, func(w io.Writer) error {
			tripped := strings.Join(st.Tripped, ",")
			if tripped == "" {
				tripped = "-"
			}
			_, err := fmt.Fprintf(w, "paused: %v\ntripped breakers: %s\n", st.Paused, tripped)
			return err
		})
	}
	return c
}

// clientEnv is where the client flags come from when not given: a flag beats the
// environment, the environment beats the default.
var clientEnv = map[string]string{
	"server":        "REMEDY_SERVER",
	"token-file":    "REMEDY_TOKEN_FILE",
	"tls-ca-file":   "REMEDY_TLS_CA_FILE",
	"tls-cert-file": "REMEDY_TLS_CERT_FILE",
	"tls-key-file":  "REMEDY_TLS_KEY_FILE",
}

// clientFlags adds the flags that reach an engine's API: --server, --token-file (or the
// token itself in $REMEDY_TOKEN, never printed) and the TLS files for an engine serving
// https, with a client certificate when it requires one (serve --tls-client-ca-file).
func clientFlags(c *cobra.Command) func() (*approval.Client, error) {
	fs := c.Flags()
	server := fs.String("server", "http://127.0.0.1:9095", cli.Env("engine HTTP API", clientEnv["server"]))
	tokenFile := fs.String("token-file", "", cli.Env("file holding your API token; the token itself may be in $REMEDY_TOKEN", clientEnv["token-file"]))
	caFile := fs.String("tls-ca-file", "", cli.Env("CA bundle that signed the engine's certificate (default: the system's)", clientEnv["tls-ca-file"]))
	certFile := fs.String("tls-cert-file", "", cli.Env("client certificate, for an engine that requires mutual TLS", clientEnv["tls-cert-file"]))
	keyFile := fs.String("tls-key-file", "", cli.Env("the client certificate's key", clientEnv["tls-key-file"]))
	cli.Alias(fs, "tls-ca", "tls-ca-file")
	cli.Alias(fs, "tls-cert", "tls-cert-file")
	cli.Alias(fs, "tls-key", "tls-key-file")
	return func() (*approval.Client, error) {
		if err := cli.FromEnv(fs, clientEnv); err != nil {
			return nil, err
		}
		tok := os.Getenv("REMEDY_TOKEN")
		if *tokenFile != "" {
			var err error
			if tok, err = readSecretFile("token-file", *tokenFile); err != nil {
				return nil, err
			}
		}
		hc, err := httpClient(*caFile, *certFile, *keyFile)
		if err != nil {
			return nil, err
		}
		return &approval.Client{BaseURL: *server, Token: tok, HTTP: hc}, nil
	}
}

// apiClientFlags is clientFlags for the audit API.
func apiClientFlags(c *cobra.Command) func() (*api.Client, error) {
	client := clientFlags(c)
	return func() (*api.Client, error) {
		c, err := client()
		if err != nil {
			return nil, err
		}
		return &api.Client{BaseURL: c.BaseURL, Token: c.Token, HTTP: c.HTTP}, nil
	}
}

// httpClient is the CLI's HTTP client: the default one, or one with the TLS files given.
func httpClient(caFile, certFile, keyFile string) (*http.Client, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--tls-ca-file %s: no PEM certificate in it", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, cli.UsageError{Err: errors.New("--tls-cert-file and --tls-key-file go together")}
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment}}, nil
}
