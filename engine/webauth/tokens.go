package webauth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/remedyhq/remedy/webhooks/bearer"
)

// Role is what an identity may do: a viewer reads, an approver also approves and
// rejects, an admin also pauses and resumes.
type Role string

// Roles, in increasing power.
const (
	Viewer   Role = "viewer"
	Approver Role = "approver"
	Admin    Role = "admin"
)

func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Approver:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Allows reports whether r includes need.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() }

// Identity is an authenticated person.
type Identity struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// Actor is the identity as an audit actor ("user:<name>").
func (i Identity) Actor() string { return "user:" + i.Name }

// Token maps a bearer token to an identity.
type Token struct {
	Token    string `yaml:"token" json:"token"`
	Identity string `yaml:"identity" json:"identity"`
	Role     Role   `yaml:"role" json:"role"`
}

// Tokens is the approvers file. Tokens are compared by their SHA-256 in constant time and
// never printed.
type Tokens struct {
	Tokens []Token `yaml:"tokens" json:"tokens"`
}

// ErrTokens marks an invalid approvers file.
var ErrTokens = errors.New("approvers config")

var identityRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// LoadTokens reads and validates an approvers file.
func LoadTokens(path string) (Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Tokens{}, fmt.Errorf("read approvers: %w", err)
	}
	return ParseTokens(b)
}

// ParseTokens decodes strictly and validates: every token at least 16 characters and
// unique, identities well formed, roles known.
func ParseTokens(b []byte) (Tokens, error) {
	var t Tokens
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil && !errors.Is(err, io.EOF) {
		return Tokens{}, fmt.Errorf("%w: %v", ErrTokens, err)
	}
	seen := map[[32]byte]bool{}
	for i, tk := range t.Tokens {
		sum := sha256.Sum256([]byte(tk.Token))
		switch {
		case len(tk.Token) < 16:
			return Tokens{}, fmt.Errorf("%w: tokens[%d]: token must be at least 16 characters", ErrTokens, i)
		case seen[sum]:
			return Tokens{}, fmt.Errorf("%w: tokens[%d]: token used twice", ErrTokens, i)
		case !identityRE.MatchString(tk.Identity):
			return Tokens{}, fmt.Errorf("%w: tokens[%d]: invalid identity %q", ErrTokens, i, tk.Identity)
		case tk.Role.rank() == 0:
			return Tokens{}, fmt.Errorf("%w: tokens[%d]: role must be viewer, approver or admin, got %q", ErrTokens, i, tk.Role)
		}
		seen[sum] = true
	}
	return t, nil
}

// String hides the tokens.
func (t Tokens) String() string {
	parts := make([]string, len(t.Tokens))
	for i, tk := range t.Tokens {
		parts[i] = tk.Identity + "(" + string(tk.Role) + ")=<hidden>"
	}
	return "Tokens[" + strings.Join(parts, " ") + "]"
}

// Lookup returns the identity of a token.
func (t Tokens) Lookup(token string) (Identity, bool) {
	if token == "" {
		return Identity{}, false
	}
	sum := sha256.Sum256([]byte(token))
	var found Identity
	ok := false
	for _, tk := range t.Tokens {
		s := sha256.Sum256([]byte(tk.Token))
		if subtle.ConstantTimeCompare(sum[:], s[:]) == 1 {
			found, ok = Identity{Name: tk.Identity, Role: tk.Role}, true
		}
	}
	return found, ok
}

// Authenticate reads the bearer token of r's Authorization header (never a cookie: a
// browser adds cookies to a forged request by itself, never this header) and returns its
// identity. The JSON APIs authenticate with it.
func (t Tokens) Authenticate(r *http.Request) (Identity, bool) {
	tok, ok := bearer.FromRequest(r)
	if !ok {
		return Identity{}, false
	}
	return t.Lookup(tok)
}
