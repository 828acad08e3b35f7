// Package webauth is the login of remedy's browser pages (the approvals page, and any
// other page that needs a person): who may log in (Tokens, the approvers file: a token per
// identity and role), the server-side session a login opens, and the checks every
// state-changing request from a page must pass.
//
// A login exchanges a token for a session: a random id in an HttpOnly, SameSite=Strict
// cookie (Secure under TLS) that names a session kept here, with its identity, its expiry
// and its CSRF token. The token itself never goes into a cookie, so a stolen cookie dies
// with its session (logout, expiry) and says nothing about the token.
//
// Every POST from a page passes two checks (Sessions.Check): it comes from the page's own
// origin (Sec-Fetch-Site same-origin, or an Origin equal to the Host; net/http's
// CrossOriginProtection), and it carries the session's CSRF token in the form field
// CSRFField (or the header CSRFHeader). SameSite alone is not enough: another port on the
// same host, or a sibling subdomain, is "same-site". Login, which has no session yet,
// passes the origin check.
//
// JSON APIs do not use sessions at all: they authenticate with the Authorization header
// only (Tokens.Authenticate), which a browser never adds to a forged request.
//
// Sessions live in the process's memory: a restart logs everyone out, and replicas behind
// a load balancer need it to keep a client on one replica (or people log in again).
//
// A page uses it like this (engine/approval/http.go does; app.App.Sessions is the
// engine's one store, so one login serves every page):
//
//	sess, ok := sessions.Get(r)              // GET: render, with sess.CSRF in every form
//	sess, err := sessions.Check(r)           // POST: act as sess.Identity, or refuse
//	_, err := sessions.Login(w, r)           // the login form's POST, then redirect
//	err := sessions.Logout(w, r)             // the logout form's POST
//	who, ok := sessions.Tokens().Authenticate(r) // a JSON API: the Authorization header
//
// ErrNoSession asks for a login; ErrCrossOrigin and ErrCSRF are a forged request (403).
package webauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Names of the cookie, the form field and the header.
const (
	// CookieName holds the session id.
	CookieName = "remedy_session"
	// CSRFField is the form field that carries the session's CSRF token.
	CSRFField = "csrf"
	// CSRFHeader carries the CSRF token for a page's script (remedy's pages have none).
	CSRFHeader = "X-CSRF-Token"
	// TokenField is the login form's field for the token.
	TokenField = "token"
)

// Defaults.
const (
	DefaultTTL         = 12 * time.Hour
	DefaultMaxSessions = 10000
)

// Refusals of Login, Check and Logout.
var (
	// ErrCrossOrigin: the request came from another origin.
	ErrCrossOrigin = errors.New("cross-origin request refused")
	// ErrNoSession: no session cookie, or one for a session that ended or never was.
	ErrNoSession = errors.New("not logged in, or the session ended")
	// ErrCSRF: the request does not carry its session's CSRF token.
	ErrCSRF = errors.New("missing or wrong CSRF token")
	// ErrUnknownToken: the login token is not in the approvers file.
	ErrUnknownToken = errors.New("unknown token")
)

// Options configure Sessions.
type Options struct {
	// Tokens are who may log in.
	Tokens Tokens
	// TTL is how long a session lasts from login (default 12h).
	TTL time.Duration
	// MaxSessions bounds the sessions kept; past it the oldest is ended (default 10,000).
	MaxSessions int
	// TrustedOrigins are other origins ("https://remedy.example.com") whose pages may
	// post: a reverse proxy that changes the Host header needs its public origin here.
	TrustedOrigins []string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Session is one login.
type Session struct {
	Identity Identity
	// CSRF is the token every state-changing request of this session must carry.
	CSRF    string
	Created time.Time
	Expires time.Time
	id      [32]byte // sha256 of the cookie value: the map key
}

// Sessions keeps the logins of the browser pages.
type Sessions struct {
	o      Options
	origin *http.CrossOriginProtection
	mu     sync.Mutex
	byID   map[[32]byte]*Session
}

// New builds the session store; a trusted origin that does not parse is an error.
func New(o Options) (*Sessions, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sessions{o: o, origin: http.NewCrossOriginProtection(), byID: map[[32]byte]*Session{}}
	for _, to := range o.TrustedOrigins {
		if err := s.origin.AddTrustedOrigin(to); err != nil {
			return nil, fmt.Errorf("trusted origin: %w", err)
		}
	}
	return s, nil
}

// Tokens returns who may log in (for the JSON API beside the page).
func (s *Sessions) Tokens() Tokens { return s.o.Tokens }

// SameOrigin refuses a state-changing request from another origin (GET, HEAD and
// OPTIONS always pass: they must change nothing).
func (s *Sessions) SameOrigin(r *http.Request) error {
	if err := s.origin.Check(r); err != nil {
		return fmt.Errorf("%w: %v", ErrCrossOrigin, err)
	}
	return nil
}

// Login handles a login form: a same-origin POST whose TokenField names a known token.
// It opens a session and sets its cookie; the caller redirects.
func (s *Sessions) Login(w http.ResponseWriter, r *http.Request) (Session, error) {
	if err := s.SameOrigin(r); err != nil {
		return Session{}, err
	}
	who, ok := s.o.Tokens.Lookup(r.PostFormValue(TokenField))
	if !ok {
		return Session{}, ErrUnknownToken
	}
	raw, err := randomString()
	if err != nil {
		return Session{}, err
	}
	csrf, err := randomString()
	if err != nil {
		return Session{}, err
	}
	now := s.o.Now()
	sess := &Session{Identity: who, CSRF: csrf, Created: now, Expires: now.Add(s.o.TTL), id: sha256.Sum256([]byte(raw))}
	s.mu.Lock()
	s.pruneLocked(now, true)
	s.byID[sess.id] = sess
	s.mu.Unlock()
	http.SetCookie(w, s.cookie(r, raw, sess.Expires))
	return *sess, nil
}

// Get returns the session r's cookie names, if it is still open. It checks nothing
// else: use it to render a page, Check to act on one.
func (s *Sessions) Get(r *http.Request) (Session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return Session{}, false
	}
	id := sha256.Sum256([]byte(c.Value))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return Session{}, false
	}
	if !s.o.Now().Before(sess.Expires) {
		delete(s.byID, id)
		return Session{}, false
	}
	return *sess, true
}

// Check admits a state-changing request from a page: same origin, an open session, and
// that session's CSRF token in the form field CSRFField or the header CSRFHeader. It
// reads the form (r.ParseForm).
func (s *Sessions) Check(r *http.Request) (Session, error) {
	if err := s.SameOrigin(r); err != nil {
		return Session{}, err
	}
	sess, ok := s.Get(r)
	if !ok {
		return Session{}, ErrNoSession
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) != 1 {
		return Session{}, ErrCSRF
	}
	return sess, nil
}

// Logout ends the session of a checked request (same origin, CSRF token) and clears its
// cookie.
func (s *Sessions) Logout(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.Check(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.byID, sess.id)
	s.mu.Unlock()
	c := s.cookie(r, "", time.Unix(0, 0))
	c.MaxAge = -1
	http.SetCookie(w, c)
	return nil
}

// Len is the number of open sessions.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.o.Now(), false)
	return len(s.byID)
}

func (s *Sessions) cookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// pruneLocked drops expired sessions and, to make room for a new one, the oldest ones
// past MaxSessions.
func (s *Sessions) pruneLocked(now time.Time, room bool) {
	for id, sess := range s.byID {
		if !now.Before(sess.Expires) {
			delete(s.byID, id)
		}
	}
	for room && len(s.byID) >= s.o.MaxSessions {
		var oldest *Session
		for _, sess := range s.byID {
			if oldest == nil || sess.Created.Before(oldest.Created) {
				oldest = sess
			}
		}
		delete(s.byID, oldest.id)
	}
}

func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
