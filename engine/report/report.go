// Package report prints audit events for people: a table for terminals, JSON for tools.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
)

// Table writes events as an aligned table, in the order given.
func Table(w io.Writer, events []audit.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tNODE\tKIND\tACTION\tACTOR\tOUTCOME\tCORRELATION\tDETAIL")
	for _, e := range events {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format(time.TimeOnly), e.Type,
			dash(e.Node), dash(e.Kind), dash(e.Action), dash(e.Actor), dash(e.Outcome), dash(e.CorrelationID), Summary(e))
	}
	return tw.Flush()
}

// JSON writes events as one JSON array.
func JSON(w io.Writer, events []audit.Event) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if events == nil {
		events = []audit.Event{}
	}
	return enc.Encode(events)
}

// JSONL writes one event per line.
func JSONL(w io.Writer, events []audit.Event) error {
	enc := json.NewEncoder(w)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

// Summary is a one-line human reading of an event's detail.
func Summary(e audit.Event) string {
	var d map[string]any
	if json.Unmarshal(e.Detail, &d) != nil {
		return ""
	}
	switch e.Type {
	case audit.Decision:
		if s, ok := d["error"].(string); ok {
			return clip(s)
		}
		var parts []string
		if ds, ok := d["decisions"].([]any); ok {
			for _, x := range ds {
				if m, ok := x.(map[string]any); ok {
					parts = append(parts, fmt.Sprintf("%v (%v): %v", m["action"], m["risk"], m["reason"]))
				}
			}
		}
		return clip(strings.Join(parts, "; "))
	case audit.ActionPlanned:
		return clip(fmt.Sprintf("params=%s", compact(d["params"])))
	case audit.ActionRejected, audit.SignalRejected:
		return clip(fmt.Sprint(d["error"]))
	case audit.ActionResult:
		return clip(fmt.Sprint(d["message"]))
	case audit.SignalReceived:
		if a, ok := d["annotations"].(map[string]any); ok && a["summary"] != nil {
			return clip(fmt.Sprint(a["summary"]))
		}
	case audit.ApprovalRequested, audit.GuardRefused:
		// The detail is the held action (engine.Held): why the guards held or refused it,
		// then why the policy wanted it.
		v, _ := d["verdict"].(map[string]any)
		why := str(v["message"])
		if why == "" {
			why = str(v["reason"])
		}
		if dec, ok := d["decision"].(map[string]any); ok && str(dec["reason"]) != "" {
			why = join(why, "policy: "+str(dec["reason"]))
		}
		return clip(why)
	case audit.ApprovalGranted, audit.ApprovalRejected, audit.ApprovalExpired:
		why := str(d["reason"])
		if vote, ok := d["vote"].(float64); ok && vote > 0 {
			why = join(why, fmt.Sprintf("vote %v of %v", vote, d["of"]))
		}
		return clip(why)
	case audit.Paused, audit.Resumed:
		why := str(d["reason"])
		if k := str(d["kind"]); k != "" {
			why = join(why, "kind "+k)
		}
		return clip(why)
	case audit.Verification:
		why := ""
		if w := str(d["window"]); w != "" {
			why = "window " + w
		}
		if e := str(d["escalated"]); e != "" {
			why = join(why, "escalated as "+e)
		}
		return clip(why)
	}
	return ""
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// join joins two parts of a summary with "; ", either of them possibly empty.
func join(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:97] + "..."
	}
	return s
}
