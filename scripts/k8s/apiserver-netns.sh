#!/usr/bin/env bash
# Prototype of the test bed's control plane: etcd and kube-apiserver bound to
# 127.0.0.1 inside a fresh network namespace of their own, with a throwaway
# CA, serving certificate, admin client certificate and service-account keys
# made here with openssl. Checks that `kubectl get --raw /version` answers,
# then tears everything down (processes, namespace, files), on failure too.
#
# Not wired into the tests. The root namespace's network configuration is
# never touched: the only change outside the namespace is its name under
# /run/netns, removed on exit.
#
# Usage: scripts/k8s/apiserver-netns.sh [--hold]
#   --hold   keep the control plane up until Ctrl-C (prints how to reach it)
# Env: SKIFF_K8S_BIN (bin dir; default: whatever scripts/k8s/build.sh prints)
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
hold=0
for arg in "$@"; do
  case $arg in
    --hold) hold=1 ;;
    *) echo "apiserver-netns: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

say() { echo "apiserver-netns: $*" >&2; }

BIN=${SKIFF_K8S_BIN:-$("$here/build.sh")}
for b in kube-apiserver kubectl; do
  [[ -x $BIN/$b ]] || { say "no $BIN/$b (run scripts/k8s/build.sh)"; exit 1; }
done
for t in etcd openssl nsenter ip; do
  command -v "$t" >/dev/null || { say "missing $t (scripts/setup.sh installs etcd-server; iproute2, util-linux, openssl)"; exit 1; }
done

NS=skiff-cp-$$
NSPATH=/run/netns/$NS
STATE=$(mktemp -d "${TMPDIR:-/tmp}/skiff-k8s-cp.XXXXXX")
PKI=$STATE/pki
KUBECONFIG_FILE=$STATE/admin.kubeconfig
pids=()
ns_made=0

stop_pid() { # TERM, then KILL after 10 s; only our own children
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid ignored TERM for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

teardown() {
  local rc=$?
  trap - EXIT ERR INT TERM
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
  if ((ns_made)); then
    # Anything still in the namespace was started by this script.
    local left
    left=$(ip netns pids "$NS" 2>/dev/null || true)
    if [[ -n $left ]]; then
      say "killing leftover pids in $NS: $left"
      # shellcheck disable=SC2086  # one pid a word
      kill -KILL $left 2>/dev/null || true
    fi
    ip netns delete "$NS" || say "could not delete netns $NS"
  fi
  if ((rc != 0)); then
    for f in etcd kube-apiserver; do
      [[ -s $STATE/$f.log ]] || continue
      say "last lines of $f.log:"
      tail -n 15 "$STATE/$f.log" | sed 's/^/    /' >&2
    done
  fi
  rm -rf "$STATE"
  exit "$rc"
}
trap teardown EXIT
trap 'say "FAILED at line $LINENO"' ERR
trap 'exit 130' INT TERM

in_ns() { nsenter --net="$NSPATH" "$@"; }
# Long-lived processes are started with nsenter itself (not the in_ns function)
# in the background: nsenter execs the program, so $! is the program's pid and
# a TERM to it reaches the program, not a subshell.

# --- namespace ---------------------------------------------------------------
ip netns add "$NS"
ns_made=1
ip -n "$NS" link set lo up
say "netns $NS (state in $STATE)"

# --- PKI ---------------------------------------------------------------------
mkdir -p "$PKI"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME SUBJECT EXTENSIONS: key, CSR, certificate signed by the test CA
sign() {
  local name=$1 subj=$2 ext=$3
  ec "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 2 -out "$PKI/$name.crt" -extfile <(printf '%b' "$ext") 2>/dev/null
}
ec "$PKI/ca.key"
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=skiff-testbed-ca" -days 2 -out "$PKI/ca.crt"
sign apiserver "/CN=kube-apiserver" \
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
sign admin "/O=system:masters/CN=skiff-admin" \
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
# Service-account token signing pair.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

"$BIN/kubectl" config set-cluster skiff --kubeconfig="$KUBECONFIG_FILE" \
  --server=https://127.0.0.1:6443 --certificate-authority="$PKI/ca.crt" --embed-certs >/dev/null
"$BIN/kubectl" config set-credentials admin --kubeconfig="$KUBECONFIG_FILE" \
  --client-certificate="$PKI/admin.crt" --client-key="$PKI/admin.key" --embed-certs >/dev/null
"$BIN/kubectl" config set-context skiff --kubeconfig="$KUBECONFIG_FILE" --cluster=skiff --user=admin >/dev/null
"$BIN/kubectl" config use-context skiff --kubeconfig="$KUBECONFIG_FILE" >/dev/null

# --- etcd --------------------------------------------------------------------
# nsenter --net switches only the network namespace; `ip netns exec` would also
# remount /sys for the namespace, which hides /sys/fs/bpf from the process.
nsenter --net="$NSPATH" etcd --name cp --data-dir "$STATE/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster cp=http://127.0.0.1:2380 --listen-metrics-urls '' \
  >"$STATE/etcd.log" 2>&1 &
pids+=($!)

wait_for() { # DESC SECONDS PID CMD...: poll CMD until it succeeds while PID lives
  local desc=$1 secs=$2 pid=$3 i
  shift 3
  for ((i = 0; i < secs * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { say "$desc: process $pid exited"; return 1; }
    sleep 0.25
  done
  say "$desc: not ready after $secs s"
  return 1
}
t0=$(date +%s.%N)
wait_for etcd 30 "${pids[0]}" in_ns curl -fsS http://127.0.0.1:2379/health

# --- kube-apiserver -----------------------------------------------------------
# --endpoint-reconciler-type=none: the "kubernetes" service's endpoint would be
# 127.0.0.1, which Endpoints validation refuses (loopback).
nsenter --net="$NSPATH" "$BIN/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 --insecure-port=0 \
  --client-ca-file="$PKI/ca.crt" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.96.0.0/24 \
  --authorization-mode=Node,RBAC --endpoint-reconciler-type=none \
  --profiling=false --cert-dir="$STATE/apiserver-certs" \
  >"$STATE/kube-apiserver.log" 2>&1 &
pids+=($!)

kc() { in_ns "$BIN/kubectl" --kubeconfig="$KUBECONFIG_FILE" "$@"; }
wait_for kube-apiserver 120 "${pids[1]}" kc get --raw /readyz
ready=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "etcd + kube-apiserver ready in $ready s"

version=$(kc get --raw /version)
echo "$version"
grep -q '"gitVersion": *"v1.20.2"' <<<"$version" || { say "unexpected /version"; false; }
kc get namespaces >&2
# A write and a read through etcd, with the admin (system:masters) identity.
kc create namespace skiff-smoke >/dev/null
kc get namespace skiff-smoke -o name >&2

if ((hold)); then
  say "holding; reach it with: nsenter --net=$NSPATH $BIN/kubectl --kubeconfig=$KUBECONFIG_FILE ..."
  say "Ctrl-C to tear down"
  wait "${pids[1]}" || true
fi
say "ok; tearing down"
