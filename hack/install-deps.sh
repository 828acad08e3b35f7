#!/usr/bin/env bash
# Installs and builds everything the test suite needs, idempotently: each hack/deps.d/*.sh
# does one part and returns quickly when its part is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in hack/deps.d/*.sh; do
  [ -e "$f" ] || continue
  echo "== $f"
  bash "$f"
done
