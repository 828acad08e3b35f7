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
# shellcheck source=kube-build.bash
source "$root/hack/deps.d/kube-build.bash"

if need etcd; then
  build etcd test/tools/etcd go.etcd.io/etcd/server/v3 "-s -w"
fi
if need kube-apiserver; then
  build kube-apiserver test/tools/k8s k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
fi
"$bin/kube-apiserver" --version
"$bin/etcd" --version | sed -n 1p
