#!/usr/bin/env bash
# One setup script for every entry point (demo, tests, CI, bench): installs the
# Debian packages skiff needs to build, test and benchmark. Idempotent and quiet
# when everything is already present.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang llvm libclang-rt-dev clang-format-14 pyflakes3
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  libnl-3-dev libnl-route-3-dev nlohmann-json3-dev libgtest-dev
  iproute2 iptables iputils-ping kmod procps util-linux
  containernetworking-plugins podman runc busybox-static
  etcd-server etcd-client
  iperf3 sockperf qperf wrk nginx-light gnuplot-nox
  python3 python3-pytest jq curl
  libcurl4-openssl-dev libyaml-cpp-dev libssl-dev libcpp-httplib-dev
  containerd catatonit openssl file
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  if ! { apt-get -o DPkg::Lock::Timeout=900 update -qq && apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  rm -f "$log"
fi

# bpffs is where skiff pins its maps; mount it if the machine has none.
if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi
