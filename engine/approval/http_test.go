package approval

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedyhq/remedy/engine/guard"
	"github.com/remedyhq/remedy/engine/policy"
	"github.com/remedyhq/remedy/engine/webauth"
)

// switchRec is a kill switch that records what it was asked.
type switchRec struct {
	mu     sync.Mutex
	paused []string
}

func (s *switchRec) Pause(_ context.Context, actor, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = append(s.paused, actor+": "+reason)
	return nil
}

func (s *switchRec) Resume(context.Context, string, string, string) error { return nil }

func (s *switchRec) State() guard.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return guard.State{Paused: len(s.paused) > 0}
}

func (s *switchRec) pauses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.paused)
}

type pageEnv struct {
	f   *fixture
	srv *httptest.Server
	sw  *switchRec
	hc  *http.Client // follows no redirects
}

func newPageEnv(t *testing.T, tls bool) *pageEnv {
	t.Helper()
	e := &pageEnv{f: newFixture(t, guard.Approval{TTL: time.Hour}), sw: &switchRec{}}
	e.f.hold(t, "act-1", "node-7", policy.RiskHigh, "engine")
	tk, err := webauth.LoadTokens("testdata/approvers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(HandlerOptions{Service: e.f.svc, Tokens: tk, Switch: e.sw})
	if tls {
		e.srv = httptest.NewTLSServer(h)
	} else {
		e.srv = httptest.NewServer(h)
	}
	t.Cleanup(e.srv.Close)
	e.hc = e.srv.Client()
	e.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return e
}

// post sends a form with the given headers.
func (e *pageEnv) post(t *testing.T, path string, form url.Values, hdr map[string]string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	return e.do(t, http.MethodPost, path, "application/x-www-form-urlencoded", form.Encode(), hdr, cookies...)
}

// do sends a request (ct empty: no Content-Type) and closes its body at the end of the test.
func (e *pageEnv) do(t *testing.T, method, path, ct, body string, hdr map[string]string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == webauth.CookieName {
			return c
		}
	}
	return nil
}

// login logs in from the page's own origin and returns the session cookie and the CSRF
// token the page shows.
func (e *pageEnv) login(t *testing.T, token string) (*http.Cookie, string) {
	t.Helper()
	resp := e.post(t, "/approvals/login", url.Values{"token": {token}}, map[string]string{"Origin": e.srv.URL})
	c := sessionCookie(resp)
	if resp.StatusCode != http.StatusSeeOther || c == nil {
		t.Fatalf("login: %s, cookies %v", resp.Status, resp.Cookies())
	}
	return c, e.csrf(t, c)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (e *pageEnv) csrf(t *testing.T, c *http.Cookie) string {
	t.Helper()
	body := e.getPage(t, c)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page has no CSRF token:\n%s", body)
	}
	return m[1]
}

func (e *pageEnv) getPage(t *testing.T, c *http.Cookie) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/approvals", nil)
	if c != nil {
		req.AddCookie(c)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (e *pageEnv) state(t *testing.T) State {
	t.Helper()
	r, err := e.f.svc.Get(context.Background(), "act-1")
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

// TestPageRefusesCrossOriginPosts: with a valid session cookie and even the right CSRF
// token, an approval posted from another origin is refused; the request
// (Origin: http://attacker.example:8080) answered 303 and approved before.
func TestPageRefusesCrossOriginPosts(t *testing.T) {
	e := newPageEnv(t, false)
	c, csrf := e.login(t, "bob-token-0123456789ab")
	u, _ := url.Parse(e.srv.URL)
	otherPort := "http://" + u.Hostname() + ":1"
	for name, hdr := range map[string]map[string]string{
		"foreign host":           {"Origin": "http://attacker.example:8080"},
		"another port":           {"Origin": otherPort},
		"null origin":            {"Origin": "null"},
		"sibling subdomain":      {"Sec-Fetch-Site": "same-site", "Origin": "http://evil.example.com"},
		"cross-site":             {"Sec-Fetch-Site": "cross-site"},
		"same-site, same origin": {"Sec-Fetch-Site": "same-site", "Origin": e.srv.URL},
	} {
		resp := e.post(t, "/approvals/act-1/approve", url.Values{"reason": {"csrf"}, "csrf": {csrf}}, hdr, c)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "cross-origin request refused") {
			t.Errorf("%s: %s %s", name, resp.Status, b)
		}
	}
	if s := e.state(t); s != Pending {
		t.Fatalf("after cross-origin posts the action is %s", s)
	}
	// The same request from the page's own origin goes through.
	resp := e.post(t, "/approvals/act-1/approve", url.Values{"reason": {"ok"}, "csrf": {csrf}},
		map[string]string{"Origin": e.srv.URL, "Sec-Fetch-Site": "same-origin"}, c)
	if resp.StatusCode != http.StatusSeeOther || e.state(t) != Approved {
		t.Fatalf("same-origin approve: %s, state %s", resp.Status, e.state(t))
	}
}

// TestPageNeedsItsCSRFToken: a same-origin post with the session cookie but without the
// session's CSRF token (a client that sends no Origin, a token from another session) is
// refused.
func TestPageNeedsItsCSRFToken(t *testing.T) {
	e := newPageEnv(t, false)
	c, csrf := e.login(t, "bob-token-0123456789ab")
	_, aliceCSRF := e.login(t, "alice-token-0123456789")
	if aliceCSRF == csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	for name, form := range map[string]url.Values{
		"none":                  {"reason": {"x"}},
		"empty":                 {"reason": {"x"}, "csrf": {""}},
		"another session's":     {"reason": {"x"}, "csrf": {aliceCSRF}},
		"the session id itself": {"reason": {"x"}, "csrf": {c.Value}},
	} {
		resp := e.post(t, "/approvals/act-1/approve", form, nil, c)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "missing or wrong CSRF token") {
			t.Errorf("%s: %s %s", name, resp.Status, b)
		}
	}
	if s := e.state(t); s != Pending {
		t.Fatalf("the action is %s", s)
	}
	// Logout is a state change too.
	if resp := e.post(t, "/approvals/logout", nil, nil, c); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without a CSRF token: %s", resp.Status)
	}
}

// TestLoginRefusesCrossOrigin: a login form on another origin cannot log a browser in
// (to the attacker's account, say).
func TestLoginRefusesCrossOrigin(t *testing.T) {
	e := newPageEnv(t, false)
	for _, hdr := range []map[string]string{
		{"Origin": "http://attacker.example:8080"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
	} {
		resp := e.post(t, "/approvals/login", url.Values{"token": {"bob-token-0123456789ab"}}, hdr)
		if resp.StatusCode != http.StatusForbidden || sessionCookie(resp) != nil {
			t.Errorf("%v: %s, cookies %v", hdr, resp.Status, resp.Cookies())
		}
	}
	resp := e.post(t, "/approvals/login", url.Values{"token": {"not-a-token-at-all"}}, map[string]string{"Origin": e.srv.URL})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/approvals?err=unknown+token" || sessionCookie(resp) != nil {
		t.Errorf("unknown token: %s %s", resp.Status, loc)
	}
}

// TestSessionCookie: the cookie names a server-side session, not the token; logout ends
// the session (the old cookie no longer works); under TLS the cookie is Secure.
func TestSessionCookie(t *testing.T) {
	for _, tls := range []bool{false, true} {
		e := newPageEnv(t, tls)
		c, csrf := e.login(t, "bob-token-0123456789ab")
		if strings.Contains(c.Value, "bob-token") || len(c.Value) < 40 {
			t.Errorf("cookie value %q", c.Value)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != tls || c.Path != "/" {
			t.Errorf("tls=%v: cookie %+v", tls, c)
		}
		if page := e.getPage(t, c); !strings.Contains(page, `id="who">bob<`) {
			t.Fatalf("not logged in:\n%s", page)
		}
		resp := e.post(t, "/approvals/logout", url.Values{"csrf": {csrf}}, map[string]string{"Origin": e.srv.URL}, c)
		cleared := sessionCookie(resp)
		if resp.StatusCode != http.StatusSeeOther || cleared == nil || cleared.Value != "" || cleared.MaxAge >= 0 {
			t.Fatalf("logout: %s %v", resp.Status, cleared)
		}
		if page := e.getPage(t, c); !strings.Contains(page, `id="token"`) {
			t.Errorf("the old cookie still logs in after logout:\n%s", page)
		}
		resp = e.post(t, "/approvals/act-1/approve", url.Values{"reason": {"x"}, "csrf": {csrf}}, map[string]string{"Origin": e.srv.URL}, c)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "log+in+first") || e.state(t) != Pending {
			t.Errorf("approve after logout: %s %s", resp.Status, loc)
		}
	}
}

// TestAPIAuthenticatesOnlyWithTheHeader: the JSON API ignores cookies (the issue's
// text/plain {"reason":"csrf="} post to /api/v1/pause with the admin's cookie paused the
// engine), accepts only application/json bodies, and takes "bearer" in any case.
func TestAPIAuthenticatesOnlyWithTheHeader(t *testing.T) {
	e := newPageEnv(t, false)
	sess, _ := e.login(t, "dave-token-0123456789a")
	call := func(method, path, ct, body string, hdr map[string]string, cookies ...*http.Cookie) (int, string) {
		t.Helper()
		resp := e.do(t, method, path, ct, body, hdr, cookies...)
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	oldCookie := &http.Cookie{Name: "remedy_token", Value: "dave-token-0123456789a"}
	admin := map[string]string{"Authorization": "Bearer dave-token-0123456789a"}
	tests := []struct {
		name, method, path, ct, body string
		hdr                          map[string]string
		cookies                      []*http.Cookie
		code                         int
		errText                      string
	}{
		{"pause with the token in a cookie", "POST", "/api/v1/pause", "text/plain", `{"reason":"csrf="}`, nil, []*http.Cookie{oldCookie}, 401, "a valid bearer token is required"},
		{"pause with a session cookie", "POST", "/api/v1/pause", "application/json", `{"reason":"csrf"}`, nil, []*http.Cookie{sess}, 401, "a valid bearer token is required"},
		{"list with a session cookie", "GET", "/api/v1/approvals", "", "", nil, []*http.Cookie{sess}, 401, "a valid bearer token is required"},
		{"pause as text/plain", "POST", "/api/v1/pause", "text/plain", `{"reason":"csrf="}`, admin, nil, 415, `content type "text/plain" not supported, use application/json`},
		{"pause as a form", "POST", "/api/v1/pause", "application/x-www-form-urlencoded", `{"reason":"csrf="}`, admin, nil, 415, `content type "application/x-www-form-urlencoded" not supported, use application/json`},
		{"pause without a content type", "POST", "/api/v1/pause", "", `{"reason":"csrf="}`, admin, nil, 415, `content type "" not supported, use application/json`},
		{"approve as text/plain", "POST", "/api/v1/approvals/act-1/approve", "text/plain", `{"reason":"x"}`, map[string]string{"Authorization": "Bearer bob-token-0123456789ab"}, nil, 415, `content type "text/plain" not supported, use application/json`},
		{"list with lower-case bearer", "GET", "/api/v1/approvals", "", "", map[string]string{"Authorization": "bearer carol-token-0123456789"}, nil, 200, ""},
	}
	for _, tt := range tests {
		code, body := call(tt.method, tt.path, tt.ct, tt.body, tt.hdr, tt.cookies...)
		if code != tt.code || (tt.errText != "" && body != `{"error":`+strconvQuote(tt.errText)+`}`) {
			t.Errorf("%s: %d %s", tt.name, code, body)
		}
	}
	if n := e.sw.pauses(); n != 0 || e.state(t) != Pending {
		t.Fatalf("refused requests paused %d times, action %s", n, e.state(t))
	}
	if code, body := call("POST", "/api/v1/pause", "application/json; charset=utf-8", `{"reason":"maintenance"}`, admin); code != 200 || e.sw.pauses() != 1 {
		t.Errorf("a JSON pause with the header: %d %s", code, body)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
