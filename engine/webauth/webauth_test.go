package webauth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testSessions(t *testing.T, o Options) (*Sessions, *time.Time) {
	t.Helper()
	tk, err := LoadTokens("testdata/approvers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	o.Tokens, o.Now = tk, func() time.Time { return now }
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, &now
}

func loginReq(token string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://remedy.example:9095/approvals/login", strings.NewReader(url.Values{TokenField: {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func login(t *testing.T, s *Sessions, token string) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	if _, err := s.Login(w, loginReq(token, "Origin", "http://remedy.example:9095")); err != nil {
		t.Fatal(err)
	}
	return w.Result().Cookies()[0]
}

func postWith(c *http.Cookie, csrf string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://remedy.example:9095/approvals/a/approve", strings.NewReader(url.Values{CSRFField: {csrf}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestSessionLifecycle(t *testing.T) {
	s, now := testSessions(t, Options{TTL: time.Hour})
	c := login(t, s, "bob-token-0123456789ab")
	sess, ok := s.Get(postWith(c, ""))
	if !ok || sess.Identity != (Identity{Name: "bob", Role: Approver}) || sess.Expires != now.Add(time.Hour) {
		t.Fatalf("session %+v %v", sess, ok)
	}
	if _, err := s.Check(postWith(c, sess.CSRF)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(postWith(c, sess.CSRF+"x")); !errors.Is(err, ErrCSRF) {
		t.Errorf("wrong CSRF token: %v", err)
	}
	if _, err := s.Check(postWith(nil, sess.CSRF)); !errors.Is(err, ErrNoSession) {
		t.Errorf("no cookie: %v", err)
	}
	if _, err := s.Check(postWith(&http.Cookie{Name: CookieName, Value: "bob-token-0123456789ab"}, sess.CSRF)); !errors.Is(err, ErrNoSession) {
		t.Errorf("the token as a cookie: %v", err)
	}
	*now = now.Add(time.Hour)
	if _, err := s.Check(postWith(c, sess.CSRF)); !errors.Is(err, ErrNoSession) || s.Len() != 0 {
		t.Errorf("after the TTL: %v, %d sessions", err, s.Len())
	}
}

func TestLogout(t *testing.T) {
	s, _ := testSessions(t, Options{})
	c := login(t, s, "bob-token-0123456789ab")
	other := login(t, s, "bob-token-0123456789ab")
	sess, _ := s.Get(postWith(c, ""))
	w := httptest.NewRecorder()
	if err := s.Logout(w, postWith(c, sess.CSRF)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get(postWith(c, "")); ok {
		t.Error("session open after logout")
	}
	if _, ok := s.Get(postWith(other, "")); !ok {
		t.Error("logout ended the same person's other session")
	}
}

func TestSameOrigin(t *testing.T) {
	s, _ := testSessions(t, Options{TrustedOrigins: []string{"https://remedy.public.example"}})
	for _, tt := range []struct {
		hdr []string
		ok  bool
	}{
		{nil, true}, // not a browser
		{[]string{"Sec-Fetch-Site", "same-origin"}, true},
		{[]string{"Origin", "http://remedy.example:9095"}, true},
		{[]string{"Origin", "https://remedy.public.example"}, true},
		{[]string{"Origin", "https://remedy.public.example", "Sec-Fetch-Site", "cross-site"}, true},
		{[]string{"Origin", "http://remedy.example:9096"}, false},
		{[]string{"Origin", "http://a.remedy.example:9095"}, false},
		{[]string{"Sec-Fetch-Site", "same-site"}, false},
		{[]string{"Sec-Fetch-Site", "cross-site"}, false},
	} {
		err := s.SameOrigin(loginReq("x", tt.hdr...))
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrCrossOrigin)) {
			t.Errorf("%v: %v", tt.hdr, err)
		}
	}
	if _, err := New(Options{TrustedOrigins: []string{"remedy.example"}}); err == nil {
		t.Error("an origin without a scheme was accepted")
	}
}

func TestMaxSessions(t *testing.T) {
	s, now := testSessions(t, Options{MaxSessions: 3})
	var cs []*http.Cookie
	for range 5 {
		cs = append(cs, login(t, s, "alice-token-0123456789"))
		*now = now.Add(time.Second)
	}
	if s.Len() != 3 {
		t.Fatalf("%d sessions", s.Len())
	}
	for i, c := range cs {
		if _, ok := s.Get(postWith(c, "")); ok != (i >= 2) {
			t.Errorf("session %d open = %v", i, ok)
		}
	}
}
