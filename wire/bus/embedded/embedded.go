// Package embedded runs a NATS server with JetStream inside the engine process: the
// embedded default, so that `remedy serve` needs no external service.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options of the embedded server.
type Options struct {
	// Listen is host:port for clients (agents); port -1 picks a free one.
	Listen string
	// StoreDir holds the JetStream file store.
	StoreDir string
	// CalloutIssuer, when set, sends every client but the engine to the auth callout
	// with this issuer (an account public key; engine/natsauth answers it), and the
	// engine must connect as user "engine" with EnginePassword.
	CalloutIssuer  string
	EnginePassword string
}

// EngineUser is the engine's user on a server with auth callout.
const EngineUser = "engine"

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	host, port := "127.0.0.1", -1
	if o.Listen != "" {
		h, p, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", o.Listen, err)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("nats listen port %q: %w", p, err)
		}
		host, port = h, n
	}
	so := &server.Options{
		ServerName: "remedy-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	}
	if o.CalloutIssuer != "" {
		if o.EnginePassword == "" {
			return nil, fmt.Errorf("embedded nats: auth callout without an engine password")
		}
		so.Users = []*server.User{{Username: EngineUser, Password: o.EnginePassword}}
		so.AuthCallout = &server.AuthCallout{Issuer: o.CalloutIssuer, AuthUsers: []string{EngineUser}}
		so.AuthTimeout = 5 // seconds: room for a TokenReview
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if err := portFree(host, port); err != nil {
		ns.Shutdown()
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 10s")
	}
	return ns, nil
}

// portFree says so when the client port is taken: the server itself would only log
// that (and logs nothing here) and never become ready.
func portFree(host string, port int) error {
	if port <= 0 {
		return nil
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("embedded nats: listen %s: port %d is in use (another NATS server or remedy serve?): stop it or choose another address with --nats-listen", addr, port)
	}
	if err != nil {
		return fmt.Errorf("embedded nats: listen %s: %w", addr, err)
	}
	return ln.Close()
}
