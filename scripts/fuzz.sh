#!/usr/bin/env bash
# Fuzzes each native Go fuzz target of the engine (fuzz_test.go) for FUZZTIME in turn.
# A finding fails the run; Go has then written the input to testdata/fuzz/<Target>/, where
# it stays as a regression that `go test` (make test) runs from then on: commit it with
# the fix.
#
#   FUZZTIME=30s      how long each target is fuzzed (a duration, or Nx for N inputs)
#   FUZZ_TARGETS=...  the targets to fuzz, space-separated (default: all of them)
#   FUZZ_PARALLEL=1   fuzzing workers per target (default 1: the machine may be shared)
#   FUZZ_MINIMIZE=10s how long Go may spend minimizing an input (Go's default is 60s)
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-30s}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
FUZZ_MINIMIZE=${FUZZ_MINIMIZE:-10s}
targets=${FUZZ_TARGETS:-$(go test -list '^Fuzz' . | grep '^Fuzz')}

failed=()
for target in $targets; do
	echo "=== $target (fuzztime $FUZZTIME)"
	start=$SECONDS
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZ_MINIMIZE" \
		-parallel "$FUZZ_PARALLEL" .; then
		failed+=("$target")
	fi
	echo "=== $target: $((SECONDS - start))s"
done

if ((${#failed[@]} > 0)); then
	echo "fuzz: findings in ${failed[*]}; the inputs are in testdata/fuzz/<target>/ (git status shows them)" >&2
	exit 1
fi
echo "fuzz: no findings"
