#!/usr/bin/env bash
# Reports known vulnerabilities reachable from the shipped code (`make vulncheck`), offline:
# govulncheck (golang.org/x/vuln) reads a database that x/vulndb's cmd/indexdb builds from
# the data/osv directory of the x/vulndb module version pinned in tools/vulncheck/go.mod,
# so the result changes only when that pin moves. Exits non-zero on any reachable finding.
#
# Scope: the root module's packages (./...: the plugin, the emulator and cmd/), without
# tests. tools/vault (a test-only Vault build) and tools/kv (a benchmark reference plugin)
# are separate modules that are never shipped, so ./... does not reach them.
#
# It analyses the standard library of the Go that builds releases: GOTOOLCHAIN defaults to
# the one in scripts/release-go-version, as for scripts/release.sh. govulncheck is built
# with that Go too, since its type checker must know the standard library's language version.
#
# Cached in bin/: govulncheck and indexdb (rebuilt when tools/vulncheck/go.mod, go.sum or the
# Go version change) and the database in bin/vulndb (rebuilt when the vulndb pin changes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GOTOOLCHAIN=${GOTOOLCHAIN:-$(cat scripts/release-go-version)}
bin=$root/bin
tools=$root/tools/vulncheck
mkdir -p "$bin"

if [[ ! -f $bin/.vulncheck-tools ]]; then
  echo "vulncheck: first run on this machine: the go command fetches $GOTOOLCHAIN (the Go that builds releases, ~76 MB),"
  echo "vulncheck: then govulncheck and its offline database are built into bin/ (about 3 minutes here; later runs take ~15 s)"
fi
go_version=$(go env GOVERSION)

tools_key="$go_version $(cat "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -d' ' -f1)"
if [[ ! -x $bin/govulncheck || ! -x $bin/indexdb || "$(cat "$bin/.vulncheck-tools" 2>/dev/null)" != "$tools_key" ]]; then
  echo "vulncheck: building govulncheck and indexdb with $go_version"
  (cd "$tools" && go build -o "$bin/" golang.org/x/vuln/cmd/govulncheck golang.org/x/vulndb/cmd/indexdb)
  echo "$tools_key" > "$bin/.vulncheck-tools"
fi

(cd "$tools" && go mod download golang.org/x/vulndb)
read -r vulndb_version vulndb_dir < <(cd "$tools" && go list -m -f '{{.Version}} {{.Dir}}' golang.org/x/vulndb)
db=$bin/vulndb
if [[ "$(cat "$db/VULNDB_VERSION" 2>/dev/null)" != "$vulndb_version" ]]; then
  echo "vulncheck: building the database from golang.org/x/vulndb@$vulndb_version"
  tmp=$(mktemp -d "$bin/vulndb.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  "$bin/indexdb" -vulns "$vulndb_dir/data/osv" -out "$tmp/db"
  echo "$vulndb_version" > "$tmp/db/VULNDB_VERSION"
  rm -rf "$db" && mv "$tmp/db" "$db" && rm -rf "$tmp"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
"$bin/govulncheck" -db "file://$db" ./... | tee "$out" || rc=$?
about="govulncheck $(cd "$tools" && go list -m -f '{{.Version}}' golang.org/x/vuln), vulndb $vulndb_version, $go_version"
case $rc in
  0) echo "vulncheck: OK, no reachable vulnerabilities ($about)" ;;
  3) ids=$(sed -n 's/^Vulnerability #[0-9]*: \(GO-[0-9-]*\).*/\1/p' "$out" | sort -u)
     echo "vulncheck: FAIL, $(wc -w <<<"$ids") reachable vulnerabilities: $(echo $ids) ($about)" >&2 ;;
  *) echo "vulncheck: FAIL, govulncheck exited with $rc ($about)" >&2 ;;
esac
exit "$rc"
