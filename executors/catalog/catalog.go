// Package catalog lists the node actions remedy ships, built explicitly from options.
// The agent executes them; the engine uses the same list to check policy decisions.
// docs/actions.md documents each one; a test keeps its examples valid.
package catalog

import (
	"path/filepath"
	"time"

	"github.com/remedyhq/remedy/executors"
	"github.com/remedyhq/remedy/executors/internal/nic"
	"github.com/remedyhq/remedy/executors/irqbalance"
	"github.com/remedyhq/remedy/executors/irqspread"
	"github.com/remedyhq/remedy/executors/nicchannels"
	"github.com/remedyhq/remedy/executors/nicring"
	"github.com/remedyhq/remedy/executors/nicrps"
	"github.com/remedyhq/remedy/executors/nictune"
	"github.com/remedyhq/remedy/executors/sysctl"
)

// Options configure the node executors.
type Options struct {
	// HostRoot is where the host's / is mounted: "/" on a node, "/host" in a pod. The
	// executors read and write HostRoot/proc and HostRoot/sys, and irqbalance.restart
	// talks to HostRoot/run/dbus/system_bus_socket.
	HostRoot string
	// NetNS is the network namespace whose NICs the ethtool actions (nic.ring,
	// nic.channels, nic.tune) act on, as a path ("/host/proc/1/ns/net" for an agent
	// without hostNetwork); empty means the agent's own.
	NetNS string
	// IRQBalanceSettle is how long irqbalance.restart waits before re-reading the IRQ
	// affinities; 0 means irqbalance.DefaultSettle.
	IRQBalanceSettle time.Duration
	// DBusSocket is the host's system bus socket; empty means
	// HostRoot/run/dbus/system_bus_socket.
	DBusSocket string
}

// Node returns every node-local executor.
func Node(o Options) []executors.Executor {
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	if o.IRQBalanceSettle == 0 {
		o.IRQBalanceSettle = irqbalance.DefaultSettle
	}
	root := filepath.Clean(o.HostRoot)
	if o.DBusSocket == "" {
		o.DBusSocket = filepath.Join(root, "run", "dbus", "system_bus_socket")
	}
	dev := nic.Kernel{NetNS: o.NetNS}
	restart := irqbalance.New(root, o.IRQBalanceSettle)
	restart.Systemd = irqbalance.HostSystemd(o.DBusSocket)
	return []executors.Executor{
		sysctl.New(root),
		restart,
		irqspread.New(root),
		nicring.New(root, dev),
		nicchannels.New(root, dev),
		nicrps.NewRPS(root),
		nicrps.NewRFS(root),
		nictune.New(root, dev),
	}
}
