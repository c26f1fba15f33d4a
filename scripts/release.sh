#!/usr/bin/env bash
# Builds the release binaries of vault-plugin-auth0 into dist/ (`make release VERSION=vX.Y.Z`):
# linux and darwin, amd64 and arm64, static (CGO_ENABLED=0), with trimmed paths, no VCS
# stamp, no build ID and the version injected, so that the same source and toolchain give
# the same bytes. It builds everything twice, in two directories, and refuses to finish
# unless both builds are byte-identical. dist/SHA256SUMS holds one "<sha256>  <file>" line per
# binary: the first field is what `vault plugin register -sha256=...` takes.
#
# Next to each binary goes <binary>.launcher.sh, the command to register on Vault 1.12.3 to
# 1.15.x, which pass GODEBUG=x509sha1=1 to plugins, a setting Go 1.27 programs refuse to start
# with (scripts/launcher.sh.in); SHA256SUMS covers both. RELEASE_PLATFORMS, DIST and
# RELEASE_CHECK_REPRODUCIBLE=0 narrow a build for tests (integration/release_test.go).
#
# Releases are built with the Go named in scripts/release-go-version (the go command fetches
# it: GOTOOLCHAIN), whose standard library has no known vulnerability reachable from the
# plugin (make vulncheck checks the same Go); a GOTOOLCHAIN set by the caller wins.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=${VERSION:?VERSION must be set, e.g. make release VERSION=v0.2.0}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "release: VERSION must be semver with a leading v, got $version" >&2; exit 1; }
release_go=$(cat scripts/release-go-version)
export GOTOOLCHAIN=${GOTOOLCHAIN:-$release_go}
go version
go_version=$(go env GOVERSION)
[[ $go_version == "$release_go" ]] || echo "release: warning: building with $go_version, not $release_go (GOTOOLCHAIN=$GOTOOLCHAIN)" >&2
module=github.com/vault-plugin-auth0/vault-plugin-auth0
platforms=(${RELEASE_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64})
dist=${DIST:-$root/dist}

build_into() {
  local out=$1
  mkdir -p "$out"
  for p in "${platforms[@]}"; do
    local os=${p%/*} arch=${p#*/}
    CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X $module.Version=$version" \
      -o "$out/vault-plugin-auth0_${version}_${os}_${arch}" ./cmd/vault-plugin-auth0
  done
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build_into "$tmp/a"
# RELEASE_CHECK_REPRODUCIBLE=0 skips the second build (the integration test that runs the
# release binary on Vault does; a release never does).
checked="reproducible (two builds identical)"
if [[ ${RELEASE_CHECK_REPRODUCIBLE:-1} != 0 ]]; then
  GOFLAGS="${GOFLAGS:-} -a" build_into "$tmp/b"   # -a: rebuilt from scratch, not from the cache
  for f in "$tmp"/a/*; do
    if ! cmp -s "$f" "$tmp/b/$(basename "$f")"; then
      echo "release: $(basename "$f") differs between two builds: not reproducible" >&2
      exit 1
    fi
  done
else
  checked="NOT checked for reproducibility"
fi
rm -rf "$dist" && mkdir -p "$dist"
cp "$tmp"/a/* "$dist"/
# One launcher per binary, for Vault 1.12.3 to 1.15.x (see scripts/launcher.sh.in).
for p in "${platforms[@]}"; do
  os=${p%/*} arch=${p#*/}
  binary=vault-plugin-auth0_${version}_${os}_${arch}
  sum=$(sha256sum "$dist/$binary" | cut -d' ' -f1)
  sed -e "s/@VERSION@/$version/g" -e "s|@PLATFORM@|$p|g" -e "s/@BINARY@/$binary/g" -e "s/@SHA256@/$sum/g" \
    scripts/launcher.sh.in > "$dist/$binary.launcher.sh"
  chmod 0755 "$dist/$binary.launcher.sh"
done
(cd "$dist" && sha256sum vault-plugin-auth0_* > SHA256SUMS)
echo "release $version, built with $go_version, $checked:"
cat "$dist/SHA256SUMS"
