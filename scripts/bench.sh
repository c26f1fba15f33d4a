#!/usr/bin/env bash
# Runs every benchmark of vault-plugin-auth0 (`make bench`) and prints a summary with the
# ratios BENCHMARKS.md reports. The whole output goes to bench-results/bench-<UTC time>.txt
# (not committed). Takes about 8.5 minutes on a 2-core VM; the 1,000-role burst alone ~110 s.
# At the end, tools/benchcharts (its own module: gonum/plot stays out of the plugin's
# go.mod) draws the run's charts into docs/bench/*.svg, each titled with the run's date and
# commit, and prints the run's tables in Markdown for BENCHMARKS.md; a chart whose
# benchmark did not run (BENCH_SKIP_BURST=1) is drawn saying so.
#
#   BENCH_SKIP_BURST=1 scripts/bench.sh    # everything but the ~110 s burst
#   BENCH_COUNT=5 scripts/bench.sh         # more repetitions of the short benchmarks
#   BENCH_CHARTS=/tmp/charts scripts/bench.sh   # the charts elsewhere than docs/bench
#
# Benchmarks report, they never assert: a run fails only if a benchmark could not do its
# work (e.g. a role left unrotated, an HTTP error under load).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

count=${BENCH_COUNT:-3}
skip_burst=${BENCH_SKIP_BURST:-0}
charts=${BENCH_CHARTS:-docs/bench}

if [[ ! -x bin/vault ]]; then
  echo "bench: bin/vault is missing; build it with 'make vault' (make bench does)" >&2
  exit 1
fi

mkdir -p bench-results
out=bench-results/bench-$(date -u +%Y%m%dT%H%M%SZ).txt

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The charts this script draws (docs/bench/) are its output, not a change to what it measures.
git diff --quiet HEAD -- . ':(exclude)docs/bench' 2>/dev/null || commit="$commit + uncommitted changes"
{
  echo "# vault-plugin-auth0 benchmarks"
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: ${cpu:-unknown cpu}, $(nproc) cores, ${mem:-? GiB}, $(uname -sr)"
  echo "go:      $(go version)"
  echo "vault:   $(bin/vault version 2>/dev/null | head -1)"
  echo "commit:  $commit"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run)"
} | tee "$out"
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
  echo "bench: warning: the machine is busy (load $load1); results will be noisy" | tee -a "$out" >&2
fi

failed=0
run() {
  echo | tee -a "$out"
  echo "\$ $*" | tee -a "$out"
  "$@" 2>&1 | tee -a "$out"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -ne 0 ]]; then
    echo "bench: FAILED (exit $rc): $*" | tee -a "$out" >&2
    failed=1
  fi
}

# Queue rebuild at 1k, 3k, 10k, 30k and 100k roles, and the queue's memory at 10k and 100k,
# a few iterations each (one 100k rebuild takes about a second).
run go test -run '^$' -bench '^Benchmark(QueueRebuild|QueueMemory)$' -benchmem \
  -benchtime 5x -count "$count" -timeout 30m .
# The creds read cache's memory at 100,000 roles, unbounded and at the default bound.
run go test -run '^$' -bench '^BenchmarkCredsCacheMemory$' -benchtime 1x -count "$count" -timeout 30m .
# Idle tick and the creds hot path in-process: nanoseconds to microseconds, time-based.
run go test -run '^$' -bench '^Benchmark(IdleTick|CredsRead|CredsMetric)$' -benchmem \
  -benchtime 1s -count "$count" -timeout 30m .
# 1,000 roles falling due at once at 10 requests/s, with creds read meanwhile and at idle
# before: once, ~110 s.
if [[ $skip_burst != 1 ]]; then
  run go test -run '^$' -bench '^BenchmarkDueBurst$' -benchtime 1x -count 1 -timeout 20m .
fi
# Against a real Vault dev server, once each: the read load (~80 s), the queue rebuild
# after a plugin reload with 10,000 roles (~40 s, mostly creating the roles), and token/
# (~30 s).
run go test -run '^$' -bench '^Benchmark(VaultReadLoad|VaultQueueRebuild|VaultTokenLoad)$' -benchtime 1x -count 1 -timeout 30m ./integration

# Summary: medians over the repetitions, and the ratios against each reference.
summary=$(awk '
function add(name, unit, v,   k) {
  k = name SUBSEP unit
  n[k]++; val[k, n[k]] = v
}
# median of the values of name/unit; -1 if none
function med(name, unit,   k, c, i, j, t, a) {
  k = name SUBSEP unit
  c = n[k] + 0
  if (c == 0) return -1
  for (i = 1; i <= c; i++) a[i] = val[k, i]
  for (i = 2; i <= c; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
  if (c % 2) return a[(c+1)/2]
  return (a[c/2] + a[c/2+1]) / 2
}
function ratio(x, y) { return (x < 0 || y <= 0) ? "n/a" : sprintf("x%.3g", x / y) }
function ms(x) { return x < 0 ? "n/a" : sprintf("%.1f ms", x / 1e6) }
function us(x) { return x < 0 ? "n/a" : sprintf("%.2f us", x / 1e3) }
function ns(x) { return x < 0 ? "n/a" : sprintf("%.1f ns", x) }
function num(x, f) { return x < 0 ? "n/a" : sprintf(f, x) }
/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name)
  for (i = 3; i < NF; i += 2) add(name, $(i+1), $i)
}
END {
  R = "BenchmarkQueueRebuild/roles="; M = "BenchmarkQueueMemory/roles="; T = "BenchmarkIdleTick/roles="
  print "1. Queue rebuild at start (loadQueue over InmemStorage), median ns/op"
  printf "   %-7s %11s %13s %11s %11s %11s | %-9s %-9s %-9s %s\n", "roles", "loadQueue", "storage only", "locks only", "queue only", "sdk/queue", "lQ/stor.", "locks/lQ", "queue/lQ", "sdk/queue vs queue"
  split("1000 3000 10000 30000 100000", RC, " ")
  for (s = 1; s <= 5; s++) {
    r = RC[s]
    if (med(R r "/loadQueue", "ns/op") < 0) continue
    lq = med(R r "/loadQueue", "ns/op"); st = med(R r "/storage-list-get-decode", "ns/op"); lk = med(R r "/roleLock-only", "ns/op")
    q = med(R r "/rotationQueue-schedule", "ns/op"); sq = med(R r "/sdkqueue-push", "ns/op")
    printf "   %-7s %11s %13s %11s %11s %11s | %-9s %-9s %-9s %s\n", r, ms(lq), ms(st), ms(lk), ms(q), ms(sq), ratio(lq, st), ratio(lk, lq), ratio(q, lq), ratio(sq, q)
  }
  lq10 = med(R "10000/loadQueue", "ns/op"); lq100 = med(R "100000/loadQueue", "ns/op")
  print "   100k/10k loadQueue: " ratio(lq100, lq10) " for x10 roles"
  V = "BenchmarkVaultQueueRebuild"
  if (med(V, "ms-loadQueue") < 0) print "   real Vault: not run"
  else {
    printf "   real Vault, 10k roles, after a plugin reload: queue from the due index %.0f ms (%.1f us/role, x%.3g of the 116 us/role of a read per role), %s the in-memory 10k loadQueue\n", med(V, "ms-loadQueue"), med(V, "us/role"), med(V, "us/role") / 116, ratio(med(V, "ms-loadQueue") * 1e6, lq10)
    printf "   and the background pass reading every role: %.0f ms (%.1f us/role)\n", med(V, "ms-verifyQueue"), med(V, "us/role-verify")
  }
  printf "   in memory, with the pass reading every role:"
  for (s = 1; s <= 5; s++) if (med(R RC[s] "/loadQueue+verifyQueue", "ns/op") >= 0) printf " %s %s", RC[s], ms(med(R RC[s] "/loadQueue+verifyQueue", "ns/op"))
  print ""
  print ""
  print "2. Memory held by the queue, heap B/role (median)"
  for (s = 1; s <= 2; s++) {
    r = (s == 1) ? 10000 : 100000
    a = med(M r "/rotationQueue", "B/role"); b = med(M r "/sdkqueue", "B/role")
    printf "   %-8s rotationQueue %s   sdk/queue %s   sdk/queue vs rotationQueue %s\n", r, num(a, "%.1f"), num(b, "%.1f"), ratio(b, a)
  }
  print ""
  print "3. CPU per idle tick (nothing due), median ns/op"
  p10 = med(T "10000/popDue", "ns/op"); p100 = med(T "100000/popDue", "ns/op")
  s10 = med(T "10000/sdkqueue-pop-push", "ns/op"); s100 = med(T "100000/sdkqueue-pop-push", "ns/op")
  printf "   popDue:            10k %s  100k %s  100k/10k %s\n", ns(p10), ns(p100), ratio(p100, p10)
  printf "   sdk/queue pop+push: 10k %s  100k %s  100k/10k %s\n", ns(s10), ns(s100), ratio(s100, s10)
  printf "   sdk/queue vs popDue at 100k: %s\n", ratio(s100, p100)
  print ""
  print "4. 1,000 roles due at once, rate_limit=10/s at the mount and the emulator"
  B = "BenchmarkDueBurst"
  if (med(B, "s-total") < 0) print "   not run"
  else {
    printf "   all rotated after %.1f s (ideal 100 s: %s), %d roles rotated, %d Management API requests, %d answered 429\n", med(B, "s-total"), ratio(med(B, "s-total"), 100), med(B, "roles-rotated"), med(B, "api-requests"), med(B, "429s")
    printf "   creds reads (in process, 4,000/s), idle: p50 %s us p99 %s us (%d reads); during the burst: p50 %s us p99 %s us (%d reads); %d failed\n", num(med(B, "creds-idle-p50-us"), "%.1f"), num(med(B, "creds-idle-p99-us"), "%.1f"), med(B, "creds-idle-reads"), num(med(B, "creds-burst-p50-us"), "%.1f"), num(med(B, "creds-burst-p99-us"), "%.1f"), med(B, "creds-burst-reads"), med(B, "creds-read-errors")
    printf "   burst vs idle: p50 %s, p99 %s\n", ratio(med(B, "creds-burst-p50-us"), med(B, "creds-idle-p50-us")), ratio(med(B, "creds-burst-p99-us"), med(B, "creds-idle-p99-us"))
  }
  print ""
  print "5. creds hot path"
  c = med("BenchmarkCredsRead/creds", "ns/op"); rr = med("BenchmarkCredsRead/roles", "ns/op")
  cf = med("BenchmarkCredsRead/creds-100-versions", "ns/op")
  printf "   in-process HandleRequest: creds %s (%s storage reads/op), roles %s (%s reads/op), creds/roles %s\n", us(c), num(med("BenchmarkCredsRead/creds", "reads/op"), "%.2f"), us(rr), num(med("BenchmarkCredsRead/roles", "reads/op"), "%.2f"), ratio(c, rr)
  printf "   creds of a role retaining 100 versions: %s, %s vs creds with 3 versions\n", us(cf), ratio(cf, c)
  G = "BenchmarkCredsMetric/"
  mr = med(G "creds-read", "ns/op"); mc = med(G "creds-metric", "ns/op")
  printf "   the creds metric (parallel): counter %s, with role labels %s, one atomic add %s; a creds read %s (role labels on: %s)\n", ns(mc), ns(med(G "creds-metric-role-labels", "ns/op")), ns(med(G "atomic-add", "ns/op")), ns(mr), ns(med(G "creds-read-role-labels", "ns/op"))
  printf "   the counter is %s of a creds read; role labels on make a read %s\n", ratio(mc, mr), ratio(med(G "creds-read-role-labels", "ns/op"), mr)
  L = "BenchmarkVaultReadLoad"
  if (med(L, "creds-req/s") < 0) print "   real Vault: not run"
  else {
    print "   real Vault, 16 clients, one run, paths interleaved:"
    split("noop kvext kv roles creds creds100 token", P, " ")
    for (i = 1; i <= 7; i++)
      printf "     %-9s %8s req/s  p50 %8s us  p90 %8s us  p99 %8s us  p99.9 %8s us\n", P[i], num(med(L, P[i] "-req/s"), "%.0f"), num(med(L, P[i] "-p50-us"), "%.0f"), num(med(L, P[i] "-p90-us"), "%.0f"), num(med(L, P[i] "-p99-us"), "%.0f"), num(med(L, P[i] "-p999-us"), "%.0f")
    c = med(L, "creds-req/s")
    printf "   creds vs noop plugin %s (target >= x0.95), vs external KV %s, vs built-in KV %s, vs roles %s\n", ratio(c, med(L, "noop-req/s")), ratio(c, med(L, "kvext-req/s")), ratio(c, med(L, "kv-req/s")), ratio(c, med(L, "roles-req/s"))
    printf "   token/ (hit) vs noop plugin %s, vs creds %s\n", ratio(med(L, "token-req/s"), med(L, "noop-req/s")), ratio(med(L, "token-req/s"), c)
    printf "   creds at 100 versions vs creds at 3: %s (target >= x0.95)\n", ratio(med(L, "creds100-req/s"), c)
  }
  C = "BenchmarkCredsCacheMemory/size="
  printf "   creds cache at 100k roles: %s B/entry; sized for all: %s B/role; default bound 10k: %s B/role (%s entries)\n", num(med(C "100000", "B/entry"), "%.0f"), num(med(C "100000", "B/role"), "%.0f"), num(med(C "10000", "B/role"), "%.1f"), num(med(C "10000", "entries"), "%.0f")
  print ""
  print "6. token/: what the cache saves Auth0, and its latency"
  K = "BenchmarkVaultTokenLoad"
  if (med(K, "token-req/s") < 0) print "   not run"
  else {
    printf "   10,000 reads by 50 readers: %s /oauth/token requests asking Auth0 directly, %s through token/\n", num(med(K, "auth0-token-requests-direct"), "%.0f"), num(med(K, "auth0-token-requests-via-vault"), "%.0f")
    printf "   token/ (hit) %s req/s p50 %s us; creds/ %s req/s p50 %s us; token/creds throughput %s\n", num(med(K, "token-req/s"), "%.0f"), num(med(K, "token-p50-us"), "%.0f"), num(med(K, "creds-req/s"), "%.0f"), num(med(K, "creds-p50-us"), "%.0f"), ratio(med(K, "token-req/s"), med(K, "creds-req/s"))
  }
}' "$out")

{
  echo
  echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "== Summary (raw output above; ratios are against references measured in this run) =="
  echo "$summary"
} | tee -a "$out"

# The charts, and the same run's tables in Markdown, from the raw output above.
{
  echo
  echo "== Charts in $charts/ and tables for BENCHMARKS.md (tools/benchcharts) =="
} | tee -a "$out"
if go build -C tools/benchcharts -o "$root/bin/benchcharts" . 2>&1 | tee -a "$out" &&
  bin/benchcharts -o "$charts" -links docs/bench "$out" > "$out.md"; then
  cat "$out.md" | tee -a "$out"
  rm -f "$out.md"
else
  echo "bench: FAILED: drawing the charts (tools/benchcharts)" | tee -a "$out" >&2
  rm -f "$out.md"
  failed=1
fi
echo | tee -a "$out"
echo "Full output: $out" | tee -a "$out"

if [[ $failed -ne 0 ]]; then
  echo "bench: some benchmarks failed; see $out" >&2
  exit 1
fi
