#!/usr/bin/env bash
# Shows that the default engine simulation (TestSimulation, default flags) catches each
# planted defect: for every patch in testdata/planted/ it copies the repository into a
# temporary directory, applies the patch to the engine there, and runs
#   go test -run 'TestSimulation$' -sim.seed=SEED .
# once per seed (the test binary is built once per patch). A defect is caught by a seed
# when that run fails; the script exits non-zero if a seed misses a defect, or if a patch
# no longer applies (the engine changed under it: write the defect again).
#
# Usage: scripts/planted.sh [-r REV] [-s "SEED ..."] [PATCH ...]
#   -r REV   test REV's tree (git archive REV) instead of the working tree, e.g. to see
#            what an older simulation misses; the patches still come from the working tree
#   -s SEEDS the seeds (default: "1 2 3")
#   PATCH    only these patches (default: testdata/planted/*.patch)
# PLANTED_TIMEOUT bounds one run (default 10m): a hang counts as caught, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rev="" seeds="1 2 3"
while getopts "r:s:" opt; do
  case $opt in
    r) rev=$OPTARG ;;
    s) seeds=$OPTARG ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
patches=("$@")
if [ ${#patches[@]} -eq 0 ]; then
  patches=(testdata/planted/*.patch)
fi
timeout=${PLANTED_TIMEOUT:-10m}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tree under test, copied once: the working tree may change while the script runs.
base="$work/base"
mkdir -p "$base"
if [ -n "$rev" ]; then
  git -C "$root" archive "$rev" | tar -x -C "$base"
else
  git -C "$root" ls-files -z -c -o --exclude-standard | (cd "$root" && tar --null -T - -cf -) | tar -x -C "$base"
fi
# Every tree is built in the same directory, so that the Go build cache keeps what a patch
# does not change (the emulator, the module's other packages) from one patch to the next.
tree="$work/tree"
fresh() { rm -rf "$tree" && cp -a "$base" "$tree" && git init -q "$tree"; } # git apply applies within it

# The pristine tree must pass with every seed: a failure there would be no catch.
echo "tree: ${rev:-working tree}; seeds: $seeds"
missed=0 stale=0
summary=()
run() { # name dir: one line per seed; sets caught to the number of failed runs
  local name=$1 dir=$2
  caught=0
  if ! (cd "$dir" && go test -c -o sim.test . >"$work/$name.build" 2>&1); then
    echo "    does not build:"; sed 's/^/      /' "$work/$name.build" | head -20
    return 1
  fi
  for seed in $seeds; do
    local start=$SECONDS out="$work/$name.$seed.out" verdict why
    if (cd "$dir" && timeout "$timeout" ./sim.test -test.run 'TestSimulation$' -test.count=1 -sim.seed="$seed" >"$out" 2>&1); then
      verdict=passed
    else
      case $? in
        124) verdict="failed (timed out after $timeout)" ;;
        *) verdict=failed ;;
      esac
      caught=$((caught + 1))
    fi
    why=$(grep -m1 -oE '(invariant [0-9]+|harness|panic).{0,110}' "$out" | head -1 || true)
    echo "    seed $seed: $verdict in $((SECONDS - start))s${why:+: $why}"
  done
}
nseeds=$(wc -w <<<"$seeds")

echo "pristine:"
fresh
run pristine "$tree" || exit 1
if [ "$caught" -ne 0 ]; then
  echo "the pristine tree fails the simulation with $caught seed(s): fix that first (a planted defect's failure would prove nothing)"
  exit 1
fi

for patch in "${patches[@]}"; do
  name=$(basename "$patch" .patch)
  dir=$tree
  fresh
  if ! git -C "$dir" apply --check "$root/$patch" 2>"$work/$name.apply"; then
    echo "$name: STALE, the patch no longer applies:"; sed 's/^/    /' "$work/$name.apply"
    summary+=("STALE   $name")
    stale=$((stale + 1))
    continue
  fi
  git -C "$dir" apply "$root/$patch"
  echo "$name:"
  if ! run "$name" "$dir"; then
    summary+=("BROKEN  $name (does not build)")
    stale=$((stale + 1))
  elif [ "$caught" -eq "$nseeds" ]; then
    summary+=("caught  $name ($caught/$nseeds seeds)")
  else
    summary+=("MISSED  $name (caught by $caught/$nseeds seeds)")
    missed=$((missed + 1))
  fi
done

echo
printf '%s\n' "${summary[@]}"
if [ $missed -gt 0 ] || [ $stale -gt 0 ]; then
  echo "$missed planted defect(s) missed by some seed, $stale patch(es) no longer apply or build"
  exit 1
fi
echo "every planted defect caught by every seed"
