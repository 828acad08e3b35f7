package signed

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedyhq/remedy/executors"
)

// TestLoadPublicKeyFromCertificate: the agents take the public key of a self-signed
// certificate of the engine's key (what the Helm chart makes), and verify with it.
func TestLoadPublicKeyFromCertificate(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "remedy-dispatch"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dispatch.pub")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPublicKey(path)
	if err != nil || !got.Equal(pub) {
		t.Fatalf("LoadPublicKey(certificate) = %x, %v; want %x", got, err, pub)
	}
	sealed, err := Seal(executors.Request{ID: "a1", Action: "sysctl.set", Node: "n"}, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(sealed, got); err != nil {
		t.Errorf("Open with the certificate's key: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pub")
	if err := os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublicKey(bad); err == nil {
		t.Error("a broken certificate loaded")
	}
}
