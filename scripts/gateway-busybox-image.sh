#!/usr/bin/env bash
# A gateway image whose userland is BusyBox's (images/vpc-nat-gateway-busybox/Dockerfile), built
# here with buildah FROM the local Debian base like scripts/gateway-image.sh: what Kube-OVN's
# Alpine image gives natops's exec and read scripts, for test/k8s/busybox.test.ts. Writes a
# docker-archive that `../shared/k8s/cluster.sh load-image` loads; made again only when an input
# changed. Root only.
#
#   scripts/gateway-busybox-image.sh [OUT.tar]   prints the tar's path; the image is natops/vpc-nat-gateway-busybox:<package.json version>
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=images/buildah.sh
. images/buildah.sh
OUT=${1:-${NATOPS_GATEWAY_BUSYBOX_IMAGE_TAR:-/var/cache/natops/vpc-nat-gateway-busybox.tar}}
version=$(node -p 'require("./package.json").version')
IMAGE=${NATOPS_GATEWAY_BUSYBOX_IMAGE:-natops/vpc-nat-gateway-busybox:$version}
[ "$(id -u)" -eq 0 ] || { echo "gateway-busybox-image.sh: run as root (debootstrap, buildah)" >&2; exit 1; }

trap 'rm -f "$OUT.tmp"' EXIT
debian_image "$IMAGE" images/vpc-nat-gateway-busybox "$OUT" scripts/gateway-busybox-image.sh
