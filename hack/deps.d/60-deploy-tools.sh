#!/usr/bin/env bash
# Tools that check what deploy/ ships: kubectl (kustomize rendering, apply --dry-run=server
# against test/kubeenv's kube-apiserver), promtool (Debian's prometheus: check and unit-test
# the alert rules) and amtool (prometheus-alertmanager: check the Alertmanager example).
#
# Idempotent: installs only what is missing. kubectl comes with this machine kind; where it
# is missing it is built from the Go module proxy into .cache/bin (the only source here).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# deploy/gen-secrets.sh makes random tokens and the ed25519 signing key with openssl.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts the packaged servers as services; nothing here needs them running.
if command -v service >/dev/null 2>&1; then
  service prometheus stop >/dev/null 2>&1 || true
  service prometheus-alertmanager stop >/dev/null 2>&1 || true
fi

# kubectl comes with this machine kind; where it is missing, build it from the same tools
# module (and replace list) as kube-apiserver, into .cache/bin, which the tests look in.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$root/.cache/bin/kubectl" ]; then
  echo "building kubectl into .cache/bin (cold: several minutes) ..."
  mkdir -p "$root/.cache/bin"
  (cd "$root/test/tools/k8s" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
    -o "$root/.cache/bin/.kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
  mv "$root/.cache/bin/.kubectl.tmp" "$root/.cache/bin/kubectl"
fi

echo "promtool: $(promtool --version 2>&1 | sed -n 1p)"
echo "amtool: $(amtool --version 2>&1 | sed -n 1p)"
echo "kubectl: $( (command -v kubectl || echo "$root/.cache/bin/kubectl") | sed -n 1p)"
