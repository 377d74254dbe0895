#!/usr/bin/env bash
# Installs what natops, its lab and its tests need on Debian: the dataplane tools, redis-server
# and git for the GitOps loop, chromium for the dashboard test, debootstrap and buildah for the
# images (scripts/gateway-image.sh, scripts/natops-image.sh), busybox for the tests that run the
# gateway pod's scripts under BusyBox's userland (test/unit/userland.test.ts), nftables and kmod for
# Kube-OVN's own gateway script (test/netns/kube-ovn-script.test.ts), then npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 iptables conntrack iputils-arping iputils-ping socat redis-server git chromium debootstrap buildah runc busybox nftables kmod)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund --loglevel=error

# `natops` on the PATH: a link to bin/natops.js, which starts as fast as `node bin/natops.js`
# (`npx natops` works too, but npx itself costs most of a second per call)
link_dir=/usr/local/bin
if [ -w "$link_dir" ]; then
  ln -sfn "$(pwd)/bin/natops.js" "$link_dir/natops"
else
  echo "install-deps: $link_dir is not writable: run natops as node $(pwd)/bin/natops.js" >&2
fi
