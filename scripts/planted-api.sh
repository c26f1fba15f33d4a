#!/usr/bin/env bash
# Shows that the API simulation finds the bugs it was written to find: each patch in
# testdata/planted-api plants one back on a copy of HEAD (git archive), and
# TestAPISimulation, under -race with its default flags, must fail with the message its
# "Caught-by:" line (an extended regular expression) names. A run is a fresh seed, so a
# bug gets up to PLANTED_API_ATTEMPTS runs (default 3). Exits non-zero if a patch does not
# apply or a planted bug is not caught.
# Usage: scripts/planted-api.sh [PATCH...]   (default: every patch in testdata/planted-api)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
attempts=${PLANTED_API_ATTEMPTS:-3}
if [ $# -gt 0 ]; then patches=("$@"); else patches=("$root"/testdata/planted-api/*.patch); fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for patch in "${patches[@]}"; do
  patch=$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")
  name=$(basename "$patch" .patch)
  want=$(sed -n 's/^Caught-by: //p' "$patch")
  if [ -z "$want" ]; then
    echo "FAIL $name: no Caught-by: line"; status=1; continue
  fi
  copy=$work/$name
  mkdir -p "$copy"
  git -C "$root" archive HEAD | tar -x -C "$copy"
  if ! (cd "$copy" && git apply "$patch"); then
    echo "FAIL $name: the patch does not apply to HEAD"; status=1; continue
  fi
  caught=
  for attempt in $(seq "$attempts"); do
    start=$(date +%s)
    out=$(cd "$copy" && go test -race -count=1 -v -run 'TestAPISimulation$' . 2>&1) && passed=1 || passed=
    took=$(($(date +%s) - start))
    seed=$(grep -o "seed=[0-9]*" <<<"$out" | head -1 || true)
    if [ -z "$passed" ] && grep -Eq -- "$want" <<<"$out"; then
      echo "ok   $name: caught in run $attempt ($seed, ${took}s with the build):"
      grep -E -m1 -- "$want" <<<"$out" | cut -c1-300 | sed 's/^ */       /'
      caught=1
      break
    elif [ -z "$passed" ]; then
      echo "     $name: run $attempt ($seed) failed, but not as planted:"
      grep -m1 'operations: \[' <<<"$out" | cut -c1-300 | sed 's/^ */       /' || tail -5 <<<"$out"
    else
      echo "     $name: run $attempt ($seed, ${took}s) passed"
    fi
  done
  if [ -z "$caught" ]; then
    echo "FAIL $name: not caught in $attempts runs"
    status=1
  fi
  rm -rf "$copy"
done
exit $status
