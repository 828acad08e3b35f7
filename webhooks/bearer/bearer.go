// Package bearer reads the bearer token of an HTTP request: the one parser every door of
// remedy uses (the webhook, the approvals and kill switch API, the audit and policy API,
// /metrics), so that they all accept the same headers. The scheme is case-insensitive
// (RFC 9110 §11.1: "Bearer", "bearer" and "BEARER" are one scheme) and the token is the
// rest of the header with surrounding blanks removed.
package bearer

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Token returns the bearer token of an Authorization header value, or false when the
// header is empty, names another scheme or carries no token.
func Token(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// FromRequest returns the bearer token of r's Authorization header.
func FromRequest(r *http.Request) (string, bool) { return Token(r.Header.Get("Authorization")) }

// Matches reports whether r carries want as its bearer token, compared in constant time.
// An empty want matches nothing.
func Matches(r *http.Request, want string) bool {
	got, ok := FromRequest(r)
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
