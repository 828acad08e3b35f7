package audit

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Checkpoint is what retention removed: the Detail of a retention.checkpoint event.
// Verification starts after ThroughSeq, whose hash was LastHash.
type Checkpoint struct {
	ThroughSeq int64     `json:"throughSeq"`
	LastHash   string    `json:"lastHash"`
	Removed    int64     `json:"removed"`
	Oldest     time.Time `json:"oldest"`
	Newest     time.Time `json:"newest"`
	Before     time.Time `json:"before"`
	KeyID      string    `json:"keyId"`
	Signature  string    `json:"signature,omitempty"`
}

// signed is the byte string a checkpoint's signature covers.
func (c Checkpoint) signed() []byte {
	c.Signature = ""
	b, _ := json.Marshal(c) // a struct of strings, ints and times always marshals
	return append([]byte("remedy-audit-checkpoint/v1\n"), b...)
}

// Signer signs and checks retention checkpoints.
type Signer interface {
	KeyID() string
	Sign(msg []byte) ([]byte, error)
	Verify(msg, sig []byte) bool
}

// Checkpoint errors.
var (
	ErrVerifyOnly   = errors.New("checkpoint key can only verify")
	ErrNoKey        = errors.New("checkpoint signature cannot be checked: no key configured")
	ErrBadSignature = errors.New("checkpoint signature is invalid")
)

// HMACSigner signs with HMAC-SHA256: simple, but whoever verifies can also sign.
type HMACSigner struct{ key []byte }

// NewHMACSigner returns an HMAC-SHA256 signer; its key id is a hash of the key.
func NewHMACSigner(key []byte) *HMACSigner { return &HMACSigner{key: key} }

// KeyID implements Signer.
func (s *HMACSigner) KeyID() string {
	sum := sha256.Sum256(s.key)
	return "hmac-sha256:" + hex.EncodeToString(sum[:8])
}

// Sign implements Signer.
func (s *HMACSigner) Sign(msg []byte) ([]byte, error) {
	m := hmac.New(sha256.New, s.key)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Verify implements Signer.
func (s *HMACSigner) Verify(msg, sig []byte) bool {
	want, _ := s.Sign(msg)
	return hmac.Equal(want, sig)
}

// Ed25519Signer signs with an ed25519 key; an auditor verifies with the public key only.
type Ed25519Signer struct {
	priv ed25519.PrivateKey // nil: verify only
	pub  ed25519.PublicKey
}

// NewEd25519Signer signs with priv.
func NewEd25519Signer(priv ed25519.PrivateKey) *Ed25519Signer {
	return &Ed25519Signer{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
}

// NewEd25519Verifier checks signatures with pub and cannot sign.
func NewEd25519Verifier(pub ed25519.PublicKey) *Ed25519Signer { return &Ed25519Signer{pub: pub} }

// Public is the key that verifies this signer's signatures.
func (s *Ed25519Signer) Public() ed25519.PublicKey { return s.pub }

// KeyID implements Signer.
func (s *Ed25519Signer) KeyID() string {
	sum := sha256.Sum256(s.pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// Sign implements Signer.
func (s *Ed25519Signer) Sign(msg []byte) ([]byte, error) {
	if s.priv == nil {
		return nil, ErrVerifyOnly
	}
	return ed25519.Sign(s.priv, msg), nil
}

// Verify implements Signer.
func (s *Ed25519Signer) Verify(msg, sig []byte) bool { return ed25519.Verify(s.pub, msg, sig) }

// SealCheckpoint signs c and returns the retention.checkpoint event that records it.
func SealCheckpoint(c Checkpoint, keys Signer, now time.Time) (Event, error) {
	if keys == nil {
		return Event{}, ErrNoSigner
	}
	c.KeyID = keys.KeyID()
	sig, err := keys.Sign(c.signed())
	if err != nil {
		return Event{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	c.Signature = base64.StdEncoding.EncodeToString(sig)
	detail, err := json.Marshal(c)
	if err != nil {
		return Event{}, fmt.Errorf("encode checkpoint: %w", err)
	}
	return Event{
		Time:    now,
		Type:    RetentionCheckpoint,
		Actor:   ActorEngine,
		Outcome: OutcomeOK,
		Key:     fmt.Sprintf("checkpoint:%d", c.ThroughSeq),
		Detail:  detail,
	}, nil
}

// OpenCheckpoint decodes a retention.checkpoint event's Detail and checks its signature.
// When the signature does not check it returns the decoded (untrusted) checkpoint with
// the error, nil only when the detail does not decode.
func OpenCheckpoint(detail []byte, keys Signer) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(detail, &c); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	if keys == nil {
		return &c, ErrNoKey
	}
	if c.KeyID != keys.KeyID() {
		return &c, fmt.Errorf("checkpoint signed with key %s, have %s", c.KeyID, keys.KeyID())
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !keys.Verify(c.signed(), sig) {
		return &c, ErrBadSignature
	}
	return &c, nil
}

// ErrBadKey marks a checkpoint key that ParseKey cannot read.
var ErrBadKey = errors.New("audit key must be ed25519:<base64 seed>, ed25519-pub:<base64 public key> or hmac:<base64 key>")

// ParseKey reads a checkpoint key as kept in a key file: "ed25519:" and the base64 of a
// 32-byte seed (signs), "ed25519-pub:" and the base64 of a public key (verifies only),
// or "hmac:" and the base64 of a secret. Surrounding space is ignored.
func ParseKey(s string) (Signer, error) {
	kind, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return nil, ErrBadKey
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch {
	case kind == "ed25519" && len(raw) == ed25519.SeedSize:
		return NewEd25519Signer(ed25519.NewKeyFromSeed(raw)), nil
	case kind == "ed25519-pub" && len(raw) == ed25519.PublicKeySize:
		return NewEd25519Verifier(raw), nil
	case kind == "hmac" && len(raw) >= 16:
		return NewHMACSigner(raw), nil
	}
	return nil, fmt.Errorf("%w: %s key of %d bytes", ErrBadKey, kind, len(raw))
}

// PublicKey is the verify-only form of s for auditors ("ed25519-pub:…"); an HMAC key has
// none and returns "".
func PublicKey(s Signer) string {
	if ed, ok := s.(*Ed25519Signer); ok {
		return "ed25519-pub:" + base64.StdEncoding.EncodeToString(ed.pub)
	}
	return ""
}
