#!/usr/bin/env bash
# A Kubernetes 1.20 cluster on one machine, in network namespaces, with skiff
# as the CNI plugin:
#
#   ktb-ul   underlay: bridge br0, one veth per namespace below (192.168.77.0/24)
#   ktb-cp   192.168.77.10: etcd, kube-apiserver, kube-controller-manager
#            (allocates PodCIDRs out of 10.244.0.0/16), kube-scheduler
#   ktb-n1   192.168.77.11: containerd + kubelet (node "ktb-n1")
#   ktb-n2   192.168.77.12: containerd + kubelet (node "ktb-n2")
#
# No kube-proxy, no registry: a pause image (catatonit), a busybox image
# (busybox-static) and skiff's own image (scripts/image.sh --rootfs) are built
# here as docker archives and imported into each node's containerd. skiff is
# then deployed as a user would: `kubectl apply` of deploy/skiff.yaml, with
# the API server's address filled in where the manifest says CHANGE.
#
# Each node also has its own mount namespace (held at $KTB_STATE/mnt/NODE),
# shared by its containerd, kubelet and their containers, in which the host
# paths a node's CNI owns are the node's own: /opt/cni/bin, /etc/cni/net.d
# and /var/lib/skiff are bind mounts of directories under $KTB_STATE/NODE,
# so are /var/log/pods and /var/log/containers (kubelet's container GC
# removes every pod log directory whose pod it does not run: with one shared
# directory, each kubelet deleted the other node's pods' logs once a minute),
# /sys/fs/bpf is a bpffs of its own, and the cgroup2 root
# (/sys/fs/cgroup/unified) is the cgroup ktb-NODE, which holds the node's
# daemons and containers. So two nodes on one machine do not share the
# DaemonSet's hostPath volumes, and skiff's socket LB, attached to "the
# host's cgroup2 root", reaches no process outside the node.
#
# Usage: scripts/k8s/cluster.sh up|down|env|status|on|apiserver
#   up      bring the cluster up (tears down again if anything fails)
#   down    remove everything: processes, pods, mounts, cgroups, pins,
#           namespaces, files; restores the kernel settings kubelet changes.
#           Idempotent, also after a failed or interrupted `up`.
#   env     print the shell lines to use kubectl from the root namespace
#   status  show what is running
#   on NODE CMD...      run CMD on node n1 or n2, as the node's own
#                       processes run (its netns, mounts, cgroup2 root)
#   apiserver stop|start  stop or start kube-apiserver alone (tests)
#
# Env: KTB_CNI: how skiff gets onto the nodes: `daemonset` (default: the
# DaemonSet of deploy/skiff.yaml), `agent` (this script runs a skiff-agent
# per node as a host process) or `script` (no agent: this script writes the
# conflist once the node has its PodCIDR),
# KTB_ROUTING (the agents' routingMode: native, the default, vxlan or
# vxlan-cross-subnet),
# KTB_STATE (state dir, default /var/lib/ktb), KTB_API_PORT (the root
# namespace's 127.0.0.1 port forwarded to kube-apiserver, default 16443),
# SKIFF_K8S_BIN (Kubernetes bin dir; default: what scripts/k8s/build.sh prints),
# SKIFF_BIN (skiff's bin dir, default build/bin of this repository).
#
# The root namespace's routes, addresses, devices, firewall, net sysctls and
# bpffs are never touched. In it are a TCP forwarder listening on
# 127.0.0.1:$KTB_API_PORT (scripts/k8s/netns-forward.py), the cgroups
# ktb-NODE, and /opt/cni/bin, /var/lib/skiff and /etc/cni/net.d as empty
# mount points when they did not exist (removed again by `down`).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$here/../.." && pwd)
STATE=${KTB_STATE:-/var/lib/ktb}
API_PORT_LOCAL=${KTB_API_PORT:-16443}
SKIFF_BIN=${SKIFF_BIN:-$REPO/build/bin}
CNI_MODE=${KTB_CNI:-daemonset}
ROUTING=${KTB_ROUTING:-native}

UL=192.168.77
CP_IP=$UL.10
NODES=(n1 n2)
declare -A NODE_IP=([n1]=$UL.11 [n2]=$UL.12)
CLUSTER_CIDR=10.244.0.0/16
SVC_CIDR=10.96.0.0/16
SVC_API_IP=10.96.0.1
PAUSE_IMAGE=ktb.local/pause:1
BUSYBOX_IMAGE=ktb.local/busybox:1
SKIFF_IMAGE=localhost/skiff:dev # what deploy/skiff.yaml names
CG2=/sys/fs/cgroup/unified      # this machine's cgroup2 root (hybrid)
# Where each node's own copy of a host path lives (see the top).
node_cni_bin() { echo "$STATE/$1/cni-bin"; }
node_cni_conf() { echo "$STATE/$1/cni/net.d"; }
node_skiff_state() { echo "$STATE/$1/skiff-state"; }
node_pod_logs() { echo "$STATE/$1/log/pods"; }
node_container_logs() { echo "$STATE/$1/log/containers"; }
# What kubelet 1.20 sets (setupKernelTunables) unless --protect-kernel-defaults.
declare -A KUBELET_SYSCTL=(
  [vm.overcommit_memory]=1 [vm.panic_on_oom]=0 [kernel.panic]=10
  [kernel.panic_on_oops]=1 [kernel.keys.root_maxkeys]=1000000
  [kernel.keys.root_maxbytes]=25000000
)
# Paths outside $STATE that kubelet/containerd create when they are missing.
OUTSIDE=(/var/log/pods /var/log/containers /var/lib/kubelet /var/lib/cni /run/containerd
  /opt/containerd /var/lib/containerd /var/run/kubernetes /sys/fs/cgroup/memory/k8s.io
  /opt/cni /opt/cni/bin /var/lib/skiff /etc/cni /etc/cni/net.d)

PKI=$STATE/pki
CP=$STATE/cp
ADMIN_KC=$STATE/admin.kubeconfig       # via the forwarder, for the root namespace
ADMIN_NS_KC=$STATE/admin-ns.kubeconfig # direct, for use inside the namespaces

say() { echo "ktb: $*" >&2; }
die() { say "$*"; exit 1; }
ns_of() { case $1 in cp) echo ktb-cp ;; ul) echo ktb-ul ;; *) echo "ktb-$1" ;; esac; }
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }
# A command as on node N: its network and mount namespaces, in its cgroup2
# root (which, seen from there, is $CG2 itself). nsenter and sh exec in
# place, so the pid is the command's.
in_node() {
  local n=$1; shift
  nsenter --net="/run/netns/ktb-$n" --mount="$STATE/mnt/$n" -- \
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG2" "$@"
}
kc() { in_ns ktb-cp "$BIN/kubectl" --kubeconfig="$ADMIN_NS_KC" "$@"; }
ctr_n() { local n=$1; shift; ctr --address "$STATE/$n/containerd/containerd.sock" -n k8s.io "$@"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

find_bins() {
  BIN=${SKIFF_K8S_BIN:-$("$here/build.sh")}
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
    [[ -x $BIN/$b ]] || die "no $BIN/$b (run scripts/k8s/build.sh)"
  done
}

# --- processes -----------------------------------------------------------------
# Each daemon runs in its own session (setsid, which execs in place because a
# background child of a script is no group leader) so it outlives `up`; its
# pid and start time go to $STATE/pids/NAME, so `down` never signals a reused pid.
starttime() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
start_daemon() { # NAME NETNS|node:N|- CMD...
  local name=$1 ns=$2 pid
  shift 2
  case $ns in
    -) setsid "$@" >"$STATE/log/$name.log" 2>&1 </dev/null & ;;
    node:*) setsid nsenter --net="/run/netns/ktb-${ns#node:}" --mount="$STATE/mnt/${ns#node:}" -- \
      sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG2" "$@" >"$STATE/log/$name.log" 2>&1 </dev/null & ;;
    *) setsid nsenter --net="/run/netns/$ns" -- "$@" >"$STATE/log/$name.log" 2>&1 </dev/null & ;;
  esac
  pid=$!
  echo "$pid $(starttime "$pid")" >"$STATE/pids/$name"
}
pid_alive() { # NAME -> prints the pid if that process still runs
  local f=$STATE/pids/$1 pid st
  [[ -f $f ]] || return 1
  read -r pid st <"$f"
  [[ -n $pid && $(starttime "$pid") == "$st" ]] || return 1
  echo "$pid"
}
stop_daemon() { # NAME [SECONDS]: TERM, then KILL
  local name=$1 secs=${2:-15} pid i t
  t=$(date +%s.%N)
  pid=$(pid_alive "$name") || { rm -f "$STATE/pids/$name"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) ignored TERM for $secs s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/pids/$name"
  [[ -n ${KTB_DEBUG:-} ]] && say "stopped $name in $(elapsed "$t") s"
  return 0
}
stop_daemons() { # NAME...: TERM to all at once, then wait for each
  local name pid
  for name in "$@"; do
    pid=$(pid_alive "$name") && kill -TERM "$pid" 2>/dev/null
  done
  for name in "$@"; do stop_daemon "$name"; done
}
wait_for() { # DESC SECONDS DAEMON|- CMD...: poll CMD until it succeeds while DAEMON lives
  local desc=$1 secs=$2 d=$3 end
  shift 3
  end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    "$@" >/dev/null 2>&1 && return 0
    if [[ $d != - ]] && ! pid_alive "$d" >/dev/null; then
      say "$desc: $d exited; last lines of $STATE/log/$d.log:"
      tail -n 20 "$STATE/log/$d.log" | sed 's/^/    /' >&2
      return 1
    fi
    sleep 0.25
  done
  say "$desc: not ready after $secs s"
  return 1
}

# --- kernel settings kubelet changes --------------------------------------------
save_sysctls() {
  [[ -f $STATE/sysctl.saved ]] && return 0 # the first save is the machine's own
  local s
  for s in "${!KUBELET_SYSCTL[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$STATE/sysctl.saved.tmp"
  mv "$STATE/sysctl.saved.tmp" "$STATE/sysctl.saved"
}
restore_sysctls() {
  [[ -f $STATE/sysctl.saved ]] || return 0
  local line s v
  while IFS= read -r line; do
    s=${line%%=*} v=${line#*=}
    [[ $(sysctl -n "$s") == "$v" ]] || sysctl -q -w "$s=$v" >/dev/null
  done <"$STATE/sysctl.saved"
}
sysctls_restored() {
  [[ -f $STATE/sysctl.saved ]] || return 0
  local line
  while IFS= read -r line; do
    [[ $(sysctl -n "${line%%=*}") == "${line#*=}" ]] || return 1
  done <"$STATE/sysctl.saved"
}
kubelet_tuned() { # all of kubelet's values are in place
  local s
  for s in "${!KUBELET_SYSCTL[@]}"; do
    [[ $(sysctl -n "$s") == "${KUBELET_SYSCTL[$s]}" ]] || return 1
  done
}

# --- images -----------------------------------------------------------------------
# A docker-archive (manifest.json, config, one layer) made with tar, which
# `ctr images import` understands. ROOTFS becomes the single layer.
docker_archive() { # OUT REF ROOTFS ENTRYPOINT_JSON CMD_JSON
  local out=$1 ref=$2 rootfs=$3 ep=$4 cmd=$5 w lsha csha
  w=$(mktemp -d "$STATE/images/.w.XXXXXX")
  tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$w/layer.tar" .
  lsha=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
  mkdir "$w/$lsha"
  mv "$w/layer.tar" "$w/$lsha/layer.tar"
  printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/k8s/cluster.sh"}]}' \
    "$ep" "$cmd" "$lsha" >"$w/config.json"
  csha=$(sha256sum "$w/config.json" | cut -d' ' -f1)
  mv "$w/config.json" "$w/$csha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$csha" "$ref" "$lsha" >"$w/manifest.json"
  tar -C "$w" -cf "$out" manifest.json "$csha.json" "$lsha/layer.tar"
  rm -rf "$w"
}
build_images() {
  local r=$STATE/images/rootfs a
  [[ -x /usr/bin/catatonit ]] || die "no /usr/bin/catatonit (apt-get install catatonit) for the pause image"
  { [[ -x /bin/busybox ]] && file -L /bin/busybox | grep -q 'statically linked'; } ||
    die "no static /bin/busybox (apt-get install busybox-static)"
  mkdir -p "$r/pause" "$r/busybox/bin" "$r/busybox/tmp" "$r/busybox/etc"
  cp /usr/bin/catatonit "$r/pause/catatonit"
  docker_archive "$STATE/images/pause.tar" "$PAUSE_IMAGE" "$r/pause" '["/catatonit","-P"]' 'null'
  cp /bin/busybox "$r/busybox/bin/busybox"
  # The tests' UDP server and client (tests/k8s/tools/udpecho.c), when built.
  if [[ -x $SKIFF_BIN/ktb-udpecho ]]; then cp "$SKIFF_BIN/ktb-udpecho" "$r/busybox/bin/udpecho"; fi
  for a in $(/bin/busybox --list); do
    [[ $a == busybox ]] || ln -s busybox "$r/busybox/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/busybox/etc/passwd"
  echo 'root:x:0:' >"$r/busybox/etc/group"
  chmod 1777 "$r/busybox/tmp"
  docker_archive "$STATE/images/busybox.tar" "$BUSYBOX_IMAGE" "$r/busybox" 'null' '["/bin/sh"]'
  if [[ $CNI_MODE == daemonset ]]; then
    # skiff's image as scripts/image.sh stages it (the binaries, the
    # libraries they link, nothing else), archived here without podman.
    bash "$REPO/scripts/image.sh" --bin-dir "$SKIFF_BIN" --rootfs "$r/skiff" 2>"$STATE/log/image.log" ||
      { cat "$STATE/log/image.log" >&2; die "scripts/image.sh --rootfs failed"; }
    docker_archive "$STATE/images/skiff.tar" "$SKIFF_IMAGE" "$r/skiff" 'null' \
      '["/usr/local/bin/skiff-agent","--config","/etc/skiff/agent.json"]'
  fi
  rm -rf "$r"
}

# --- PKI ----------------------------------------------------------------------------
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
sign() { # NAME SUBJECT EXTENSIONS
  local name=$1 subj=$2 ext=$3
  ec "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 7 -out "$PKI/$name.crt" -extfile <(printf '%b' "$ext") 2>/dev/null
  rm -f "$PKI/$name.csr"
}
CLIENT_EXT="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
kubeconfig() { # FILE SERVER CERTNAME
  local f=$1 server=$2 c=$3
  "$BIN/kubectl" config set-cluster ktb --kubeconfig="$f" --server="$server" \
    --certificate-authority="$PKI/ca.crt" --embed-certs >/dev/null
  "$BIN/kubectl" config set-credentials "$c" --kubeconfig="$f" \
    --client-certificate="$PKI/$c.crt" --client-key="$PKI/$c.key" --embed-certs >/dev/null
  "$BIN/kubectl" config set-context ktb --kubeconfig="$f" --cluster=ktb --user="$c" >/dev/null
  "$BIN/kubectl" config use-context ktb --kubeconfig="$f" >/dev/null
}
make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  ec "$PKI/ca.key"
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=ktb-ca" -days 7 -out "$PKI/ca.crt"
  sign apiserver "/CN=kube-apiserver" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$CP_IP,IP:127.0.0.1,IP:$SVC_API_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
  sign admin "/O=system:masters/CN=ktb-admin" "$CLIENT_EXT"
  sign apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" "$CLIENT_EXT"
  sign controller-manager "/CN=system:kube-controller-manager" "$CLIENT_EXT"
  sign scheduler "/CN=system:kube-scheduler" "$CLIENT_EXT"
  local n
  for n in "${NODES[@]}"; do
    sign "node-$n" "/O=system:nodes/CN=system:node:ktb-$n" "$CLIENT_EXT"
    sign "kubelet-$n" "/CN=ktb-$n" \
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:${NODE_IP[$n]},DNS:ktb-$n\n"
  done
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
  kubeconfig "$ADMIN_KC" "https://127.0.0.1:$API_PORT_LOCAL" admin
  kubeconfig "$ADMIN_NS_KC" "https://$CP_IP:6443" admin
  kubeconfig "$CP/controller-manager.kubeconfig" "https://$CP_IP:6443" controller-manager
  kubeconfig "$CP/scheduler.kubeconfig" "https://$CP_IP:6443" scheduler
  for n in "${NODES[@]}"; do
    kubeconfig "$STATE/$n/kubelet.kubeconfig" "https://$CP_IP:6443" "node-$n"
  done
}

# --- network -----------------------------------------------------------------------
make_network() {
  local ns n
  for ns in ktb-ul ktb-cp "${NODES[@]/#/ktb-}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip -n ktb-ul link add br0 type bridge
  ip -n ktb-ul link set br0 up
  for n in cp "${NODES[@]}"; do
    ns=$(ns_of "$n")
    # Both ends are created from inside ktb-ul; the root namespace never sees them.
    ip -n ktb-ul link add "ul-$n" type veth peer name up0 netns "$ns"
    ip -n ktb-ul link set "ul-$n" master br0 up
    if [[ $n == cp ]]; then
      ip -n "$ns" addr add "$CP_IP/24" dev up0
    else
      ip -n "$ns" addr add "${NODE_IP[$n]}/24" dev up0
    fi
    ip -n "$ns" link set up0 up
  done
}

# --- node mount namespaces -------------------------------------------------------
# See the top. The namespaces are slaves of the root one: the root's mounts
# (and so $STATE) show in them, theirs (containers' rootfs, kubelet's volumes,
# the node's bpffs) never leave them, and they die with their last process
# once `down` unmounts $STATE/mnt/NODE.
make_node_mounts() {
  local n t
  for t in /opt/cni/bin /var/lib/skiff /etc/cni/net.d /var/log/pods /var/log/containers; do
    [[ -d $t ]] || mkdir -p "$t"
  done
  [[ $(stat -fc %T "$CG2" 2>/dev/null) == cgroup2fs ]] || die "no cgroup2 at $CG2"
  mkdir -p "$STATE/mnt"
  mount --bind "$STATE/mnt" "$STATE/mnt"
  mount --make-private "$STATE/mnt" # unshare --mount=FILE wants a private parent
  for n in "${NODES[@]}"; do
    mkdir -p "$(node_cni_bin "$n")" "$(node_cni_conf "$n")" "$(node_skiff_state "$n")" "$CG2/ktb-$n" \
      "$(node_pod_logs "$n")" "$(node_container_logs "$n")"
    # containerd's CRI runs `loopback` for every pod.
    ln -sf /usr/lib/cni/loopback "$(node_cni_bin "$n")/loopback"
    touch "$STATE/mnt/$n"
    unshare --mount="$STATE/mnt/$n" --propagation slave sh -ec '
      mount --bind "$1" /opt/cni/bin
      mount --bind "$2" /etc/cni/net.d
      mount --bind "$3" /var/lib/skiff
      mount --bind "$6" /var/log/pods
      mount --bind "$7" /var/log/containers
      # A bpffs of its own, in place of (not over) the copy of the host one:
      # containerd checks the first mount it finds at the path is shared.
      while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf; done
      mount -t bpf bpf /sys/fs/bpf
      mount --make-shared /sys/fs/bpf  # the DaemonSet mounts it Bidirectional
      mount --bind "$4" "$5"' sh "$(node_cni_bin "$n")" "$(node_cni_conf "$n")" \
      "$(node_skiff_state "$n")" "$CG2/ktb-$n" "$CG2" "$(node_pod_logs "$n")" "$(node_container_logs "$n")"
  done
}

# --- control plane --------------------------------------------------------------
start_control_plane() {
  mkdir -p "$CP/etcd" "$CP/certs"
  start_daemon etcd ktb-cp etcd --name cp --data-dir "$CP/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster cp=http://127.0.0.1:2380 --listen-metrics-urls ''
  wait_for etcd 60 etcd in_ns ktb-cp curl -fsS http://127.0.0.1:2379/health
  start_apiserver
  start_controllers
}

# Also `cluster.sh apiserver start` after `apiserver stop`: the same flags.
start_apiserver() {
  start_daemon kube-apiserver ktb-cp "$BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --advertise-address="$CP_IP" --secure-port=6443 --insecure-port=0 \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SVC_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false --cert-dir="$CP/certs/apiserver"
  wait_for kube-apiserver 120 kube-apiserver kc get --raw /readyz
}

start_controllers() {
  local c
  for c in controller-manager scheduler; do
    mkdir -p "$CP/certs/$c"
  done
  start_daemon kube-controller-manager ktb-cp "$BIN/kube-controller-manager" \
    --kubeconfig="$CP/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CP/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CP/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --port=0 --leader-elect=false \
    --cert-dir="$CP/certs/controller-manager" \
    --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SVC_CIDR" --configure-cloud-routes=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --controllers='*,bootstrapsigner,tokencleaner' --profiling=false
  start_daemon kube-scheduler ktb-cp "$BIN/kube-scheduler" \
    --kubeconfig="$CP/scheduler.kubeconfig" \
    --authentication-kubeconfig="$CP/scheduler.kubeconfig" \
    --authorization-kubeconfig="$CP/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --port=0 --leader-elect=false \
    --cert-dir="$CP/certs/scheduler" --profiling=false
  wait_for kube-controller-manager 60 kube-controller-manager \
    in_ns ktb-cp curl -fsSk https://127.0.0.1:10257/healthz
  wait_for kube-scheduler 60 kube-scheduler in_ns ktb-cp curl -fsSk https://127.0.0.1:10259/healthz

  [[ -f $here/netns-forward.py ]] || die "missing $here/netns-forward.py"
  start_daemon api-forward - python3 "$here/netns-forward.py" /run/netns/ktb-cp \
    127.0.0.1 "$API_PORT_LOCAL" "$CP_IP" 6443
}

# --- nodes --------------------------------------------------------------------------
containerd_config() { # NODE
  local n=$1 d=$STATE/$1/containerd
  cat <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$d/containerd.sock"

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$d/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    # No CAP_SYS_RESOURCE here: lowering a container's oom_score_adj fails.
    restrict_oom_score_adj = true
    disable_apparmor = true
    # Pod netns bind mounts under $d/state, not /run/netns.
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          Root = "$d/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      # The node's own, through its mount namespace.
      bin_dir = "/opt/cni/bin"
      conf_dir = "/etc/cni/net.d"
      max_conf_num = 1
EOF
}

start_containerd() { # NODE
  local n=$1 d=$STATE/$1/containerd
  mkdir -p "$d"
  containerd_config "$n" >"$d/config.toml"
  start_daemon "containerd-$n" "node:$n" env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    containerd --config "$d/config.toml"
}

start_kubelet() { # NODE
  local n=$1 d=$STATE/$1
  mkdir -p "$d/kubelet" "$d/kubelet-pki" "$d/volume-plugins"
  cp "$PKI/kubelet-$n.crt" "$d/kubelet-pki/kubelet.crt"
  cp "$PKI/kubelet-$n.key" "$d/kubelet-pki/kubelet.key"
  start_daemon "kubelet-$n" "node:$n" env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$BIN/kubelet" \
    --kubeconfig="$d/kubelet.kubeconfig" \
    --root-dir="$d/kubelet" --cert-dir="$d/kubelet-pki" \
    --tls-cert-file="$d/kubelet-pki/kubelet.crt" --tls-private-key-file="$d/kubelet-pki/kubelet.key" \
    --hostname-override="ktb-$n" --node-ip="${NODE_IP[$n]}" \
    --address="${NODE_IP[$n]}" --port=10250 --read-only-port=0 \
    --healthz-bind-address=127.0.0.1 --healthz-port=10248 \
    --client-ca-file="$PKI/ca.crt" --anonymous-auth=false --authorization-mode=AlwaysAllow \
    --container-runtime=remote --container-runtime-endpoint="unix://$d/containerd/containerd.sock" \
    --containerd="$d/containerd/containerd.sock" \
    --pod-infra-container-image="$PAUSE_IMAGE" \
    --network-plugin=cni --cni-bin-dir=/opt/cni/bin --cni-conf-dir=/etc/cni/net.d \
    --cni-cache-dir="$d/cni/cache" \
    --fail-swap-on=false --cgroup-driver=cgroupfs \
    --cgroups-per-qos=false --enforce-node-allocatable= --cgroup-root="/ktb-$n" \
    --volume-plugin-dir="$d/volume-plugins" --seccomp-profile-root="$d/kubelet/seccomp" \
    --eviction-hard='memory.available<100Mi,nodefs.available<2%,imagefs.available<2%' \
    --cluster-domain=cluster.local --resolv-conf=/etc/resolv.conf \
    --feature-gates=DevicePlugins=false \
    --v=2
}

start_agent() { # NODE: skiff-agent on the node, reading the API (KTB_CNI=agent)
  local n=$1 d=$STATE/$1
  cat >"$d/agent.json" <<EOF
{"nodeName": "ktb-$n", "clusterCIDR": "$CLUSTER_CIDR",
 "source": {"kubernetes": {"kubeconfig": "$ADMIN_NS_KC"}},
 "pinPath": "/sys/fs/bpf/skiff", "stateDir": "/var/lib/skiff", "cniConfDir": "/etc/cni/net.d",
 "cniLogFile": "$d/skiff.log", "socketLBCgroup": "/sys/fs/cgroup",
 "listen": "127.0.0.1:9964", "resyncSeconds": 5, "routingMode": "$ROUTING"}
EOF
  start_daemon "skiff-agent-$n" "node:$n" "$SKIFF_BIN/skiff-agent" --config "$d/agent.json"
}

# deploy/skiff.yaml as an operator applies it, with the API server's address
# filled in where it says CHANGE (nothing serves the kubernetes Service's
# ClusterIP before skiff does).
deploy_skiff() {
  sed -e "s|^  # kubernetes-service-host: .*|  kubernetes-service-host: \"$CP_IP\"|" \
    -e 's|^  # kubernetes-service-port: .*|  kubernetes-service-port: "6443"|' \
    -e "s|^      \"routingMode\": \"native\",|      \"routingMode\": \"$ROUTING\",|" \
    "$REPO/deploy/skiff.yaml" >"$STATE/skiff.yaml"
  grep -q "^  kubernetes-service-host: \"$CP_IP\"" "$STATE/skiff.yaml" ||
    die "deploy/skiff.yaml has no '  # kubernetes-service-host:' line to fill in"
  grep -q "^      \"routingMode\": \"$ROUTING\"," "$STATE/skiff.yaml" ||
    die "deploy/skiff.yaml has no '\"routingMode\": \"native\",' line to set to $ROUTING"
  kc apply -f "$STATE/skiff.yaml" >&2
}
ds_ready() {
  local want have
  want=$(kc -n kube-system get ds skiff -o 'jsonpath={.status.desiredNumberScheduled}')
  have=$(kc -n kube-system get ds skiff -o 'jsonpath={.status.numberReady}')
  [[ -n $want && $want == "${#NODES[@]}" && $have == "$want" ]]
}

write_conflist() { # NODE PODCIDR
  local n=$1 cidr=$2 d=$STATE/$1
  # Written in place with one write(), not renamed into place: containerd
  # 1.6's conf syncer ignores fsnotify Create events (a rename is one) and
  # reloads only on Write, Rename-away or Remove.
  local conf
  conf='{"cniVersion":"0.4.0","name":"skiff","plugins":[{"type":"skiff","podCIDR":"'$cidr'","clusterCIDR":"'$CLUSTER_CIDR'","pinPath":"/sys/fs/bpf/skiff","stateDir":"/var/lib/skiff","logFile":"'$d/skiff.log'"}]}'
  printf '%s\n' "$conf" >"$(node_cni_conf "$n")/10-skiff.conflist"
}

has_podcidr() { [[ -n $(kc get node "$1" -o 'jsonpath={.spec.podCIDR}') ]]; }
sa_token_ready() { [[ -n $(kc get sa default -o 'jsonpath={.secrets[0].name}') ]]; }
node_ready() {
  [[ $(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

up() {
  local t0 t n
  t0=$(date +%s.%N)
  [[ $EUID == 0 ]] || die "run as root"
  find_bins
  for t in etcd openssl nsenter ip containerd containerd-shim-runc-v2 runc ctr curl python3 file; do
    command -v "$t" >/dev/null || die "missing $t (apt-get install etcd-server containerd runc curl)"
  done
  [[ -x $SKIFF_BIN/skiff ]] || die "no $SKIFF_BIN/skiff (build skiff first)"
  [[ -x /usr/lib/cni/loopback ]] || die "no /usr/lib/cni/loopback (apt-get install containernetworking-plugins)"
  if [[ -e $STATE ]] || ls /run/netns/ktb-* >/dev/null 2>&1; then
    die "$STATE or ktb-* namespaces exist: run '$0 down' first"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT_LOCAL") 2>/dev/null; then
    die "127.0.0.1:$API_PORT_LOCAL is taken (set KTB_API_PORT)"
  fi

  case $CNI_MODE in daemonset | agent | script) ;; *) die "KTB_CNI=$CNI_MODE: want daemonset, agent or script" ;; esac
  case $ROUTING in native | vxlan | vxlan-cross-subnet) ;; *) die "KTB_ROUTING=$ROUTING: want native, vxlan or vxlan-cross-subnet" ;; esac
  mkdir -p "$STATE"/{pids,log,images,cp}
  for n in "${NODES[@]}"; do mkdir -p "$STATE/$n"; done
  # What existed before, so `down` removes only what this cluster created.
  for t in "${OUTSIDE[@]}"; do
    if [[ -e $t ]]; then echo "$t"; fi
  done >"$STATE/preexisting"
  # shellcheck disable=SC2154  # up_rc is assigned inside the trap
  trap 'up_rc=$?; if ((up_rc)); then up_failed; fi; exit $up_rc' EXIT
  trap 'say "interrupted"; exit 130' INT TERM

  say "network namespaces, underlay, node mount namespaces"
  make_network
  make_node_mounts
  if [[ $CNI_MODE != daemonset ]]; then # else the DaemonSet's install-cni puts it there
    for n in "${NODES[@]}"; do ln -s "$SKIFF_BIN/skiff" "$(node_cni_bin "$n")/skiff"; done
  fi
  say "PKI"
  make_pki
  say "images (pause: catatonit, busybox: busybox-static)"
  build_images

  say "control plane"
  start_control_plane
  say "control plane ready after $(elapsed "$t0") s"

  for n in "${NODES[@]}"; do start_containerd "$n"; done
  for n in "${NODES[@]}"; do
    wait_for "containerd-$n" 60 "containerd-$n" ctr_n "$n" version
    ctr_n "$n" images import "$STATE/images/pause.tar" >/dev/null
    ctr_n "$n" images import "$STATE/images/busybox.tar" >/dev/null
    if [[ $CNI_MODE == daemonset ]]; then ctr_n "$n" images import "$STATE/images/skiff.tar" >/dev/null; fi
  done
  say "containerd ready, images imported after $(elapsed "$t0") s"

  # kubelet sets global kernel settings once, at start (setupKernelTunables).
  # Start one kubelet at a time, wait until it has set them, put the machine's
  # values back at once. `down` restores them again from the same file.
  save_sysctls
  for n in "${NODES[@]}"; do
    start_kubelet "$n"
    if wait_for "kubelet-$n kernel settings" 60 "kubelet-$n" kubelet_tuned; then
      restore_sysctls
    else
      restore_sysctls
      return 1
    fi
  done
  say "kubelets started after $(elapsed "$t0") s (kernel settings restored)"

  local cidr
  if [[ $CNI_MODE == daemonset ]]; then
    say "kubectl apply -f deploy/skiff.yaml"
    deploy_skiff
  fi
  for n in "${NODES[@]}"; do
    wait_for "node ktb-$n PodCIDR" 120 "kubelet-$n" has_podcidr "ktb-$n"
    cidr=$(kc get node "ktb-$n" -o 'jsonpath={.spec.podCIDR}')
    [[ -n $cidr ]] || die "node ktb-$n has no PodCIDR"
    case $CNI_MODE in
      agent)
        start_agent "$n"
        say "ktb-$n: PodCIDR $cidr, skiff-agent started (it writes the conflist)"
        ;;
      script)
        write_conflist "$n" "$cidr"
        say "ktb-$n: PodCIDR $cidr, wrote $(node_cni_conf "$n")/10-skiff.conflist"
        ;;
    esac
  done
  if [[ $CNI_MODE == daemonset ]]; then
    wait_for "DaemonSet skiff ready on ${#NODES[@]} nodes" 180 - ds_ready
    say "skiff DaemonSet ready after $(elapsed "$t0") s"
  fi
  for n in "${NODES[@]}"; do
    wait_for "node ktb-$n Ready" 120 "kubelet-$n" node_ready "ktb-$n"
  done
  wait_for "service account default/default with a token" 60 - sa_token_ready
  sysctls_restored || { say "kernel settings changed again; restoring"; restore_sysctls; }
  elapsed "$t0" >"$STATE/up-seconds"
  say "cluster up in $(elapsed "$t0") s"
  kc get nodes -o wide >&2
  trap - EXIT
  env_lines
}

up_failed() {
  set +e
  trap '' INT TERM # a second signal must not cut the teardown short
  local keep n
  keep=$(mktemp -d /tmp/ktb-failed.XXXXXX)
  cp -r "$STATE/log" "$keep/" 2>/dev/null
  for n in "${NODES[@]}"; do cp "$STATE/$n/skiff.log" "$keep/skiff-$n.log" 2>/dev/null; done
  for n in "${NODES[@]}"; do cp -rL "$(node_pod_logs "$n")"/kube-system_skiff-* "$keep/" 2>/dev/null; done
  say "up failed; logs copied to $keep"
  if [[ ${KTB_KEEP:-0} == 1 ]]; then
    say "KTB_KEEP=1: leaving the cluster as it is; '$0 down' removes it"
    restore_sysctls
  else
    say "tearing down"
    down
  fi
}

env_lines() {
  echo "export KUBECONFIG=$ADMIN_KC"
  echo "export PATH=${BIN:-$("$here/build.sh")}:\$PATH"
  echo "# inside the namespaces: nsenter --net=/run/netns/ktb-cp kubectl --kubeconfig=$ADMIN_NS_KC ..."
}

# --- down ---------------------------------------------------------------------------
# With --cgroups-per-qos=false kubelet gives no cgroup parent and containerd
# puts every container in /k8s.io/<container id> of each hierarchy, for both
# nodes alike; ours are found by their ids.
collect_container_ids() {
  [[ -d $STATE ]] || return 0
  local n
  {
    [[ -f $STATE/container-ids ]] && cat "$STATE/container-ids"
    for n in "${NODES[@]}"; do
      pid_alive "containerd-$n" >/dev/null && ctr_n "$n" containers ls -q 2>/dev/null
      ls "$STATE/$n/containerd/state/io.containerd.runtime.v2.task/k8s.io" 2>/dev/null
    done
  } | grep -E '^[0-9a-f]{64}$' | sort -u >"$STATE/container-ids.tmp"
  mv "$STATE/container-ids.tmp" "$STATE/container-ids"
}
cgroup_dirs() { # our containers' cgroups in every hierarchy, and the nodes' cgroup2 roots, deepest first
  local h id n
  {
    if [[ -f $STATE/container-ids ]]; then
      for h in /sys/fs/cgroup/*/ "$CG2/"; do
        while IFS= read -r id; do
          [[ -d $h/k8s.io/$id ]] && find "$h/k8s.io/$id" -depth -type d
        done <"$STATE/container-ids"
      done
    fi
    for n in "${NODES[@]}"; do
      [[ -d $CG2/ktb-$n ]] && find "$CG2/ktb-$n" -depth -type d
    done
  } 2>/dev/null | awk '!seen[$0]++'
  return 0
}
kill_cgroup_procs() {
  local dir p any=0 i
  for i in 1 2 3 4 5; do
    any=0
    while IFS= read -r dir; do
      while IFS= read -r p; do
        [[ -n $p ]] || continue
        kill -KILL "$p" 2>/dev/null && any=1
      done <"$dir/cgroup.procs"
    done < <(cgroup_dirs)
    ((any)) || break
    sleep 0.5
  done
}
mounts_under() { # PREFIX: mount points below PREFIX, deepest first
  awk -v p="$1/" '{ m = $5; gsub(/\\040/, " ", m); if (index(m, p) == 1) print m }' /proc/self/mountinfo |
    awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}
unmount_under() {
  local m i
  for i in 1 2 3; do
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(mounts_under "$1")
    [[ -z $(mounts_under "$1") ]] && return 0
  done
  say "mounts left under $1:"
  mounts_under "$1" >&2
  return 1
}

down() {
  trap - EXIT
  set +e # best effort: every step runs; `ok` records what failed
  local n ns p t0 ok=1
  t0=$(date +%s.%N)
  BIN=${SKIFF_K8S_BIN:-$("$here/build.sh" 2>/dev/null || true)}
  # 1. Pods through the API while the kubelets run, so CNI DEL happens.
  if [[ -x $BIN/kubectl && -e /run/netns/ktb-cp && -f $ADMIN_NS_KC ]] &&
    pid_alive kube-apiserver >/dev/null && kc get --raw /readyz >/dev/null 2>&1; then
    # Controllers first, so nothing comes back; the skiff DaemonSet last, as
    # an operator would (DEL works without the agent, but this is the order
    # that is tested).
    kc delete deployments,replicasets,statefulsets,jobs --all --all-namespaces --wait=false >/dev/null 2>&1
    if [[ -n $(kc get pods -A -o name 2>/dev/null) ]]; then
      say "deleting pods"
      kc get pods -A -o 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' 2>/dev/null |
        grep -v '^kube-system/skiff-' | while IFS=/ read -r ns p; do
          kc -n "$ns" delete pod "$p" --grace-period=2 --wait=false >/dev/null 2>&1
        done
      kc wait --for=delete pods --all-namespaces -l 'app.kubernetes.io/name!=skiff' --timeout=60s >/dev/null 2>&1
      [[ -z $(kc get pods -A -l 'app.kubernetes.io/name!=skiff' -o name 2>/dev/null) ]] ||
        say "pods not all gone after 60 s; killing them"
      kc -n kube-system delete daemonset skiff --wait=false >/dev/null 2>&1
      say "pods deleted after $(elapsed "$t0") s"
    fi
  fi
  # 2. kubelets, then whatever containers are left, then containerd.
  stop_daemons "${NODES[@]/#/kubelet-}" "${NODES[@]/#/skiff-agent-}"
  collect_container_ids
  for n in "${NODES[@]}"; do
    if pid_alive "containerd-$n" >/dev/null; then
      local ids
      ids=$(ctr_n "$n" containers ls -q 2>/dev/null || true)
      if [[ -n $ids ]]; then
        for p in $ids; do ctr_n "$n" tasks kill -s SIGKILL "$p" >/dev/null 2>&1 || true; done
        sleep 1
        for p in $ids; do
          ctr_n "$n" tasks delete -f "$p" >/dev/null 2>&1 || true
          ctr_n "$n" containers delete "$p" >/dev/null 2>&1 || true
        done
      fi
    fi
  done
  kill_cgroup_procs
  stop_daemons "${NODES[@]/#/containerd-}"
  # 3. Control plane and the forwarder.
  stop_daemons api-forward kube-scheduler kube-controller-manager
  stop_daemon kube-apiserver
  stop_daemon etcd
  # 4. Anything still in our namespaces (containerd shims, ...) was started by us.
  for ns in "${NODES[@]/#/ktb-}" ktb-cp ktb-ul; do
    [[ -e /run/netns/$ns ]] || continue
    p=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $p ]]; then
      say "killing leftover processes in $ns: ${p//$'\n'/ }"
      # shellcheck disable=SC2086
      kill -KILL $p 2>/dev/null || true
      sleep 0.5
    fi
  done
  kill_cgroup_procs
  # 5. cgroups, mounts, namespaces, pins.
  local dir
  while IFS= read -r dir; do rmdir "$dir" 2>/dev/null || { say "cannot remove cgroup $dir"; ok=0; }; done < <(cgroup_dirs)
  if [[ -f $STATE/preexisting ]] && ! grep -qxF /sys/fs/cgroup/memory/k8s.io "$STATE/preexisting"; then
    # containerd made the /k8s.io parents; remove them once empty.
    rmdir /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/unified/k8s.io 2>/dev/null
  fi
  unmount_under "$STATE" || ok=0
  for ns in "${NODES[@]/#/ktb-}" ktb-cp ktb-ul; do
    [[ -e /run/netns/$ns ]] || continue
    ip netns delete "$ns" || { say "cannot delete netns $ns"; ok=0; }
  done
  # 6. Kernel settings (they were restored after each kubelet start already).
  restore_sysctls
  sysctls_restored || { say "could not restore kernel settings from $STATE/sysctl.saved"; ok=0; }
  # 7. What kubelet/containerd made outside $STATE, if it was not there before.
  if [[ -f $STATE/preexisting ]]; then
    if [[ -f $STATE/container-ids ]]; then
      while IFS= read -r p; do rm -f /var/lib/cni/results/skiff-"$p"-* 2>/dev/null || true; done <"$STATE/container-ids"
    fi
    for t in "${OUTSIDE[@]}"; do
      [[ $t == /sys/* ]] && continue
      grep -qxF "$t" "$STATE/preexisting" && continue
      [[ -e $t ]] || continue
      if [[ -n $(mounts_under "$t") ]]; then
        say "mounts under $t; leaving it"
        ok=0
        continue
      fi
      case $t in
        /var/log/pods | /var/log/containers | /var/lib/kubelet) rm -rf "$t" ;;
        /var/lib/cni) rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || say "$t not empty; leaving it" ;;
        /opt/cni | /etc/cni) ;; # after their subdirectory, below
        /run/containerd) rmdir /run/containerd/s /run/containerd 2>/dev/null || say "$t not empty; leaving it" ;;
        *) rmdir "$t" 2>/dev/null || say "$t not empty; leaving it" ;;
      esac
    done
  fi
  if [[ -f $STATE/preexisting ]]; then
    for t in /opt/cni /etc/cni; do
      [[ -e $t ]] && ! grep -qxF "$t" "$STATE/preexisting" && { rmdir "$t" 2>/dev/null || say "$t not empty; leaving it"; }
    done
  fi
  if ((ok)) && [[ -z $(mounts_under "$STATE") ]]; then
    rm -rf "$STATE"
    say "down in $(elapsed "$t0") s: nothing left"
  else
    say "down incomplete; $STATE kept (run down again)"
    return 1
  fi
}

status() {
  local p
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler api-forward \
    "${NODES[@]/#/containerd-}" "${NODES[@]/#/kubelet-}" "${NODES[@]/#/skiff-agent-}"; do
    if pid=$(pid_alive "$p"); then echo "$p: running (pid $pid)"; else echo "$p: not running"; fi
  done
  ip netns list | grep -E '^ktb-' || true
  if pid_alive kube-apiserver >/dev/null; then
    find_bins
    kc get nodes -o wide
    kc -n kube-system get daemonset,pods -l app.kubernetes.io/name=skiff -o wide 2>/dev/null || true
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  env) env_lines ;;
  status) status ;;
  on) # on NODE CMD...: run CMD on a node (its network, mounts and cgroup2 root)
    [[ -n ${2:-} && -e $STATE/mnt/${2:-} && -n ${3:-} ]] || { echo "usage: $0 on n1|n2 CMD..." >&2; exit 2; }
    n=$2
    shift 2
    in_node "$n" "$@"
    ;;
  apiserver) # apiserver stop|start: the API server alone, the rest keeps running
    find_bins
    case ${2:-} in
      stop) stop_daemon kube-apiserver ;;
      start)
        pid_alive kube-apiserver >/dev/null && die "kube-apiserver is running"
        start_apiserver
        ;;
      *) echo "usage: $0 apiserver stop|start" >&2; exit 2 ;;
    esac
    ;;
  *) echo "usage: $0 up|down|env|status|on NODE CMD...|apiserver stop|start" >&2; exit 2 ;;
esac
