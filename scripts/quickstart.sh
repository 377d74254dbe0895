#!/usr/bin/env bash
# The README's first command: installs what is needed, applies the seed's gateway to a local lab
# of network namespaces, puts workload hosts around it and shows it answering real traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root (the lab creates network namespaces)" >&2; exit 1; }

bash scripts/install-deps.sh
natops() { node bin/natops.js "$@"; }

echo "== validate the seed's manifests, and the seed as printed (which must fail)"
natops validate examples/seed
natops validate examples/seed-verbatim.yaml || true

echo; echo "== apply (the lab is rebuilt from scratch; 'natops lab down' removes it)"
natops lab down >/dev/null
natops apply examples/seed

echo; echo "== workload hosts"
natops lab host add fip --net sn --ip 10.0.1.5/24
natops lab host add web --net sn --ip 10.0.1.10/24
natops lab host add client --net sn --ip 10.0.1.20/24
natops lab host add ext --net external --ip 192.168.0.50/24
for h in fip web client ext; do
  nohup node bin/natops.js lab exec "$h" -- node bin/natops.js probe --name "$h" --tcp 80,9000 --udp 53 >/dev/null 2>&1 &
done

ask() { # ask FROM PROTO IP PORT: prints "<who answered> <source it saw>"
  local input=""
  [ "$2" = udp ] && input="hello"
  for _ in $(seq 1 30); do
    answer=$(echo "$input" | natops lab exec "$1" -- socat -T2 - "${2^^}:$3:$4" 2>/dev/null | head -1) || true
    [ -n "$answer" ] && break
    sleep 0.2
  done
  printf '  %-48s -> %s\n' "$1 to $2 $3:$4" "${answer:-no answer}"
}

echo; echo "== traffic (each server answers with its name and the source address it saw)"
echo "floating IP 192.168.0.111 <-> 10.0.1.5"
ask ext tcp 192.168.0.111 80
ask ext udp 192.168.0.111 53
ask fip tcp 192.168.0.50 9000
echo "port forward tcp 192.168.0.112:8888 -> 10.0.1.10:80"
ask ext tcp 192.168.0.112 8888
echo "SNAT 10.0.1.0/24 -> 192.168.0.112"
ask client tcp 192.168.0.50 9000
echo "hairpin: a VPC host through its own VPC's port forward"
ask client tcp 192.168.0.112 8888

echo; echo "== the gateway's nat table"
ip netns exec natops-gw-ngw iptables-save -t nat | grep -v '^#'
echo "The lab stays up. Try: natops plan DIR, natops lab exec ext -- ping -c1 192.168.0.111; remove it with: npx natops lab down"
