// Package mtls builds the server TLS configuration of remedy's HTTP listener (webhook,
// API, metrics): a certificate and key, and optionally a CA whose certificates every
// client must present (mutual TLS, tls.RequireAndVerifyClientCert). The files are read
// again when they change on disk, so a rotated certificate (cert-manager, a renewed
// Secret) is served from the next handshake on without a restart; a change that does not
// load keeps the previous, working configuration and is logged.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files name the PEM files of a server TLS configuration.
type Files struct {
	// Cert and Key are the server's certificate (chain) and private key.
	Cert, Key string
	// ClientCA, when set, holds the CA certificates client certificates must chain to;
	// a client without such a certificate is refused in the handshake.
	ClientCA string
}

// Enabled reports whether any file is named.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// ServerConfig loads the files (failing if they do not load) and returns a config for
// tls.NewListener that reloads them when they change.
func ServerConfig(f Files, log *slog.Logger) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tls: both a certificate and a key are required (--tls-cert-file, --tls-key-file)")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &reloader{files: f, log: log}
	cfg, stamp, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cfg, r.stamp = cfg, stamp
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.current(), nil },
	}, nil
}

type reloader struct {
	files Files
	log   *slog.Logger

	mu    sync.Mutex
	cfg   *tls.Config
	stamp []fileStamp
}

// fileStamp is what "changed" means: another size or modification time.
type fileStamp struct {
	size int64
	mod  time.Time
}

func (r *reloader) paths() []string {
	p := []string{r.files.Cert, r.files.Key}
	if r.files.ClientCA != "" {
		p = append(p, r.files.ClientCA)
	}
	return p
}

func (r *reloader) stamps() ([]fileStamp, error) {
	var out []fileStamp
	for _, p := range r.paths() {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out = append(out, fileStamp{fi.Size(), fi.ModTime()})
	}
	return out, nil
}

// current returns the configuration, reloading it first when a file changed. A
// handshake costs a few stat calls; keep-alive connections make handshakes rare.
func (r *reloader) current() *tls.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.stamps()
	if err != nil || equalStamps(st, r.stamp) {
		return r.cfg
	}
	cfg, st, err := r.load()
	if err != nil {
		// Half-written during a rotation, or broken: keep serving the last good one,
		// and try again at the next handshake.
		r.log.Warn("tls files changed but do not load; keeping the previous certificates", "err", err)
		return r.cfg
	}
	r.log.Info("tls certificates reloaded", "cert", r.files.Cert, "client_ca", r.files.ClientCA)
	r.cfg, r.stamp = cfg, st
	return cfg
}

func equalStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].size != b[i].size || !a[i].mod.Equal(b[i].mod) {
			return false
		}
	}
	return true
}

// load reads the files; the stamps are taken first so that a change during the read is
// seen again at the next handshake.
func (r *reloader) load() (*tls.Config, []fileStamp, error) {
	st, err := r.stamps()
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: load certificate %s and key %s: %w", r.files.Cert, r.files.Key, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if r.files.ClientCA != "" {
		pem, err := os.ReadFile(r.files.ClientCA)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("tls: no PEM certificate in client CA file %s", r.files.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, st, nil
}
