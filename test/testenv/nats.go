package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remedyhq/remedy/wire/bus"
	"github.com/remedyhq/remedy/wire/bus/embedded"
)

// NATSServerBin returns a nats-server binary of the same version remedy embeds (the
// github.com/nats-io/nats-server/v2 version in go.mod), built once from the module cache
// into .cache/bin. Tests that kill and restart a server need it as a separate process;
// Debian's package is years older than the embedded server and has its own restart bugs.
// REMEDY_NATS_SERVER names another binary to test against (e.g. the one a fleet runs).
func NATSServerBin(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("REMEDY_NATS_SERVER"); bin != "" {
		return bin
	}
	root := RepoRoot()
	list := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("nats-server version from go.mod: %v", err)
	}
	version := strings.TrimSpace(string(out))
	bin := filepath.Join(root, ".cache", "bin", "nats-server-"+version)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := bin + ".tmp" + strings.ReplaceAll(t.Name(), "/", "_")
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/nats-io/nats-server/v2")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server %s: %v\n%s", version, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil { // atomic: concurrent builders both succeed
		t.Fatal(err)
	}
	return bin
}

// JetStream starts an in-process NATS server with JetStream and remedy's streams (the
// embedded server `remedy serve` runs), connects to it, and stops both when the test
// ends. The context ends with the test, 30 s at most.
func JetStream(t testing.TB) (context.Context, *server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := bus.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	return ctx, ns, nc, js
}
