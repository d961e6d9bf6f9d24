#!/usr/bin/env bash
# Checks a cluster made by scripts/k8s/cluster.sh up: both nodes Ready; pods
# from the local busybox image pinned to each node get addresses from their
# node's PodCIDR through skiff (plugin log, pinned maps, state); same-node
# ping; cross-node ping (expected to fail until skiff-agent installs routes:
# reported, not fatal); deleting a pod runs CNI DEL (lease and attachment
# gone). Prints the pod-to-Ready times. Leaves the cluster up, pods removed.
#
# Usage: scripts/k8s/smoke.sh
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$here/../.." && pwd)
STATE=${KTB_STATE:-/var/lib/ktb}
eval "$("$here/cluster.sh" env)"
SKIFFCTL=${SKIFF_BIN:-$REPO/build/bin}/skiffctl
fails=0
say() { echo "smoke: $*" >&2; }
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*"; fails=$((fails + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
in_cidr() { python3 -c 'import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))' "$1" "$2"; }

pod_yaml() { # NAME NODE
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {app: ktb-smoke}}
spec:
  nodeSelector: {kubernetes.io/hostname: $2}
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: ktb.local/busybox:1, imagePullPolicy: Never, command: [sleep, "3600"]}
EOF
}

echo "== nodes"
kubectl get nodes -o wide
for n in ktb-n1 ktb-n2; do
  [[ $(kubectl get node "$n" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]] &&
    ok "$n Ready" || bad "$n not Ready"
done

declare -A NODE=([a1]=ktb-n1 [a2]=ktb-n1 [b1]=ktb-n2)
PODS=(a1 a2 b1)
kubectl delete pod -l app=ktb-smoke --ignore-not-found --wait=true >/dev/null

echo "== pods (apply -> Ready)"
declare -A T_READY IP
t0=$(now)
for p in "${PODS[@]}"; do pod_yaml "$p" "${NODE[$p]}"; echo ---; done | kubectl apply -f - >/dev/null
t_applied=$(since "$t0")
pending=("${PODS[@]}")
while ((${#pending[@]})); do
  left=()
  for p in "${pending[@]}"; do
    if [[ $(kubectl get pod "$p" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]; then
      T_READY[$p]=$(since "$t0")
    else
      left+=("$p")
    fi
  done
  pending=("${left[@]}")
  if (($(awk -v s="$(since "$t0")" 'BEGIN { print (s > 120) }'))); then
    bad "pods not Ready after 120 s: ${pending[*]}"
    kubectl describe pod "${pending[@]}" | tail -30
    break
  fi
  ((${#pending[@]})) && sleep 0.2
done
kubectl get pods -o wide
echo "  kubectl apply returned after ${t_applied} s"
for p in "${PODS[@]}"; do
  echo "  $p on ${NODE[$p]}: Ready ${T_READY[$p]:-never} s after apply"
done

echo "== addresses, plugin log, pins, state"
for p in "${PODS[@]}"; do
  n=${NODE[$p]}
  s=${n#ktb-}
  IP[$p]=$(kubectl get pod "$p" -o 'jsonpath={.status.podIP}')
  cidr=$(kubectl get node "$n" -o 'jsonpath={.spec.podCIDR}')
  in_cidr "${IP[$p]}" "$cidr" && ok "$p ${IP[$p]} is in $n's PodCIDR $cidr" || bad "$p ${IP[$p]} not in $cidr"
  grep -q "ADD .* -> ${IP[$p]} via" "$STATE/$s/skiff.log" &&
    ok "$p: $(grep "ADD .* -> ${IP[$p]} via" "$STATE/$s/skiff.log" | tail -1 | cut -c1-60)... in $STATE/$s/skiff.log" ||
    bad "$p: no ADD for ${IP[$p]} in $STATE/$s/skiff.log"
  [[ -e $STATE/$s/skiff-state/networks/skiff/ipam/${IP[$p]} ]] && ok "$p: lease file ipam/${IP[$p]}" || bad "$p: no lease file"
done
for s in n1 n2; do
  maps=$(find "/sys/fs/bpf/ktb-$s" -maxdepth 1 -name 'skiff_*' | wc -l)
  ((maps > 0)) && ok "/sys/fs/bpf/ktb-$s: $maps skiff maps, $(find "/sys/fs/bpf/ktb-$s" -maxdepth 1 -name 'prog_*' | wc -l) program pin(s)" ||
    bad "/sys/fs/bpf/ktb-$s: no skiff maps"
  echo "  skiffctl endpoint list on ktb-$s:"
  nsenter --net="/run/netns/ktb-$s" -- "$SKIFFCTL" --pin-path "/sys/fs/bpf/ktb-$s" endpoint list 2>&1 | sed 's/^/    /'
done

echo "== ping"
if out=$(kubectl exec a1 -- ping -c 3 -W 2 "${IP[a2]}" 2>&1); then
  ok "same node: a1 -> a2 (${IP[a2]}): $(grep -E 'packets transmitted' <<<"$out")"
else
  bad "same node: a1 -> a2 (${IP[a2]}): $out"
fi
if out=$(kubectl exec a1 -- ping -c 3 -W 2 "${IP[b1]}" 2>&1); then
  echo "  cross node: a1 -> b1 (${IP[b1]}) works: $(grep -E 'packets transmitted' <<<"$out")"
else
  echo "  cross node: a1 -> b1 (${IP[b1]}) fails as expected without skiff-agent's routes: $(grep -E 'packets transmitted' <<<"$out" || echo "$out" | tail -1)"
fi
if out=$(nsenter --net=/run/netns/ktb-n1 -- ping -c 2 -W 2 "${IP[a1]}" 2>&1); then
  ok "node ktb-n1 -> its pod a1: $(grep -E 'packets transmitted' <<<"$out")"
else
  echo "  node ktb-n1 -> its pod a1: fails: $(tail -1 <<<"$out")"
fi

echo "== delete a2 (CNI DEL)"
t0=$(now)
kubectl delete pod a2 --wait=true >/dev/null
echo "  kubectl delete returned after $(since "$t0") s"
for ((i = 0; i < 40; i++)); do
  [[ -e $STATE/n1/skiff-state/networks/skiff/ipam/${IP[a2]} ]] || break
  sleep 0.25
done
[[ ! -e $STATE/n1/skiff-state/networks/skiff/ipam/${IP[a2]} ]] && ok "lease ipam/${IP[a2]} released" || bad "lease ipam/${IP[a2]} still there"
grep -q "DEL " "$STATE/n1/skiff.log" && ok "$(grep "DEL " "$STATE/n1/skiff.log" | tail -1 | cut -c1-90)" || bad "no DEL in skiff.log"
echo "  attachments left on ktb-n1: $(find "$STATE/n1/skiff-state/networks/skiff/attachments" -name '*.json' | wc -l) (a1)"

echo "== clean up pods"
kubectl delete pod -l app=ktb-smoke --wait=true >/dev/null
echo "  leases left: n1 $(find "$STATE/n1/skiff-state/networks/skiff/ipam" -name '10.*' | wc -l), n2 $(find "$STATE/n2/skiff-state/networks/skiff/ipam" -name '10.*' | wc -l)"
echo "== plugin logs"
for s in n1 n2; do sed "s/^/  $s: /" "$STATE/$s/skiff.log"; done | cut -c1-160

if ((fails)); then
  say "$fails check(s) failed"
  exit 1
fi
say "all checks passed"
