#!/usr/bin/env bash
# The skiff demo: one node namespace, three pods attached by the skiff CNI
# plugin exactly as a runtime (libcni) runs it, pod-to-pod ping and HTTP
# through the TC programs, then the datapath's own view. Everything lives in
# namespaces created here and is removed at the end, on failure too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SKIFF_BIN_DIR:-$PWD/build/bin}
id=$$
NODE=skdemo-node-$id
PIN=/sys/fs/bpf/skdemo-$id
WORK=$(mktemp -d /tmp/skiff-demo.XXXXXX)
PODS=(skdemo-a-$id skdemo-b-$id skdemo-c-$id)
HTTPD_PID=

cleanup() {
  set +e
  [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null && wait "$HTTPD_PID" 2>/dev/null
  for p in "${PODS[@]}"; do
    [ -e /run/netns/$p ] && cni DEL "$p" >/dev/null
    ip netns del "$p" 2>/dev/null
  done
  ip netns del "$NODE" 2>/dev/null
  rm -rf "$PIN" "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
node() { nsenter --net=/run/netns/$NODE -- "$@"; }
pod() { local p=$1; shift; nsenter --net=/run/netns/$p -- "$@"; }

CONF=$(cat <<JSON
{"cniVersion":"1.0.0","name":"skiff-demo","type":"skiff",
 "podCIDR":"10.244.1.0/24","clusterCIDR":"10.244.0.0/16","mtu":1500,
 "pinPath":"$PIN","stateDir":"$WORK/state","logFile":"$WORK/skiff.log"}
JSON
)

# Run the plugin as libcni does: CNI_* environment, config on stdin.
cni() {
  echo "$CONF" | CNI_COMMAND=$1 CNI_CONTAINERID=demo-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 \
    CNI_PATH=$BIN:/usr/lib/cni node "$BIN/skiff"
}

step "node namespace $NODE with an uplink (192.168.1.11/24)"
ip netns add "$NODE"
node ip link set lo up
node ip link add up0 type veth peer name up0p
node ip addr add 192.168.1.11/24 dev up0
node ip link set up0 up
node ip link set up0p up

declare -A IP
for p in "${PODS[@]}"; do
  ip netns add "$p"
  pod "$p" ip link set lo up
  step "CNI ADD $p"
  out=$(cni ADD "$p")
  echo "$out" | python3 -m json.tool
  IP[$p]=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])')
done
A=${PODS[0]} B=${PODS[1]} C=${PODS[2]}

step "pod-to-pod ping: $A (${IP[$A]}) -> $B (${IP[$B]}) and $C (${IP[$C]})"
pod "$A" ping -c 3 -i 0.2 "${IP[$B]}"
pod "$A" ping -c 3 -i 0.2 "${IP[$C]}"

step "HTTP: $B serves, $C fetches"
mkdir -p "$WORK/www" && echo "hello from ${IP[$B]} via skiff" > "$WORK/www/index.html"
nsenter --net=/run/netns/$B -- busybox httpd -f -p 8080 -h "$WORK/www" &
HTTPD_PID=$!
for i in $(seq 50); do
  if body=$(pod "$C" timeout 5 busybox wget -q -O - "http://${IP[$B]}:8080/" 2>/dev/null); then break; fi
  sleep 0.1
done
echo "GET http://${IP[$B]}:8080/ -> $body"

step "host -> pod: $NODE pings ${IP[$A]}"
node ping -c 2 -i 0.2 "${IP[$A]}"

step "no bridge in the node, only veths with skiff's TC program"
node ip -br link
node tc filter show dev "$(node ip -br link | awk '/^skf/{sub(/@.*/,"",$1); print $1; exit}')" ingress

step "skiffctl endpoint list"
node "$BIN/skiffctl" --pin-path "$PIN" endpoint list
step "skiffctl stats (forwarding counters by reason)"
node "$BIN/skiffctl" --pin-path "$PIN" stats

step "CNI DEL all pods, then tear down"
for p in "${PODS[@]}"; do cni DEL "$p"; done
node ip -br link
echo "endpoints left: $(node "$BIN/skiffctl" --pin-path "$PIN" -j endpoint list)"
