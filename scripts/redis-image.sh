#!/usr/bin/env bash
# A Redis image for the chart in the test cluster (no registry: the official redis image cannot
# be pulled), from images/redis/Dockerfile FROM the local Debian base, built with buildah like the
# gateway image. Writes a docker-archive that `../shared/k8s/cluster.sh load-image` loads; made
# again only when an input changed. Root only.
#
#   scripts/redis-image.sh [OUT.tar]     prints the tar's path; the image is natops/redis:7-bookworm
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=images/buildah.sh
. images/buildah.sh
OUT=${1:-${NATOPS_REDIS_IMAGE_TAR:-/var/cache/natops/redis-image.tar}}
IMAGE=${NATOPS_REDIS_IMAGE:-natops/redis:7-bookworm}
[ "$(id -u)" -eq 0 ] || { echo "redis-image.sh: run as root (debootstrap, buildah)" >&2; exit 1; }
trap 'rm -f "$OUT.tmp"' EXIT
debian_image "$IMAGE" images/redis "$OUT" scripts/redis-image.sh
