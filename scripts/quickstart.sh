#!/usr/bin/env bash
# The README's first command: the whole GitOps loop on this machine. Installs what is needed,
# starts `natops serve` (which starts its own redis-server), makes a local bare repository whose
# hook delivers pushes to the webhook, pushes the seed's manifests, waits for the statuses, and
# shows the gateway answering real traffic in the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root (the lab creates network namespaces)" >&2; exit 1; }

bash scripts/install-deps.sh
# natops runs the bundled JavaScript in dist/ (bin/natops.js falls back to the slower TypeScript
# sources, with a warning, when dist/ is missing or older than them).
npm run --silent build
# install-deps.sh put `natops` on the PATH (a link to bin/natops.js)
command -v natops >/dev/null || { echo "quickstart: natops is not on the PATH" >&2; exit 1; }
export NATOPS_DATA_DIR=${NATOPS_DATA_DIR:-/var/lib/natops}
export NATOPS_LISTEN=${NATOPS_LISTEN:-127.0.0.1:8080}
DATA=$NATOPS_DATA_DIR
mkdir -p "$DATA"

echo "== a clean start: stop an earlier quickstart's natops serve, remove its lab, repository and Redis data"
if [ -s "$DATA/serve.json" ]; then
  pid=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid)' "$DATA/serve.json")
  kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  rm -f "$DATA/serve.json"
fi
natops lab down >/dev/null
rm -rf "$DATA/redis" "$DATA/gitops.git" "$DATA/work"
[ -s "$DATA/dashboard-password" ] || (umask 077; node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))' > "$DATA/dashboard-password")
[ -s "$DATA/webhook-secret" ] || (umask 077; node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))' > "$DATA/webhook-secret")

# The repository first, so natops's start-up catch-up finds it (empty) rather than nothing.
echo; echo "== a local Git repository whose post-receive hook delivers pushes to the webhook"
natops repo init "$DATA/gitops.git" --webhook "http://$NATOPS_LISTEN/webhook" --secret-file "$DATA/webhook-secret"

echo; echo "== natops serve (webhook, workers, resync, dashboard; log in $DATA/serve.log)"
NATOPS_DASHBOARD_PASSWORD_FILE="$DATA/dashboard-password" NATOPS_WEBHOOK_SECRET_FILE="$DATA/webhook-secret" \
  nohup natops serve --repo "$DATA/gitops.git" --resync-ms 30000 > "$DATA/serve.log" 2>&1 &
for _ in $(seq 1 100); do [ -s "$DATA/serve.json" ] && break; sleep 0.2; done
# its log is JSON lines (for a log shipper); pino-pretty shows them as a terminal would
[ -s "$DATA/serve.json" ] || { cat "$DATA/serve.log"; echo "natops serve did not start" >&2; exit 1; }
npx --no-install pino-pretty --ignore pid,hostname --translateTime SYS:HH:MM:ss < "$DATA/serve.log"

echo

git clone --quiet "$DATA/gitops.git" "$DATA/work"
cp examples/seed/*.yaml "$DATA/work/"
git -C "$DATA/work" add -A
git -C "$DATA/work" -c user.name=natops -c user.email=quickstart@localhost commit --quiet -m "the seed's gateway"

echo; echo "== git push (the hook's answer is printed by git as remote: ...)"
git -C "$DATA/work" push origin HEAD:main

echo; echo "== statuses of the pushed commit"
natops status --wait 120

echo; echo "== workload hosts in the lab"
natops lab host add fip --net sn --ip 10.0.1.5/24
natops lab host add web --net sn --ip 10.0.1.10/24
natops lab host add client --net sn --ip 10.0.1.20/24
natops lab host add ext --net external --ip 192.168.0.50/24
for h in fip web client ext; do
  nohup natops lab exec "$h" -- natops probe --name "$h" --tcp 80,9000 --udp 53 >/dev/null 2>&1 &
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

# natops keeps a gateway's rules in iptables-legacy where the kernel has it, as Kube-OVN does
save=iptables-legacy-save
ip netns exec natops-gw-ngw "$save" -t nat 2>/dev/null | grep -q '^:DNAT_FILTER ' || save=iptables-nft-save
echo; echo "== the gateway's nat table ($save)"
ip netns exec natops-gw-ngw "$save" -t nat | grep -v '^#'

cat <<EOF

natops serve keeps running (pid $(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).pid)' "$DATA/serve.json")).
  change a manifest in $DATA/work, commit and git push: the gateway follows; natops status shows the result
  its log:   $DATA/serve.log (JSON lines; readable with npx pino-pretty < $DATA/serve.log)
  dashboard: http://$NATOPS_LISTEN/admin/commits and /admin/queues (user admin, password in $DATA/dashboard-password)
  stop it:   kill that pid; then natops lab down
EOF
