#!/usr/bin/env bash
# The gateway image the Kubernetes tests (and a cluster without a registry) use: a Debian root
# with what a Kube-OVN vpc-nat-gw pod runs (iproute2, iptables, conntrack, arping, sysctl), made
# with debootstrap and packed by shared/k8s's image-from-dir. Made once, then cached.
#
#   scripts/gateway-image.sh [OUT.tar]     prints the tar's path; the image is natops/vpc-nat-gw:test
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${NATOPS_GATEWAY_IMAGE_TAR:-/var/cache/natops/vpc-nat-gw.tar}}
IMAGE=${NATOPS_GATEWAY_IMAGE:-natops/vpc-nat-gw:test}
PACKAGES=iproute2,iptables,conntrack,iputils-arping,procps
K8S=${NATOPS_K8S_DIR:-}
for d in "$(pwd)/../shared/k8s" /work/shared/k8s; do [ -z "$K8S" ] && [ -x "$d/cluster.sh" ] && K8S=$d; done
[ -n "$K8S" ] || { echo "gateway-image.sh: no shared/k8s/cluster.sh found (set NATOPS_K8S_DIR)" >&2; exit 1; }

stamp="$IMAGE $PACKAGES"
if [ -s "$OUT" ] && [ "$(cat "$OUT.stamp" 2>/dev/null)" = "$stamp" ]; then echo "$OUT"; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "gateway-image.sh: run as root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }

mkdir -p "$(dirname "$OUT")"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# what the image does not need: apt lists, docs, caches
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
"$K8S/cluster.sh" image-from-dir "$IMAGE" "$root" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$stamp" > "$OUT.stamp"
echo "$OUT"
