#!/usr/bin/env bash
# The skiff demo: two nodes on one L2 underlay, a skiff-agent per node fed by
# a kubectl-style cluster file, pods attached by the skiff CNI plugin exactly
# as a runtime (libcni) runs it with the conflist the agent wrote. Then
# same-node and cross-node ping and HTTP through the TC programs, the
# datapath's and the agent's own view, and an agent killed and restarted
# while pods keep talking. Everything lives in namespaces created here and is
# removed at the end, on failure too. The root namespace is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SKIFF_BIN_DIR:-$PWD/build/bin}
id=$$
WORK=$(mktemp -d /tmp/skiff-demo.XXXXXX)
UNDERLAY=skdemo-ul-$id
CLUSTER=$WORK/cluster.json
NODES=(node-1 node-2)
declare -A NS=([node-1]=skdemo-n1-$id [node-2]=skdemo-n2-$id)
declare -A NODE_IP=([node-1]=192.168.1.11 [node-2]=192.168.1.12)
declare -A POD_CIDR=([node-1]=10.244.1.0/24 [node-2]=10.244.2.0/24)
declare -A PIN=([node-1]=/sys/fs/bpf/skdemo-node-1-$id [node-2]=/sys/fs/bpf/skdemo-node-2-$id)
PODS=("skdemo-a-$id" "skdemo-b-$id" "skdemo-c-$id")
declare -A POD_NODE=([skdemo-a-$id]=node-1 [skdemo-b-$id]=node-1 [skdemo-c-$id]=node-2)
declare -A AGENT_PID=() CONF=() IP=()
HTTPD_PID=

cleanup() {
  set +e
  [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null && wait "$HTTPD_PID" 2>/dev/null
  for n in "${!AGENT_PID[@]}"; do
    kill -KILL "${AGENT_PID[$n]}" 2>/dev/null && wait "${AGENT_PID[$n]}" 2>/dev/null
  done
  for p in "${PODS[@]}"; do
    [ -e /run/netns/$p ] && [ -n "${CONF[${POD_NODE[$p]}]:-}" ] && cni DEL "$p" >/dev/null 2>&1
  done
  # Anything still running inside our namespaces was started here: stop it.
  for ns in "${PODS[@]}" "${NS[@]}" "$UNDERLAY"; do
    [ -e /run/netns/$ns ] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  for n in "${NODES[@]}"; do rm -rf "${PIN[$n]}"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; nsenter --net=/run/netns/$ns -- "$@"; }
node() { local n=$1; shift; in_ns "${NS[$n]}" "$@"; }
pod() { in_ns "$@"; }
ctl() { local n=$1; shift; node "$n" "$BIN/skiffctl" --pin-path "${PIN[$n]}" "$@"; }
agent_http() { node "$1" curl -s -m 2 "http://127.0.0.1:9964$2"; }

# Run the plugin as libcni does: CNI_* environment, config on stdin, in the
# pod's node namespace.
cni() {
  local n=${POD_NODE[$2]}
  echo "${CONF[$n]}" | CNI_COMMAND=$1 CNI_CONTAINERID=demo-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 \
    CNI_PATH=$BIN:/usr/lib/cni node "$n" "$BIN/skiff"
}

# The plugin entry of the agent's conflist, handed over as libcni does:
# plugins[0] with the list's cniVersion and name added.
plugin_conf() {
  python3 -c 'import json,sys
cl = json.load(open(sys.argv[1]))
c = dict(cl["plugins"][0]); c.update(cniVersion=cl["cniVersion"], name=cl["name"])
print(json.dumps(c))' "$1"
}

start_agent() {
  local n=$1
  # nsenter itself in the background (not a shell function, which would add
  # a subshell): it execs the agent, so $! is the agent's pid.
  nsenter --net=/run/netns/${NS[$n]} -- "$BIN/skiff-agent" --config "$WORK/$n/agent.json" >>"$WORK/$n/agent.log" 2>&1 &
  AGENT_PID[$n]=$!
}

# Bounded wait: poll "$@" every 0.1 s, give up after $1 tenths of a second.
wait_for() {
  local tries=$1 what=$2; shift 2
  for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2
  return 1
}
healthy() { node "$1" curl -sf -m 2 http://127.0.0.1:9964/healthz >/dev/null; }

step "underlay $UNDERLAY: one bridge (br0), the L2 segment both nodes plug into"
ip netns add "$UNDERLAY"
in_ns "$UNDERLAY" ip link set lo up
in_ns "$UNDERLAY" ip link add br0 type bridge
in_ns "$UNDERLAY" ip link set br0 up
i=0
for n in "${NODES[@]}"; do
  i=$((i + 1))
  ip netns add "${NS[$n]}"
  node "$n" ip link set lo up
  node "$n" ip link add up0 type veth peer name up$i-$id netns "$UNDERLAY"
  in_ns "$UNDERLAY" ip link set "up$i-$id" master br0 up
  node "$n" ip addr add "${NODE_IP[$n]}/24" dev up0
  node "$n" ip link set up0 up
  echo "$n: namespace ${NS[$n]}, up0 ${NODE_IP[$n]}/24, PodCIDR ${POD_CIDR[$n]}"
done
in_ns "$UNDERLAY" ip -br link show master br0

step "cluster file $CLUSTER: a List of the two Nodes"
python3 - "$CLUSTER" "node-1" "${NODE_IP[node-1]}" "${POD_CIDR[node-1]}" \
  "node-2" "${NODE_IP[node-2]}" "${POD_CIDR[node-2]}" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
items = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
          "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
          "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}
         for name, ip, cidr in zip(args[0::3], args[1::3], args[2::3])]
# One Node per line, so the file reads well when shown.
with open(path, "w") as f:
    f.write('{"apiVersion": "v1", "kind": "List", "items": [\n  ' +
            ',\n  '.join(json.dumps(it) for it in items) + '\n]}\n')
PY
cat "$CLUSTER"

step "a skiff-agent per node"
for n in "${NODES[@]}"; do
  mkdir -p "$WORK/$n"
  cat >"$WORK/$n/agent.json" <<JSON
{"nodeName":"$n","nodeIP":"${NODE_IP[$n]}","uplink":"up0","clusterCIDR":"10.244.0.0/16",
 "pinPath":"${PIN[$n]}","stateDir":"$WORK/$n/state","cniConfDir":"$WORK/$n/cni",
 "listen":"127.0.0.1:9964","source":{"file":"$CLUSTER"}}
JSON
  start_agent "$n"
  echo "$n: skiff-agent pid ${AGENT_PID[$n]}, config $WORK/$n/agent.json"
done
for n in "${NODES[@]}"; do
  # Bounded wait for the conflist; stop early if the agent has exited.
  f=$WORK/$n/cni/10-skiff.conflist
  for _ in $(seq 200); do
    [ -e "$f" ] || ! kill -0 "${AGENT_PID[$n]}" 2>/dev/null && break
    sleep 0.1
  done
  if [ ! -e "$f" ]; then
    echo "$n: skiff-agent wrote no conflist; its log:" >&2
    cat "$WORK/$n/agent.log" >&2
    exit 1
  fi
  CONF[$n]=$(plugin_conf "$f")
  echo "$n: $(grep -m1 'wrote' "$WORK/$n/agent.log")"
done

step "the conflist node-1's agent wrote ($WORK/node-1/cni/10-skiff.conflist)"
cat "$WORK/node-1/cni/10-skiff.conflist"

for p in "${PODS[@]}"; do
  ip netns add "$p"
  pod "$p" ip link set lo up
  step "CNI ADD $p on ${POD_NODE[$p]}"
  out=$(cni ADD "$p")
  echo "$out" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), separators=(",",":")))'
  IP[$p]=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])')
done
A=${PODS[0]} B=${PODS[1]} C=${PODS[2]}

step "same-node ping: $A (${IP[$A]}) -> $B (${IP[$B]}), both on node-1"
pod "$A" ping -c 3 -i 0.2 -W 2 "${IP[$B]}"

step "cross-node ping: $A (${IP[$A]}, node-1) -> $C (${IP[$C]}, node-2)"
pod "$A" ping -c 3 -i 0.2 -W 2 "${IP[$C]}"

step "HTTP across nodes: $C (node-2) serves, $A (node-1) fetches"
mkdir -p "$WORK/www" && echo "hello from ${IP[$C]} on node-2 via skiff" >"$WORK/www/index.html"
nsenter --net=/run/netns/$C -- busybox httpd -f -p 8080 -h "$WORK/www" &
HTTPD_PID=$!
body=
fetch() { body=$(pod "$A" timeout 5 busybox wget -q -O - "http://${IP[$C]}:8080/" 2>/dev/null); }
wait_for 50 "the HTTP server" fetch
echo "GET http://${IP[$C]}:8080/ from ${IP[$A]} -> $body"

step "host -> remote pod: node-1's namespace pings $C (${IP[$C]}) on node-2"
node node-1 ping -c 2 -i 0.2 -W 2 "${IP[$C]}"

for n in "${NODES[@]}"; do
  step "$n: skiffctl endpoint list"
  ctl "$n" endpoint list
  step "$n: skiffctl stats (forwarding counters by reason)"
  ctl "$n" stats
done

for n in "${NODES[@]}"; do
  step "$n: agent /healthz and some of /metrics"
  agent_http "$n" /healthz
  agent_http "$n" /metrics | grep -E '^skiff_(map_entries|agent_reconciles_total\{result="ok"|agent_writes_total\{target="route",op="upsert"|datapath_packets_total\{reason="fwd-)'
  step "$n: routes the agent installed (ip route show proto 178)"
  node "$n" ip route show proto 178
done

step "kill node-1's agent (SIGKILL): the datapath stays, pods keep talking"
kill -KILL "${AGENT_PID[node-1]}"
wait "${AGENT_PID[node-1]}" 2>/dev/null || echo "node-1: skiff-agent pid ${AGENT_PID[node-1]} killed (exit $?)"
unset 'AGENT_PID[node-1]'
pod "$A" ping -c 3 -i 0.2 -W 2 "${IP[$C]}"

step "restart node-1's agent: it finds everything in place and rewrites nothing"
start_agent node-1
echo "node-1: skiff-agent pid ${AGENT_PID[node-1]}"
wait_for 200 "node-1's agent to be healthy" healthy node-1
agent_http node-1 /healthz
agent_http node-1 /metrics | grep -E '^skiff_agent_writes_total'
pod "$A" ping -c 2 -i 0.2 -W 2 "${IP[$C]}"

step "CNI DEL all pods"
for p in "${PODS[@]}"; do cni DEL "$p" && echo "DEL $p ok"; done
for n in "${NODES[@]}"; do echo "$n endpoints left: $(ctl "$n" -j endpoint list)"; done

step "stop the agents (SIGTERM)"
for n in "${NODES[@]}"; do
  kill -TERM "${AGENT_PID[$n]}"
  wait "${AGENT_PID[$n]}"
  unset "AGENT_PID[$n]"
  echo "$n: $(tail -n1 "$WORK/$n/agent.log")"
done

step "tear down: namespaces, pin dirs ${PIN[node-1]} ${PIN[node-2]}, $WORK"
cleanup
trap - EXIT
left=$(ls -d "${PIN[@]}" "$WORK" /run/netns/skdemo-*-$id 2>/dev/null || true)
echo "left behind: ${left:-nothing}"
