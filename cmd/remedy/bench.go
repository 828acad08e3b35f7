package main

import (
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/remedyhq/remedy/cmd/internal/cli"
	"github.com/remedyhq/remedy/engine/loadgen"
)

// benchCommand runs the load generator: against --url when given, else against an
// in-process engine and a bare decoding handler side by side.
func benchCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Load-test the webhook path (in-process engine beside a bare decoding handler)",
		Args:  cli.NoArgs,
	}
	fs := c.Flags()
	url := fs.String("url", "", "webhook URL of a running engine (default: start one in-process, with a bare baseline)")
	policies := fs.String("policies", "policies", "policy directory of the in-process engine")
	var o loadgen.Options
	fs.IntVar(&o.Conns, "conns", 16, "concurrent keep-alive connections")
	fs.IntVar(&o.AlertsPerWebhook, "alerts-per-webhook", 1, "alerts in each webhook")
	fs.IntVar(&o.Webhooks, "webhooks", 0, "webhooks to send (0: run the default scenarios)")
	fs.Float64Var(&o.Rate, "rate", 0, "webhooks per second to offer (0: flat out)")
	fs.StringVar(&o.Token, "token", "", "bearer token for the webhook")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		if *url != "" {
			if o.Webhooks == 0 {
				o.Webhooks = 10000
			}
			o.URL, o.Seed = *url, "cli"
			r, err := loadgen.Run(ctx, o)
			if err != nil {
				return err
			}
			_, err = io.WriteString(stdout, r.String()+"\n")
			return err
		}
		bo := loadgen.BenchOptions{PolicyDir: *policies}
		if o.Webhooks > 0 {
			bo.Scenarios = []loadgen.Options{o}
		}
		return loadgen.Bench(ctx, bo, stdout)
	}
	return c
}
