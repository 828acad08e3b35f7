# Shared by 30-kube.sh and 35-kube-cluster.sh (sourced, not run: install-deps.sh runs
# only *.sh): where the Kubernetes binaries go, their fixed version stamp and the
# idempotent build. Expects root (the repository) to be set.
bin="$root/.cache/k8s/bin"
mkdir -p "$bin"

# Fixed on purpose: changing the flags invalidates the Go build cache and re-does a
# ~6 minute build.
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
