#!/usr/bin/env bash
# The OPA CLI, for `opa test`, `opa check --strict` and `opa fmt --list` over policies/
# (policies/policies_test.go runs them). Regal, the Rego linter, is not served by the Go
# module proxy here; `opa check --strict` and `opa fmt` stand in for it.
#
# Idempotent: installs into .cache/bin only when the binary is missing or another version.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=v1.22.3
bin="$PWD/.cache/bin"
mkdir -p "$bin"
if [ -x "$bin/opa" ] && "$bin/opa" version 2>/dev/null | grep -x "Version: ${version#v}" >/dev/null; then
  echo "opa: $("$bin/opa" version | sed -n 1p)"
  exit 0
fi
echo "installing opa $version into $bin ..."
# Install under a temp GOBIN and move into place, so an interrupted build never leaves a
# binary the next run would take for a finished one.
tmp=$(mktemp -d "$bin/.opa.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/opa@$version"
mv "$tmp/opa" "$bin/opa"
echo "opa: $("$bin/opa" version | sed -n 1p)"
