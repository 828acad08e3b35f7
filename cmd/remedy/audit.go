package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/report"
)

func auditQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remedy audit query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://127.0.0.1:9095", "engine HTTP API")
	q := url.Values{}
	for _, name := range []string{"node", "action", "kind", "type", "outcome", "correlation-id", "since", "until", "limit"} {
		fs.Func(name, "filter by "+name, func(v string) error {
			key := name
			if key == "correlation-id" {
				key = "correlation_id"
			}
			q.Set(key, v)
			return nil
		})
	}
	format := fs.String("o", "table", "output: table, json or jsonl")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := api.Client{BaseURL: *server, Token: os.Getenv("REMEDY_TOKEN")}
	evs, err := c.Events(ctx, q)
	if err != nil {
		return err
	}
	switch *format {
	case "table":
		return report.Table(stdout, evs)
	case "json":
		return report.JSON(stdout, evs)
	case "jsonl":
		return report.JSONL(stdout, evs)
	}
	return fmt.Errorf("-o %q: use table, json or jsonl", *format)
}
