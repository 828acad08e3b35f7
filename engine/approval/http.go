package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/webauth"
)

// Switch is the kill switch and the storm breakers (guard.Guards).
type Switch interface {
	Pause(ctx context.Context, actor, reason string) error
	Resume(ctx context.Context, actor, kind, reason string) error
	State() guard.State
}

// HandlerOptions configure the approvals HTTP surface.
type HandlerOptions struct {
	Service *Service
	// Sessions are the page's logins (shared with the engine's other pages); nil opens a
	// store of its own over Tokens.
	Sessions *webauth.Sessions
	// Tokens are who may log in and call the API, used when Sessions is nil.
	Tokens webauth.Tokens
	Switch Switch
}

// Routes are the patterns Handler serves, for mounting in the engine's mux.
var Routes = []string{"/api/v1/approvals", "/api/v1/approvals/", "/api/v1/pause", "/api/v1/resume", "/approvals", "/approvals/"}

// Handler serves the approvals API (JSON bodies, bearer token in the Authorization
// header only), the kill switch API and the web page (/approvals: a session cookie set by
// its login form; every form carries the session's CSRF token and must come from the
// page's own origin; engine/webauth).
//
//	GET  /api/v1/approvals[?all=1]          viewer
//	GET  /api/v1/approvals/{id}             viewer
//	POST /api/v1/approvals/{id}/approve     approver  {"reason": "..."}
//	POST /api/v1/approvals/{id}/reject      approver  {"reason": "..."}
//	GET  /api/v1/pause                      viewer    kill switch and breaker state
//	POST /api/v1/pause                      admin     {"reason": "..."}
//	POST /api/v1/resume                     admin     {"reason": "...", "kind": "<breaker>"}
func Handler(o HandlerOptions) http.Handler {
	if o.Sessions == nil {
		o.Sessions, _ = webauth.New(webauth.Options{Tokens: o.Tokens}) // no trusted origins: cannot fail
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/approvals", h.auth(Viewer, h.list))
	mux.HandleFunc("GET /api/v1/approvals/{id}", h.auth(Viewer, h.get))
	mux.HandleFunc("POST /api/v1/approvals/{id}/{verb}", h.auth(Approver, h.decide))
	if o.Switch != nil {
		mux.HandleFunc("GET /api/v1/pause", h.auth(Viewer, h.state))
		mux.HandleFunc("POST /api/v1/pause", h.auth(Admin, h.pause))
		mux.HandleFunc("POST /api/v1/resume", h.auth(Admin, h.resume))
	}
	mux.HandleFunc("GET /approvals", h.page)
	mux.HandleFunc("POST /approvals/login", h.login)
	mux.HandleFunc("POST /approvals/logout", h.logout)
	mux.HandleFunc("POST /approvals/{id}/{verb}", h.pageDecide)
	return mux
}

type handler struct{ o HandlerOptions }

type authed func(w http.ResponseWriter, r *http.Request, who Identity)

func (h *handler) auth(need Role, next authed) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := h.o.Sessions.Tokens().Authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="remedy"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
			return
		}
		if !who.Role.Allows(need) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": who.Name + " is " + string(who.Role) + "; this needs " + string(need)})
			return
		}
		next(w, r, who)
	}
}

func (h *handler) list(w http.ResponseWriter, r *http.Request, _ Identity) {
	list, err := h.o.Service.List(r.Context(), r.URL.Query().Get("all") != "")
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvals": list})
}

func (h *handler) get(w http.ResponseWriter, r *http.Request, _ Identity) {
	req, err := h.o.Service.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

type reasonBody struct {
	Reason string `json:"reason"`
	Kind   string `json:"kind,omitempty"`
}

// readBody decodes a JSON body. Only application/json is accepted: an HTML form can
// send text/plain (or urlencoded) bodies across origins without asking, never JSON.
func readBody(w http.ResponseWriter, r *http.Request) (reasonBody, bool) {
	var b reasonBody
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": fmt.Sprintf("content type %q not supported, use application/json", r.Header.Get("Content-Type"))})
		return b, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return b, false
	}
	return b, true
}

func (h *handler) decide(w http.ResponseWriter, r *http.Request, who Identity) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := h.apply(r.Context(), r.PathValue("id"), r.PathValue("verb"), who, b.Reason)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

var errVerb = errors.New("unknown verb: use approve or reject")

func (h *handler) apply(ctx context.Context, id, verb string, who Identity, reason string) (Request, error) {
	switch verb {
	case "approve":
		return h.o.Service.Approve(ctx, id, who, reason)
	case "reject":
		return h.o.Service.Reject(ctx, id, who, reason)
	}
	return Request{}, errVerb
}

func (h *handler) state(w http.ResponseWriter, _ *http.Request, _ Identity) {
	writeJSON(w, http.StatusOK, h.o.Switch.State())
}

func (h *handler) pause(w http.ResponseWriter, r *http.Request, who Identity) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	if b.Reason == "" {
		writeErr(w, ErrNoReason)
		return
	}
	if err := h.o.Switch.Pause(r.Context(), who.Actor(), b.Reason); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.o.Switch.State())
}

func (h *handler) resume(w http.ResponseWriter, r *http.Request, who Identity) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	if b.Reason == "" {
		writeErr(w, ErrNoReason)
		return
	}
	if err := h.o.Switch.Resume(r.Context(), who.Actor(), b.Kind, b.Reason); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.o.Switch.State())
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrNotPending), errors.Is(err, ErrGuardRefused):
		code = http.StatusConflict
	case errors.Is(err, ErrSelfApproval), errors.Is(err, ErrAlreadyVoted), errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrNoReason), errors.Is(err, errVerb):
		code = http.StatusBadRequest
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// The page: server-rendered, no scripts, no external assets. Forms post back and are
// redirected (303) to the list with a message.

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	sess, ok := h.o.Sessions.Get(r)
	data := pageData{Who: sess.Identity, CSRF: sess.CSRF, Message: r.URL.Query().Get("msg"), Error: r.URL.Query().Get("err")}
	if ok {
		list, err := h.o.Service.List(r.Context(), false)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		data.Requests, data.CanDecide = list, sess.Identity.Role.Allows(Approver)
		if h.o.Switch != nil {
			data.State = h.o.Switch.State()
		}
	}
	data.LoggedIn = ok
	pageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Cache-Control", "no-store")
}

// refuse answers a page's refused request: back to the login form when there is no
// session, 403 with the reason for a cross-origin or forged request.
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, webauth.ErrNoSession) {
		http.Redirect(w, r, "/approvals?err="+url.QueryEscape("log in first"), http.StatusSeeOther)
		return
	}
	pageHeaders(w)
	http.Error(w, err.Error(), http.StatusForbidden)
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if _, err := h.o.Sessions.Login(w, r); err != nil {
		if errors.Is(err, webauth.ErrUnknownToken) {
			http.Redirect(w, r, "/approvals?err="+url.QueryEscape(err.Error()), http.StatusSeeOther)
			return
		}
		refuse(w, r, err)
		return
	}
	http.Redirect(w, r, "/approvals", http.StatusSeeOther)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.o.Sessions.Logout(w, r); err != nil {
		refuse(w, r, err)
		return
	}
	http.Redirect(w, r, "/approvals?msg="+url.QueryEscape("logged out"), http.StatusSeeOther)
}

// pageDecide approves or rejects from the page's form: same origin, a session and its
// CSRF token (webauth.Sessions.Check).
func (h *handler) pageDecide(w http.ResponseWriter, r *http.Request) {
	sess, err := h.o.Sessions.Check(r)
	if err != nil {
		refuse(w, r, err)
		return
	}
	id, verb := r.PathValue("id"), r.PathValue("verb")
	if _, err := h.apply(r.Context(), id, verb, sess.Identity, r.PostFormValue("reason")); err != nil {
		http.Redirect(w, r, "/approvals?err="+url.QueryEscape(err.Error()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/approvals?msg="+url.QueryEscape(verb+"d "+id), http.StatusSeeOther)
}

type pageData struct {
	Who       Identity
	CSRF      string
	LoggedIn  bool
	CanDecide bool
	Message   string
	Error     string
	Requests  []Request
	State     guard.State
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"ts": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"json": func(v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>remedy approvals</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}
.msg{background:#e7f6e7;padding:.5em}.err{background:#fbe3e3;padding:.5em}pre{white-space:pre-wrap;max-height:20em;overflow:auto;margin:0}
</style></head><body>
<h1>Pending remediation actions</h1>
{{if .Message}}<p class="msg" id="message">{{.Message}}</p>{{end}}
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
{{if not .LoggedIn}}
<form method="post" action="/approvals/login"><label>Token <input type="password" name="token" id="token" autocomplete="off"></label>
<button type="submit" id="login">Log in</button></form>
{{else}}
<p>Signed in as <b id="who">{{.Who.Name}}</b> ({{.Who.Role}}).{{if .State.Paused}} <b>remedy is paused.</b>{{end}}
{{if .State.Tripped}} Storm breaker open for: {{range .State.Tripped}}<b>{{.}}</b> {{end}}{{end}}</p>
<form method="post" action="/approvals/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit" id="logout">Log out</button></form>
{{if not .Requests}}<p id="empty">Nothing is waiting for approval.</p>{{else}}
<table id="pending"><tr><th>Action</th><th>Why</th><th>Context</th><th>Decide</th></tr>
{{range .Requests}}<tr id="req-{{.ID}}">
<td><b>{{.Held.Request.Action}}</b> on <b>{{.Held.Request.Node}}</b><br>risk {{.Held.Decision.Risk}}<br>id <code>{{.ID}}</code><br>
requested {{ts .RequestedAt}} by {{.Held.Requester}}<br>expires {{ts .ExpiresAt}}<br>votes {{len .Votes}} of {{.NeedVotes}}</td>
<td>{{.Held.Decision.Reason}}<br><i>held: {{.Held.Verdict.Reason}} — {{.Held.Verdict.Message}}</i><br>params <code>{{printf "%s" .Held.Request.Params}}</code></td>
<td><details><summary>signal, node, blast radius</summary><pre>{{json .Held.Signal}}</pre><pre>{{json .Held.Node}}</pre><pre>{{json .Held.Verdict.Blast}}</pre><pre>{{json .Held.Cluster}}</pre></details></td>
<td>{{if $.CanDecide}}<form method="post" action="/approvals/{{.ID}}/approve"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input name="reason" placeholder="why" required>
<button type="submit" class="approve" id="approve-{{.ID}}">Approve</button></form>
<form method="post" action="/approvals/{{.ID}}/reject"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input name="reason" placeholder="why" required>
<button type="submit" class="reject" id="reject-{{.ID}}">Reject</button></form>{{else}}viewer{{end}}</td>
</tr>{{end}}</table>{{end}}
{{end}}
</body></html>
`))
