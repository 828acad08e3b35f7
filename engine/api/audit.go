package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/remedyhq/remedy/engine/audit"
)

// registerAudit serves the read-only audit API (docs/audit.md):
//
//	GET /api/v1/audit/events?<filter>      {"events": [...]}, newest first (order=asc: oldest first);
//	                                       kind= keeps whole incidents (audit.QueryIncidents)
//	GET /api/v1/audit/incidents/{id}       {"events": [...]}, one incident, oldest first
//	GET /api/v1/audit/export?<filter>      JSON Lines, oldest first
//	GET /api/v1/audit/verify               the verify report (200 whether or not the chain is intact)
func registerAudit(mux *http.ServeMux, o Options) {
	auth := func(next http.HandlerFunc) http.HandlerFunc { return authorized(o, next) }
	mux.HandleFunc("GET /api/v1/audit/events", auth(func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query().Get)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		evs, err := audit.QueryIncidents(r.Context(), o.Store, f) // kind: whole incidents
		writeEvents(w, evs, err)
	}))
	mux.HandleFunc("GET /api/v1/audit/incidents/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		evs, err := audit.Timeline(r.Context(), o.Store, r.PathValue("id"))
		writeEvents(w, evs, err)
	}))
	mux.HandleFunc("GET /api/v1/audit/export", auth(func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query().Get)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		// Headers are gone once the first line is out: a failure afterwards can only cut
		// the stream short, which the client sees as a missing final newline.
		_ = audit.Export(r.Context(), o.Store, f, w)
	}))
	mux.HandleFunc("GET /api/v1/audit/verify", auth(func(w http.ResponseWriter, r *http.Request) {
		lg, ok := o.Store.(audit.Log)
		if !ok {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this audit store cannot verify its chain"})
			return
		}
		rep, err := lg.Verify(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	}))
}

// authorized admits a request through o.Authorize (everyone when it is nil).
func authorized(o Options, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o.Authorize != nil {
			if err := o.Authorize(r); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="remedy"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
				return
			}
		}
		next(w, r)
	}
}

func writeEvents(w http.ResponseWriter, evs []audit.Event, err error) {
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if evs == nil {
		evs = []audit.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs})
}

// parseAuditExtras reads the filter parameters beyond the spine's: actor, after_seq and
// order (asc or desc).
func parseAuditExtras(get func(string) string, f *audit.Filter) error {
	f.Actor = get("actor")
	if s := get("after_seq"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("after_seq: %q is not a seq", s)
		}
		f.AfterSeq = n
	}
	switch o := get("order"); o {
	case "", "desc":
	case "asc":
		f.Ascending = true
	default:
		return fmt.Errorf("order: %q is neither asc nor desc", o)
	}
	return nil
}

// ErrExportCut: the engine stopped an export in the middle of a line.
var ErrExportCut = errors.New("audit export cut short after a partial line")

// Incident returns one incident's events, oldest first.
func (c *Client) Incident(ctx context.Context, correlationID string) ([]audit.Event, error) {
	var out struct {
		Events []audit.Event `json:"events"`
	}
	if err := c.get(ctx, "/api/v1/audit/incidents/"+url.PathEscape(correlationID), &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

// Verify asks the engine to verify its audit chain.
func (c *Client) Verify(ctx context.Context) (audit.VerifyReport, error) {
	var rep audit.VerifyReport
	err := c.get(ctx, "/api/v1/audit/verify", &rep)
	return rep, err
}

// Export copies the JSONL export of the events matching q to w.
func (c *Client) Export(ctx context.Context, q url.Values, w io.Writer) error {
	resp, err := c.do(ctx, "/api/v1/audit/export?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Copy whole lines only, so that a stream cut short is reported, not half-written.
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if _, werr := w.Write(line); werr != nil {
				return fmt.Errorf("write export: %w", werr)
			}
		} else if len(line) > 0 {
			return ErrExportCut
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read export: %w", err)
		}
	}
}
