#!/usr/bin/env bash
# Builds the real Kubernetes control plane the integration tests run against:
# kube-apiserver (test/tools/k8s) and etcd (test/tools/etcd) into .cache/k8s/bin.
#
# Idempotent: a binary that is already there is not rebuilt. The build flags are fixed on
# purpose: changing them invalidates the Go build cache and re-does a ~6 minute build.
# Set KUBE_DEPS_FORCE=1 to rebuild anyway.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin="$root/.cache/k8s/bin"
mkdir -p "$bin"

kube_version=v1.37.2
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${kube_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

need() { [ "${KUBE_DEPS_FORCE:-}" = 1 ] || [ ! -x "$bin/$1" ]; }

build() { # name, module dir, package, ldflags
  local name=$1 dir=$2 pkg=$3 flags=$4 start
  start=$(date +%s)
  echo "building $name (cold: several minutes) ..."
  # Build to a temp name and rename, so an interrupted build never leaves a binary that
  # the next run would mistake for a finished one.
  (cd "$root/$dir" && GOFLAGS=-mod=mod go build -trimpath -ldflags "$flags" -o "$bin/.$name.tmp" "$pkg")
  mv "$bin/.$name.tmp" "$bin/$name"
  echo "built $name in $(( $(date +%s) - start ))s"
}

if need etcd; then
  build etcd test/tools/etcd go.etcd.io/etcd/server/v3 "-s -w"
fi
if need kube-apiserver; then
  build kube-apiserver test/tools/k8s k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
fi
"$bin/kube-apiserver" --version
"$bin/etcd" --version | head -1
