#!/usr/bin/env bash
# Build the release archives as a tag would, publishing nothing, and check
# what came out (make release-snapshot):
#
#   scripts/release-snapshot.sh
#
# GoReleaser (.goreleaser.yaml) is taken from PATH or installed with the Go
# toolchain into ~/.cache/cutover-tools/bin (or $CUTOVER_TOOLS/bin), once:
# a compile of several minutes. Then `goreleaser check`, `goreleaser release
# --snapshot --clean --skip=publish`, and in dist/: checksums.txt matches
# the archives; there is one archive per linux/darwin × amd64/arm64, each
# holding the cutover binary built for that target with CGO_ENABLED=0 (so
# static on linux) and -trimpath, the README, man pages, completions and
# systemd units. Any miss exits 1, naming it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "release-snapshot: $*" >&2; }
fail() { say "$*"; exit 1; }

goreleaser_version=v2.17.0
tools="${CUTOVER_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/cutover-tools}"
export PATH="$tools/bin:/usr/local/go/bin:$PATH"
command -v go >/dev/null 2>&1 || fail "the Go toolchain is not on PATH: install Go 1.26 or newer and run again"
if ! command -v goreleaser >/dev/null 2>&1; then
  say "installing goreleaser $goreleaser_version into $tools/bin (go install; a few minutes, once)"
  mkdir -p "$tools/bin"
  GOBIN="$tools/bin" go install "github.com/goreleaser/goreleaser/v2@$goreleaser_version"
  hash -r
fi

goreleaser check
goreleaser release --snapshot --clean --skip=publish

cd dist
[ -s checksums.txt ] || fail "dist/checksums.txt is missing"
sha256sum --check --strict --quiet checksums.txt || fail "dist/checksums.txt does not match the archives"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
for os in linux darwin; do
  for arch in amd64 arm64; do
    archive=$(ls cutover_*_"${os}_${arch}".tar.gz 2>/dev/null || true)
    [ "$(printf '%s' "$archive" | grep -c .)" = 1 ] || fail "want one archive for ${os}/${arch} in dist/, found: ${archive:-none}"
    grep -q "  $archive\$" checksums.txt || fail "$archive is not in checksums.txt"
    mkdir "$work/$os-$arch"
    tar -xzf "$archive" -C "$work/$os-$arch"
    for f in cutover README.md man/cutover.1 completions/cutover.bash completions/cutover.zsh completions/cutover.fish systemd/cutover.service systemd/cutover-proxy.service; do
      [ -s "$work/$os-$arch/$f" ] || fail "$archive has no $f"
    done
    info=$(go version -m "$work/$os-$arch/cutover") || fail "$archive: cutover is not a Go binary"
    for want in "GOOS=$os" "GOARCH=$arch" "CGO_ENABLED=0" "-trimpath=true"; do
      grep -q -- "$want" <<<"$info" || fail "$archive: cutover was not built with $want"
    done
    if [ "$os" = linux ] && command -v file >/dev/null 2>&1; then
      file "$work/$os-$arch/cutover" | grep -q 'statically linked' || fail "$archive: cutover is not statically linked: $(file -b "$work/$os-$arch/cutover")"
    fi
    size=$(du -k "$work/$os-$arch/cutover" | cut -f1)
    say "ok: $archive ($os/$arch, CGO_ENABLED=0, ${size} KiB binary, $(ls "$work/$os-$arch/man" | wc -l) man pages)"
    n=$((n + 1))
  done
done
[ "$(wc -l <checksums.txt)" = "$n" ] || fail "checksums.txt lists $(wc -l <checksums.txt) files, want the $n archives"
host="$work/$(go env GOOS)-$(go env GOARCH)/cutover"
[ -x "$host" ] && say "this machine's binary says: $("$host" version 2>&1 | head -1)"
say "$n archives and checksums.txt in dist/"
