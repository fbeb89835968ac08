#!/usr/bin/env bash
# Build the FROM scratch container image of cutover (packaging/Dockerfile).
# Usage: scripts/image.sh BINARY TAG   (make image runs it with bin/cutover and cutover:VERSION)
set -euo pipefail
bin=${1:?usage: scripts/image.sh BINARY TAG}
tag=${2:?usage: scripts/image.sh BINARY TAG}
here=$(cd "$(dirname "$0")/.." && pwd)
ca=""
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  [ -r "$f" ] && { ca=$f; break; }
done
[ -n "$ca" ] || { echo "image: no CA bundle on this machine (Debian: apt-get install ca-certificates)" >&2; exit 1; }
if file "$bin" 2>/dev/null | grep -q 'dynamically linked'; then
  echo "image: $bin is dynamically linked; build it with CGO_ENABLED=0 (make build does)" >&2; exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/cutover"
cp "$ca" "$ctx/ca-certificates.crt"
docker build -q -t "$tag" -f "$here/packaging/Dockerfile" "$ctx" >/dev/null
echo "image: built $tag"
