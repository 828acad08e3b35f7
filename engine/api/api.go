// Package api is the engine's HTTP surface: the Alertmanager webhook, health and
// readiness, Prometheus metrics, and the read API the CLI uses (audit queries, the
// running policy).
package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/policy"
)

// Options configure the API.
type Options struct {
	Webhook  http.Handler
	Store    audit.Store
	Policy   *policy.Holder
	Gatherer prometheus.Gatherer
	// Ready reports whether the engine can accept work (store and NATS reachable).
	Ready func() error
	// Authorize, when set, admits a request to the audit API, the policy API and
	// /metrics or says why not.
	Authorize func(r *http.Request) error
	// MetricsOpen serves /metrics without Authorize, for scrapers that cannot send a
	// bearer token.
	MetricsOpen bool
	// Approvals serves the approvals API and page and the kill switch
	// (engine/approval.Handler).
	Approvals http.Handler
	// Incidents serves the incidents page (engine/incident.Handler) at /incidents.
	Incidents http.Handler
}

// Handler returns the engine's HTTP handler.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/webhooks/alertmanager", o.Webhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	if o.Gatherer != nil {
		metrics := promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}).ServeHTTP
		if !o.MetricsOpen {
			metrics = authorized(o, metrics)
		}
		mux.HandleFunc("GET /metrics", metrics)
	}
	registerAudit(mux, o)
	registerIncidents(mux, o)
	if o.Approvals != nil {
		for _, p := range []string{"/api/v1/approvals", "/api/v1/approvals/", "/api/v1/pause", "/api/v1/resume", "/approvals", "/approvals/"} {
			mux.Handle(p, o.Approvals)
		}
	}
	mux.HandleFunc("GET /api/v1/policy", authorized(o, func(w http.ResponseWriter, _ *http.Request) {
		p := o.Policy.Current()
		writeJSON(w, http.StatusOK, map[string]any{"revision": p.Revision, "files": p.Files})
	}))
	return mux
}

// ParseFilter reads an audit filter from query parameters: node, action, kind, type,
// outcome, actor, correlation_id, since and until (RFC 3339 or a duration back from now
// such as 1h), after_seq, order (asc or desc), limit.
func ParseFilter(get func(string) string) (audit.Filter, error) {
	f := audit.Filter{
		Node: get("node"), Action: get("action"), Kind: get("kind"), Type: audit.Type(get("type")),
		Outcome: get("outcome"), CorrelationID: get("correlation_id"),
	}
	var err error
	if f.Since, err = parseTime(get("since")); err != nil {
		return f, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = parseTime(get("until")); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	if l := get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > 100000 {
			return f, fmt.Errorf("limit: %q is not a number between 1 and 100000", l)
		}
	}
	return f, parseAuditExtras(get, &f)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither a duration (1h) nor an RFC 3339 time", s)
	}
	return t, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
