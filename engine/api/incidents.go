package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/incident"
)

// DefaultReportRange is the range of a report that names no since (the page's too):
// a report reads every attempt in its range.
const DefaultReportRange = 24 * time.Hour

// registerIncidents serves the incidents read API (engine/incident) and mounts the page:
//
//	GET /api/v1/report?since=&until=            effectiveness per action and kind (default: the last 24 hours)
//	GET /api/v1/incidents?<incident filter>     {"incidents": [...], "next": "<cursor>"}, newest first
//	GET /api/v1/incidents/{id}                  one incident: summary and timeline
//
// The store must be an audit.IncidentReader (both SQL stores are); otherwise 501.
func registerIncidents(mux *http.ServeMux, o Options) {
	if o.Incidents != nil {
		for _, p := range incident.Routes {
			mux.Handle(p, o.Incidents)
		}
	}
	reader := func(w http.ResponseWriter) (audit.IncidentReader, bool) {
		ir, ok := o.Store.(audit.IncidentReader)
		if !ok {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this audit store cannot list incidents"})
		}
		return ir, ok
	}
	mux.HandleFunc("GET /api/v1/report", authorized(o, func(w http.ResponseWriter, r *http.Request) {
		ir, ok := reader(w)
		if !ok {
			return
		}
		since, until, err := incident.ReportRange(r.URL.Query().Get, time.Now(), DefaultReportRange)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		rep, err := incident.Effectiveness(r.Context(), ir, since, until)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	}))
	mux.HandleFunc("GET /api/v1/incidents", authorized(o, func(w http.ResponseWriter, r *http.Request) {
		ir, ok := reader(w)
		if !ok {
			return
		}
		f, err := incident.ParseListFilter(r.URL.Query().Get, time.Now())
		if err == nil {
			var p incident.Page
			if p, err = incident.List(r.Context(), ir, f); err == nil {
				if p.Incidents == nil {
					p.Incidents = []incident.Summary{}
				}
				writeJSON(w, http.StatusOK, p)
				return
			}
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	}))
	mux.HandleFunc("GET /api/v1/incidents/{id}", authorized(o, func(w http.ResponseWriter, r *http.Request) {
		inc, ok, err := incident.Get(r.Context(), o.Store, r.PathValue("id"))
		switch {
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		case !ok:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no incident " + r.PathValue("id")})
		default:
			writeJSON(w, http.StatusOK, inc)
		}
	}))
}

// Report asks for the effectiveness report of a range (query parameters since and
// until, as the page takes them).
func (c *Client) Report(ctx context.Context, q url.Values) (incident.Report, error) {
	var rep incident.Report
	err := c.get(ctx, "/api/v1/report?"+q.Encode(), &rep)
	return rep, err
}
