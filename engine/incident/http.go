package incident

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/remedyhq/remedy/engine/audit"
	"github.com/remedyhq/remedy/engine/guard"
)

// Viewer is who is looking at the page.
type Viewer struct {
	Name string
	Role string
}

// Errors an Auth returns.
var (
	// ErrNotLoggedIn: the request carries no (valid) identity; the page offers the login.
	ErrNotLoggedIn = errors.New("log in first")
	// ErrNotAllowed: the identity may not view incidents.
	ErrNotAllowed = errors.New("not allowed to view incidents")
)

// Auth is the page's seam to the login: who a request is and may they view, and the
// CSRF token the page's forms carry. engine/app wires it to the approvals page's login;
// a session package replaces it there without touching this package.
type Auth interface {
	// Viewer returns who r is, ErrNotLoggedIn, or ErrNotAllowed.
	Viewer(r *http.Request) (Viewer, error)
	// CSRFToken is the token a form posted from r's page must carry ("" when the login
	// scheme needs none).
	CSRFToken(r *http.Request) string
}

// AuthFuncs is an Auth made of two functions; a nil CSRF gives no token.
type AuthFuncs struct {
	ViewerFunc func(r *http.Request) (Viewer, error)
	CSRFFunc   func(r *http.Request) string
}

// Viewer implements Auth.
func (a AuthFuncs) Viewer(r *http.Request) (Viewer, error) { return a.ViewerFunc(r) }

// CSRFToken implements Auth.
func (a AuthFuncs) CSRFToken(r *http.Request) string {
	if a.CSRFFunc == nil {
		return ""
	}
	return a.CSRFFunc(r)
}

// Pending is an action waiting for a person (engine/approval), as the page lists it.
type Pending struct {
	ID            string
	Action        string
	Node          string
	CorrelationID string
	RequestedAt   time.Time
	ExpiresAt     time.Time
	Votes, Need   int
}

// Options configure the page.
type Options struct {
	// Store reads one incident with its details; Reader serves the lists and figures.
	Store  audit.Querier
	Reader audit.IncidentReader
	Auth   Auth
	// LoginPath is where the page's login form posts (field "token", plus "csrf" and
	// "next"); default /approvals/login.
	LoginPath string
	// State is the kill switch and the breakers (guard.Guards.State); nil hides them.
	State func() guard.State
	// Pending lists the actions waiting for approval; nil hides them.
	Pending func(ctx context.Context) ([]Pending, error)
	// OpenWindow is how far back "open now" looks (default 24h); ReportRange the
	// effectiveness page's default range (default 24h).
	OpenWindow, ReportRange time.Duration
	Now                     func() time.Time
}

// Routes are the patterns Handler serves, for mounting in the engine's mux.
var Routes = []string{"/incidents", "/incidents/"}

// Handler serves the page:
//
//	GET /incidents?node=&kind=&outcome=&since=&until=&cursor=   the list, with what is open now on top
//	GET /incidents/effectiveness?since=&until=                   per action and kind, with a chart
//	GET /incidents/{id}                                          one incident's timeline
//
// Every view needs a viewer (Options.Auth); the page is server-rendered, without
// scripts or external assets.
func Handler(o Options) http.Handler {
	if o.LoginPath == "" {
		o.LoginPath = "/approvals/login"
	}
	if o.OpenWindow <= 0 {
		o.OpenWindow = 24 * time.Hour
	}
	if o.ReportRange <= 0 {
		o.ReportRange = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /incidents", h.view(h.list))
	mux.HandleFunc("GET /incidents/effectiveness", h.view(h.effectiveness))
	mux.HandleFunc("GET /incidents/{id}", h.view(h.incident))
	return mux
}

type handler struct{ o Options }

// page is what every view renders into the layout.
type page struct {
	Title   string
	View    string
	Who     Viewer
	Login   *loginForm
	Error   string
	State   *guard.State
	Pending []Pending
	Open    []Summary
	List    *listView
	Inc     *Incident
	Report  *reportView
}

type loginForm struct {
	Action, CSRF, Next string
}

func (h *handler) view(fn func(r *http.Request, p *page) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := &page{Title: "remedy incidents"}
		code := http.StatusOK
		who, err := h.o.Auth.Viewer(r)
		switch {
		case errors.Is(err, ErrNotLoggedIn):
			p.View = "login"
			p.Login = &loginForm{Action: h.o.LoginPath, CSRF: h.o.Auth.CSRFToken(r), Next: r.URL.RequestURI()}
		case err != nil:
			p.View, p.Error, code = "denied", err.Error(), http.StatusForbidden
		default:
			p.Who = who
			code = fn(r, p)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		if err := layout.Execute(w, p); err != nil {
			// Headers are out: the page is cut short, which the reader sees.
			fmt.Fprintf(w, "<p>render: %s</p>", err)
		}
	}
}

// top fills what is shown above every list: the switches, pending approvals, open
// incidents.
func (h *handler) top(r *http.Request, p *page) error {
	if h.o.State != nil {
		st := h.o.State()
		p.State = &st
	}
	if h.o.Pending != nil {
		pend, err := h.o.Pending(r.Context())
		if err != nil {
			return err
		}
		p.Pending = pend
	}
	open, err := Open(r.Context(), h.o.Reader, h.o.Now(), h.o.OpenWindow, 200)
	if err != nil {
		return err
	}
	p.Open = open
	return nil
}

type listView struct {
	Filter   ListFilter
	Form     url.Values
	Page     Page
	NextURL  string
	Outcomes []string
}

func (h *handler) list(r *http.Request, p *page) int {
	q := r.URL.Query()
	p.View = "list"
	lv := &listView{Form: q, Outcomes: Outcomes()}
	p.List = lv
	if err := h.top(r, p); err != nil {
		p.Error = err.Error()
		return http.StatusInternalServerError
	}
	f, err := ParseListFilter(q.Get, h.o.Now())
	if err != nil {
		p.Error = err.Error()
		return http.StatusBadRequest
	}
	lv.Filter = f
	pg, err := List(r.Context(), h.o.Reader, f)
	if err != nil {
		p.Error = err.Error()
		return http.StatusBadRequest
	}
	lv.Page = pg
	if pg.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", pg.Next)
		lv.NextURL = "/incidents?" + nq.Encode()
	}
	return http.StatusOK
}

// ParseListFilter reads a list filter from query parameters: node, kind, outcome, since
// and until (see ParseTime), cursor, limit.
func ParseListFilter(get func(string) string, now time.Time) (ListFilter, error) {
	f := ListFilter{Node: get("node"), Kind: get("kind"), Outcome: get("outcome"), Cursor: get("cursor")}
	var err error
	if f.Since, err = ParseTime(get("since"), now); err != nil {
		return f, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = ParseTime(get("until"), now); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	if l := get("limit"); l != "" {
		if _, err := fmt.Sscanf(l, "%d", &f.Limit); err != nil || f.Limit < 1 || f.Limit > 1000 {
			return f, fmt.Errorf("limit: %q is not a number between 1 and 1000", l)
		}
	}
	return f, nil
}

// ParseTime reads a time: empty (none), a duration back from now ("24h"), RFC 3339, or
// a form's date and time ("2006-01-02T15:04", UTC).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h) nor a time (RFC 3339 or 2006-01-02T15:04)", s)
}

// ReportRange reads a report's range from since and until (ParseTime); an empty since
// is def before until, an empty until is now.
func ReportRange(get func(string) string, now time.Time, def time.Duration) (since, until time.Time, err error) {
	if since, err = ParseTime(get("since"), now); err != nil {
		return since, until, fmt.Errorf("since: %w", err)
	}
	if until, err = ParseTime(get("until"), now); err != nil {
		return since, until, fmt.Errorf("until: %w", err)
	}
	if until.IsZero() {
		until = now.UTC()
	}
	if since.IsZero() {
		since = until.Add(-def)
	}
	if !since.Before(until) {
		return since, until, ErrRange
	}
	return since, until, nil
}

func (h *handler) incident(r *http.Request, p *page) int {
	p.View = "incident"
	inc, ok, err := Get(r.Context(), h.o.Store, r.PathValue("id"))
	switch {
	case err != nil:
		p.Error = err.Error()
		return http.StatusInternalServerError
	case !ok:
		p.Error = "no incident " + r.PathValue("id") + " in the audit log"
		return http.StatusNotFound
	}
	p.Inc = &inc
	p.Title = "remedy incident " + inc.ID
	return http.StatusOK
}

type reportView struct {
	Since, Until string
	Report       Report
	Chart        chart
}

func (h *handler) effectiveness(r *http.Request, p *page) int {
	p.View = "effectiveness"
	p.Title = "remedy effectiveness"
	q := r.URL.Query()
	rv := &reportView{Since: q.Get("since"), Until: q.Get("until")}
	p.Report = rv
	since, until, err := ReportRange(q.Get, h.o.Now(), h.o.ReportRange)
	if err != nil {
		p.Error = err.Error()
		return http.StatusBadRequest
	}
	rep, err := Effectiveness(r.Context(), h.o.Reader, since, until)
	if err != nil {
		p.Error = err.Error()
		return http.StatusInternalServerError
	}
	rv.Report, rv.Chart = rep, newChart(rep)
	if rv.Since == "" {
		rv.Since = since.Format(time.RFC3339)
	}
	if rv.Until == "" {
		rv.Until = until.Format(time.RFC3339)
	}
	return http.StatusOK
}
