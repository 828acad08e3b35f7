package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/remedyhq/remedy/engine/api"
	"github.com/remedyhq/remedy/engine/incident"
)

// EffectivenessOptions configure `remedy report`.
type EffectivenessOptions struct {
	Client *api.Client
	// Since and Until bound the range (a duration back from now such as 24h, or a time,
	// as incident.ParseTime reads them); an empty Since is 24 hours before Until, an
	// empty Until is now. They are resolved here, so the report names the exact range.
	Since, Until string
	// Output is table (default) or json.
	Output string
	Now    func() time.Time
}

// Effectiveness fetches the effectiveness report of a range from the engine's read API
// and writes it: the figures the incidents page shows for the same range.
func Effectiveness(ctx context.Context, o EffectivenessOptions, w io.Writer) error {
	if o.Output == "" {
		o.Output = "table"
	}
	if o.Output != "table" && o.Output != "json" {
		return fmt.Errorf("-o %q: want table or json", o.Output)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	get := func(k string) string {
		if k == "since" {
			return o.Since
		}
		return o.Until
	}
	since, until, err := incident.ReportRange(get, o.Now(), api.DefaultReportRange)
	if err != nil {
		return err
	}
	rep, err := o.Client.Report(ctx, url.Values{"since": {since.Format(time.RFC3339Nano)}, "until": {until.Format(time.RFC3339Nano)}})
	if err != nil {
		return err
	}
	if o.Output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return EffectivenessTable(w, rep)
}

// EffectivenessTable writes a report as aligned tables: per action, per kind, all.
func EffectivenessTable(w io.Writer, rep incident.Report) error {
	fmt.Fprintf(w, "Effectiveness from %s to %s (attempts whose first result is in the range; dry runs are not attempts)\n\n",
		rep.Since.Format(time.RFC3339Nano), rep.Until.Format(time.RFC3339Nano))
	section := func(title string, rows []incident.Row) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tTRIED\tSUCCEEDED\tFAILED\tROLLED BACK\tFIXED\tNOT FIXED\tFIXED/TRIED\tFIX P50\tFIX P90\n", title)
		for _, r := range rows {
			f := r.Figures
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", dash(r.Name), f.Tried, f.Succeeded, f.Failed, f.RolledBack,
				f.Fixed, f.NotFixed, incident.FormatRatio(f.Fixed, f.Tried), incident.FormatSeconds(f.FixP50), incident.FormatSeconds(f.FixP90))
		}
		_ = tw.Flush()
	}
	section("ACTION", rep.ByAction)
	fmt.Fprintln(w)
	section("KIND", rep.ByKind)
	fmt.Fprintln(w)
	section("ALL", []incident.Row{{Name: "all", Figures: rep.Total}})
	return nil
}
