package signed

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/remedyhq/remedy/executors"
)

func TestSealOpen(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")
	if err := GenerateKey(priv, pub); err != nil {
		t.Fatal(err)
	}
	sk, err := LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	_, otherSK, _ := ed25519.GenerateKey(nil)
	req := executors.Request{ID: "a1", Action: "sysctl.set", Node: "n", Params: json.RawMessage(`{"key":"k","value":1}`)}

	good, _ := Seal(req, sk)
	unsigned, _ := Seal(req, nil)
	forged, _ := Seal(req, otherSK)
	var env Envelope
	_ = json.Unmarshal(good, &env)
	env.Request = json.RawMessage(`{"id":"a1","action":"sysctl.set","node":"n","params":{"key":"k","value":999999}}`)
	tampered, _ := json.Marshal(env)

	for _, tc := range []struct {
		name string
		in   []byte
		pub  ed25519.PublicKey
		want error
	}{
		{"signed", good, pk, nil},
		{"unsigned, no key configured", unsigned, nil, nil},
		{"unsigned", unsigned, pk, ErrUnsigned},
		{"other key", forged, pk, ErrBadSignature},
		{"tampered params", tampered, pk, ErrBadSignature},
		{"not an envelope", []byte(`[]`), pk, ErrMalformed},
	} {
		got, err := Open(tc.in, tc.pub)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if tc.want != ErrMalformed && got.ID != "a1" {
			t.Errorf("%s: the request id must be returned for the refusal report, got %q", tc.name, got.ID)
		}
	}
	if _, err := LoadPublicKey(priv); err == nil || err.Error() != `key `+priv+`: no PEM block of type "PUBLIC KEY"` {
		t.Errorf("wrong key type: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	req := executors.Request{ID: "a", Action: "x", Node: "n"}
	b, _ := Seal(req, nil)
	f.Add(b)
	_, sk, _ := ed25519.GenerateKey(nil)
	pk := sk.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, in []byte) {
		if r, err := Open(in, pk); err == nil && r.ID == "" && r.Action == "" && len(in) < 2 {
			t.Fatalf("accepted %q", in)
		}
	})
}
