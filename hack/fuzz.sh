#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of the module for FUZZTIME each: `go test -fuzz`
# accepts one target per invocation, so the targets are listed per package
# (`go test -list '^Fuzz'`) and run one after the other. A failing target does not stop
# the others; the failures are listed at the end (the crashing input is written under
# the package's testdata/fuzz/<Target>/, where it becomes a regression seed of the
# ordinary test run once committed).
#
#   hack/fuzz.sh                         # every package
#   FUZZTIME=5s hack/fuzz.sh ./nodefs/... ./executors/...
#   FUZZ_MATCH=Params hack/fuzz.sh       # only targets whose name matches
#   FUZZ_PARALLEL=1 hack/fuzz.sh         # one fuzzing worker (default: GOMAXPROCS)
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZ_MATCH=${FUZZ_MATCH:-.}
flags=()
[ -z "${FUZZ_PARALLEL:-}" ] || flags+=(-parallel "$FUZZ_PARALLEL")
patterns=("$@")
[ ${#patterns[@]} -gt 0 ] || patterns=(./...)

# Only packages with a `func Fuzz` in a test file need a test binary to list them.
mapfile -t dirs < <(
	$GO list -f '{{.Dir}}' "${patterns[@]}" | while read -r d; do
		if grep -qs '^func Fuzz' "$d"/*_test.go; then echo "$d"; fi
	done
)

failed=()
ran=0
for d in "${dirs[@]}"; do
	pkg=./$(realpath --relative-to=. "$d")
	mapfile -t targets < <($GO test -run '^$' -list '^Fuzz' "$pkg" | grep '^Fuzz' | grep -E -- "$FUZZ_MATCH" || true)
	for t in "${targets[@]}"; do
		echo "=== fuzz $pkg $t ($FUZZTIME)"
		ran=$((ran + 1))
		if ! $GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "${flags[@]}" "$pkg"; then
			failed+=("$pkg $t")
		fi
	done
done

echo "=== $ran fuzz targets run for $FUZZTIME each, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAIL %s\n' "${failed[@]}"
	exit 1
fi
