#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, for FUZZTIME
# each (default 10m): `make fuzz` or `make fuzz FUZZTIME=30s`.
#
# Targets are found by grepping the test files for `func FuzzX(`, so a new
# one is picked up without editing this script. The script goes on after a
# failing target and exits non-zero at the end if any failed.
#
# What it leaves behind:
#   - a failing input in testdata/fuzz/FuzzX/ of the target's package: the
#     fuzzer writes it there, and `go test` then runs it as a seed until it
#     is fixed (commit it with the fix);
#   - the generated corpus, the inputs that found new code, in the Go build
#     cache under $(go env GOCACHE)/fuzz/<import path>/FuzzX/, reused by the
#     next run and removed by `go clean -fuzzcache`.
#
# FUZZMINIMIZETIME (default 500x) bounds how long each new input is
# minimized: the default of 60s per input spends most of a run on the large
# disc and USB images. FUZZFLAGS passes more flags to go test (for example
# -parallel 2 to use two cores).
set -uo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
fuzztime=${FUZZTIME:-10m}
minimize=${FUZZMINIMIZETIME:-500x}

targets=$(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(' --exclude-dir=.git --exclude-dir=testdata . |
	sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' | sort -u)
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: $(echo "$targets" | wc -l) targets, $fuzztime each"
failed=()
while read -r dir name; do
	echo "fuzz: ./$dir $name"
	# shellcheck disable=SC2086
	if ! "$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ${FUZZFLAGS:-} "./$dir"; then
		failed+=("./$dir $name")
	fi
done <<<"$targets"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: all targets passed"
