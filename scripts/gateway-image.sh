#!/usr/bin/env bash
# The gateway image (vpc-nat-gateway) from images/vpc-nat-gateway/Dockerfile, built here with
# buildah (no daemon, no registry) FROM a Debian 12 root made with debootstrap
# (images/base-image.sh debian), its apt step reaching Debian's mirrors through the host's
# network. Writes a docker-archive that `../shared/k8s/cluster.sh load-image` loads; the
# Kubernetes tests run it. Made again only when an input changed. Root only.
#
#   scripts/gateway-image.sh [OUT.tar]     prints the tar's path; the image is natops/vpc-nat-gateway:<package.json version>
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=images/buildah.sh
. images/buildah.sh
OUT=${1:-${NATOPS_GATEWAY_IMAGE_TAR:-/var/cache/natops/vpc-nat-gateway.tar}}
version=$(node -p 'require("./package.json").version')
IMAGE=${NATOPS_GATEWAY_IMAGE:-natops/vpc-nat-gateway:$version}
[ "$(id -u)" -eq 0 ] || { echo "gateway-image.sh: run as root (debootstrap, buildah)" >&2; exit 1; }

trap 'rm -f "$OUT.tmp"' EXIT
debian_image "$IMAGE" images/vpc-nat-gateway "$OUT" scripts/gateway-image.sh
