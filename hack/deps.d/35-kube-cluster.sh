#!/usr/bin/env bash
# Builds the rest of a cluster without containers for the whole-cluster tests
# (test/kubeenv's cluster mode): kube-scheduler and kube-controller-manager from the same
# tools module and flags as kube-apiserver (test/tools/k8s, see 30-kube.sh), and kwok, the
# simulated kubelet of fake nodes (test/tools/kwok), into .cache/k8s/bin. kwok's stages
# are committed as test/tools/kwok/stages.yaml.
#
# Idempotent: a binary that is already there is not rebuilt. Cold, with the apiserver's
# build cache warm: about 2.5 minutes for the two Kubernetes binaries and 2 for kwok on
# an idle 2-core machine; 9, 12 and 15 minutes when six builds and test runs share it.
# Set KUBE_DEPS_FORCE=1 to rebuild anyway.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=kube-build.bash
source "$root/hack/deps.d/kube-build.bash"

if need kube-scheduler; then
  build kube-scheduler test/tools/k8s k8s.io/kubernetes/cmd/kube-scheduler "$ldflags"
fi
if need kube-controller-manager; then
  build kube-controller-manager test/tools/k8s k8s.io/kubernetes/cmd/kube-controller-manager "$ldflags"
fi
if need kwok; then
  build kwok test/tools/kwok sigs.k8s.io/kwok/cmd/kwok "-s -w"
fi
"$bin/kube-scheduler" --version
"$bin/kube-controller-manager" --version
"$bin/kwok" --version 2>/dev/null | sed -n 1p || true
