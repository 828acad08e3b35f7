// Package signed seals action requests with ed25519 so that a node agent runs only what
// the engine sent: an agent with a verify key refuses unsigned and wrongly signed
// actions. The envelope signs the exact request bytes it carries, so verification never
// depends on how JSON is re-encoded.
//
// Only the standard library is used: the lean agent imports this package.
package signed

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/remedyhq/remedy/executors"
)

// Envelope is the wire form of an action on remedy.actions.<node>.
type Envelope struct {
	Request json.RawMessage `json:"request"`
	Sig     []byte          `json:"sig,omitempty"`
}

// Errors of Open.
var (
	ErrUnsigned     = errors.New("action is not signed")
	ErrBadSignature = errors.New("action signature does not verify")
	ErrMalformed    = errors.New("malformed action envelope")
)

// Seal encodes a request, signed when key is non-nil.
func Seal(req executors.Request, key ed25519.PrivateKey) ([]byte, error) {
	rb, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode action: %w", err)
	}
	env := Envelope{Request: rb}
	if key != nil {
		env.Sig = ed25519.Sign(key, rb)
	}
	return json.Marshal(env)
}

// Open decodes an envelope. With a public key the signature is required and checked;
// without one (development) any envelope is accepted. The request is returned even
// when verification fails, so that the refusal can be reported under its id.
func Open(b []byte, pub ed25519.PublicKey) (executors.Request, error) {
	var env Envelope
	var req executors.Request
	if err := json.Unmarshal(b, &env); err != nil || len(env.Request) == 0 {
		return req, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Request))
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%w: request: %v", ErrMalformed, err)
	}
	if pub == nil {
		return req, nil
	}
	if len(env.Sig) == 0 {
		return req, ErrUnsigned
	}
	if !ed25519.Verify(pub, env.Request, env.Sig) {
		return req, ErrBadSignature
	}
	return req, nil
}

// GenerateKey writes a new key pair as PEM (PKCS#8 private key, PKIX public key).
func GenerateKey(privPath, pubPath string) error {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pb, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if err := os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pb}), 0o644); err != nil {
		return fmt.Errorf("write verify key: %w", err)
	}
	return nil
}

// LoadPrivateKey reads a PEM PKCS#8 ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: %T is not an ed25519 key", path, k)
	}
	return ek, nil
}

// LoadPublicKey reads a PEM PKIX ed25519 public key, or the public key of a PEM
// certificate: the Helm chart (deploy/chart) makes the key pair with Helm's functions,
// which can write a key's self-signed certificate but not the bare public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	var k any
	if b, err := os.ReadFile(path); err == nil {
		if blk, _ := pem.Decode(b); blk != nil && blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("verify key %s: %w", path, err)
			}
			k = c.PublicKey
		}
	}
	if k == nil {
		der, err := readPEM(path, "PUBLIC KEY")
		if err != nil {
			return nil, err
		}
		if k, err = x509.ParsePKIXPublicKey(der); err != nil {
			return nil, fmt.Errorf("verify key %s: %w", path, err)
		}
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("verify key %s: %T is not an ed25519 key", path, k)
	}
	return ek, nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("key %s: no PEM block of type %q", path, typ)
	}
	return blk.Bytes, nil
}
