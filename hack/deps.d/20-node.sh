#!/usr/bin/env bash
# Node executors' tests: ip (netns, veth), ethtool (to compare with by hand) and dbus-daemon
# (a real bus that answers "no such service" for the irqbalance.restart D-Bus path).
# irqbalance itself is not installed: its package starts the daemon, which would rewrite the
# IRQ affinities of a machine other tests read.
set -euo pipefail
need=()
for p in dbus iproute2 ethtool; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
