// Package signal is remedy's one model for everything that comes in: an Alertmanager
// alert, a CloudEvent from a node agent, a Kubernetes node condition. Every source turns
// its input into a Signal; the engine never sees the source's own types.
//
// The package is deliberately dependency-free so that the lean node agent can import it.
package signal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind names the condition a signal reports.
type Kind string

// The kinds remedy ships policies for. Other kinds are allowed: a policy decides what
// they mean.
const (
	KindIRQSkew     Kind = "irq_skew"
	KindPacketDrops Kind = "packet_drops"
	KindVMFreeze    Kind = "vm_freeze"
	KindPSI         Kind = "psi"
)

// Status is firing or resolved, as in Alertmanager.
type Status string

// Signal statuses.
const (
	Firing   Status = "firing"
	Resolved Status = "resolved"
)

// Signal is one observation of a condition on one node.
type Signal struct {
	// Source names where the signal came from: "alertmanager", "agent", "kubernetes", ...
	Source string `json:"source"`
	Kind   Kind   `json:"kind"`
	Node   string `json:"node"`
	Status Status `json:"status"`
	// Fingerprint identifies the condition across repeats (Alertmanager's fingerprint, or
	// a hash of node+kind+labels for other sources).
	Fingerprint string             `json:"fingerprint"`
	StartsAt    time.Time          `json:"startsAt"`
	EndsAt      time.Time          `json:"endsAt,omitzero"`
	Labels      map[string]string  `json:"labels,omitempty"`
	Annotations map[string]string  `json:"annotations,omitempty"`
	Values      map[string]float64 `json:"values,omitempty"`
	// Raw is the source's own payload for this signal, kept for the audit trail.
	Raw json.RawMessage `json:"raw,omitempty"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// Sentinel errors returned by Validate.
var (
	ErrNoNode    = errors.New("signal has no node")
	ErrNoKind    = errors.New("signal has no kind")
	ErrBadStatus = errors.New("signal status must be firing or resolved")
)

// Validate checks the fields every consumer relies on. Node and kind become NATS subject
// tokens, so they are restricted to a safe alphabet.
func (s *Signal) Validate() error {
	switch {
	case s.Node == "":
		return ErrNoNode
	case !nameRE.MatchString(s.Node):
		return fmt.Errorf("invalid node name %q", s.Node)
	case s.Kind == "":
		return ErrNoKind
	case !nameRE.MatchString(string(s.Kind)):
		return fmt.Errorf("invalid kind %q", s.Kind)
	case s.Status != Firing && s.Status != Resolved:
		return fmt.Errorf("%w, got %q", ErrBadStatus, s.Status)
	}
	return nil
}

// Key is the signal's idempotency key: the same condition (fingerprint) that started at
// the same time and is in the same state is the same signal, however often it is
// delivered. Alertmanager re-sends firing alerts on every group_interval and retries on
// failure; both collapse onto one key.
func (s *Signal) Key() string {
	fp := s.Fingerprint
	if fp == "" {
		fp = s.Node + "/" + string(s.Kind)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d", s.Source, fp, s.Status, s.StartsAt.UnixNano())
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Subject is the NATS subject a signal travels on.
func (s *Signal) Subject() string {
	return SubjectPrefix + "." + NodeToken(s.Node) + "." + string(s.Kind)
}

// NodeToken is a node name as one NATS subject token and consumer name. The encoding is
// injective (ParseNodeToken undoes it) and its output holds only A-Z, a-z, 0-9, '-' and
// '_', which every subject token and JetStream name accepts:
//
//   - a name of letters, digits, '-' and '.' that starts with a letter or digit (every
//     Kubernetes node name) has its dots as underscores: ip-10-0-0-1.ec2.internal is
//     ip-10-0-0-1_ec2_internal, as before the encoding was made injective;
//   - any other name starts with '_' (which no name of the first kind does), then has
//     every byte other than a letter, digit or '-' as '_' and two lowercase hex digits:
//     a_b is _a_5fb, a.b_c is _a_2eb_5fc.
func NodeToken(node string) string {
	if plainNode(node) {
		return strings.ReplaceAll(node, ".", "_")
	}
	const hexDigits = "0123456789abcdef"
	b := make([]byte, 0, 1+3*len(node))
	b = append(b, '_')
	for i := 0; i < len(node); i++ {
		if c := node[i]; isAlnum(c) || c == '-' {
			b = append(b, c)
		} else {
			b = append(b, '_', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

// ErrBadNodeToken is returned by ParseNodeToken for a token NodeToken never makes.
var ErrBadNodeToken = errors.New("not a node token")

// ParseNodeToken returns the node name whose NodeToken tok is.
func ParseNodeToken(tok string) (string, error) {
	var node string
	if !strings.HasPrefix(tok, "_") {
		node = strings.ReplaceAll(tok, "_", ".")
	} else {
		b := make([]byte, 0, len(tok))
		for i := 1; i < len(tok); i++ {
			if tok[i] != '_' {
				b = append(b, tok[i])
				continue
			}
			if i+2 >= len(tok) {
				return "", fmt.Errorf("%w: %q: '_' without two hex digits", ErrBadNodeToken, tok)
			}
			hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("%w: %q: '_' without two hex digits", ErrBadNodeToken, tok)
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		}
		node = string(b)
	}
	if NodeToken(node) != tok { // one token per name: refuse every other spelling
		return "", fmt.Errorf("%w: %q", ErrBadNodeToken, tok)
	}
	return node, nil
}

// plainNode reports whether a name keeps its spelling in NodeToken, dots aside.
func plainNode(node string) bool {
	if node == "" || !isAlnum(node[0]) {
		return false
	}
	for i := 1; i < len(node); i++ {
		if c := node[i]; !isAlnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// SubjectPrefix is the root of the signal subjects: remedy.signals.<node>.<kind>.
const SubjectPrefix = "remedy.signals"

// Sink takes signals from a source. Submit returns once the signals are durably
// recorded (or with an error, in which case the source must not acknowledge them).
type Sink interface {
	Submit(ctx context.Context, sigs []Signal) error
}
