#!/usr/bin/env bash
# Debian packages the end-to-end tests run for real: Alertmanager (webhook sender),
# iproute2/ethtool (network namespaces). The standalone nats-server of the restart tests is
# built from go.mod's nats-server/v2 by test/testenv (the version remedy embeds).
set -euo pipefail
need=()
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi
# Debian starts the packaged Alertmanager as a service; the tests run their own.
if command -v service >/dev/null 2>&1; then service prometheus-alertmanager stop >/dev/null 2>&1 || true; fi
echo "alertmanager: $(prometheus-alertmanager --version 2>&1 | sed -n 1p)"
