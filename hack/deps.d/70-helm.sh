#!/usr/bin/env bash
# helm, for deploy/chart: `helm lint` and `helm template` in deploy/chart_test.go. Built from
# the Go module proxy (helm.sh/helm/v4, the only source here) into .cache/bin, which the
# deploy tests look in.
#
# Idempotent: a helm that is already there at this version is not rebuilt (HELM_DEPS_FORCE=1
# rebuilds anyway). The build goes to a temporary name first, so an interrupted build never
# leaves a binary the next run would take for a finished one.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin="$root/.cache/bin"
version=v4.3.2
mkdir -p "$bin"
if [ "${HELM_DEPS_FORCE:-}" != 1 ] && [ -x "$bin/helm" ] && "$bin/helm" version --short 2>/dev/null | grep "^$version" >/dev/null; then
  echo "helm: $("$bin/helm" version --short)"
  exit 0
fi
echo "building helm $version into .cache/bin (cold: several minutes) ..."
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# go install pkg@version builds the module as released, with its own go.mod; the ldflags
# set the version `helm version` prints (the release builds set it the same way).
GOFLAGS=-mod=mod GOBIN="$tmp" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
  "helm.sh/helm/v4/cmd/helm@$version"
mv "$tmp/helm" "$bin/helm"
echo "built helm in $(( $(date +%s) - start ))s: $("$bin/helm" version --short)"
