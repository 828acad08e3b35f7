package embedded

import (
	"fmt"
	"net"
	"testing"
)

// TestPortInUse: with the client port taken, Start names the port in use at once instead
// of "not ready after 10s".
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr)
	ns, err := Start(Options{Listen: addr.String(), StoreDir: t.TempDir()})
	if ns != nil {
		ns.Shutdown()
	}
	want := fmt.Sprintf("embedded nats: listen %s: port %d is in use (another NATS server or remedy serve?): stop it or choose another address with --nats-listen", addr, addr.Port)
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	// A free port starts.
	ns, err = Start(Options{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
}
