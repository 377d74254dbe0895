#!/usr/bin/env bash
# natops's own image from the Dockerfile, built here with buildah (no daemon, no registry): FROM a
# Node 24 base made on this machine (images/base-image.sh node) through --build-arg BASE, the apt
# and npm steps reaching Debian's mirrors and the npm registry through the host's network. Writes a
# docker-archive that `../shared/k8s/cluster.sh load-image` loads; made again only when an input
# changed (a hash of the files the build reads, the base and the build's own scripts). Root only.
#
#   scripts/natops-image.sh [OUT.tar]     prints the tar's path; the image is natops/natops:<package.json version>
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=images/buildah.sh
. images/buildah.sh
OUT=${1:-${NATOPS_IMAGE_TAR:-/var/cache/natops/natops-image.tar}}
version=$(node -p 'require("./package.json").version')
IMAGE=${NATOPS_IMAGE:-natops/natops:$version}
[ "$(id -u)" -eq 0 ] || { echo "natops-image.sh: run as root (buildah)" >&2; exit 1; }

base=$(bash images/base-image.sh node)
base_id=$(bah inspect --type image --format '{{.FromImageID}}' "$base")
# the build's inputs: what Git tracks (or would) of the context, less .dockerignore's paths; not a
# Git checkout (or a listed file gone): no cache
inputs=$(
  git ls-files -z --cached --others --exclude-standard -- . \
    ':!.git' ':!.ci' ':!test' ':!bench' ':!docs' ':!charts' ':!*.md' ':!images' \
    | xargs -0 -r sha256sum 2>/dev/null
) || inputs="uncached $(date +%s%N)"
hash=$(printf '%s\n%s\n%s\n%s\n' "$IMAGE" "$base_id" "$inputs" "$(sha256sum images/natops/* scripts/natops-image.sh .dockerignore)" \
  | sha256sum | cut -c1-32)
if archive_current "$OUT" "$hash"; then echo "$OUT"; exit 0; fi

buildca=$(mktemp -d)
trap 'rm -rf "$buildca" "$OUT.tmp"' EXIT
# npm in the build trusts what npm here trusts: a machine whose egress re-signs TLS with its own CA
# names it (npm's cafile or NODE_EXTRA_CA_CERTS). Bind-mounted for the RUN steps only, never in a
# layer; the Dockerfile's npm stages take its path as ARG NPM_CONFIG_CAFILE (unset by default).
mounts=()
cafile=$(npm config get cafile 2>/dev/null || true)
[ -f "$cafile" ] || cafile=${NODE_EXTRA_CA_CERTS:-}
if [ -f "$cafile" ]; then
  cp "$cafile" "$buildca/ca.crt"
  mounts=(--volume "$buildca:/run/natops-build:ro" --build-arg NPM_CONFIG_CAFILE=/run/natops-build/ca.crt)
fi
build_archive "$IMAGE" "$OUT" "$hash" "${mounts[@]}" --build-arg BASE="$base" -f Dockerfile .
