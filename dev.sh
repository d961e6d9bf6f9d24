#!/usr/bin/env bash
# The project's two entry points; each does all set-up on a fresh machine.
#   ./dev.sh demo   install what is missing, build, run the demo
#   ./dev.sh test   install what is missing, build, run the whole test suite
#   ./dev.sh cluster up|down|status
#                   a two-node Kubernetes 1.20 on this machine, in network
#                   namespaces, with skiff deployed as its DaemonSet
#                   (scripts/k8s/cluster.sh; docs/kubernetes-testbed.md)
set -euo pipefail
cd "$(dirname "$0")"

build() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKIFF_TEST_HOOKS="${1:-OFF}" >/dev/null
  cmake --build build -j"$(nproc)"
}

case "${1:-}" in
  demo)
    bash scripts/setup.sh
    build OFF
    exec bash scripts/demo.sh
    ;;
  test)
    bash scripts/setup.sh
    build ON
    exec ctest --test-dir build --output-on-failure
    ;;
  cluster)
    case ${2:-} in
      up)
        bash scripts/setup.sh
        build
        exec bash scripts/k8s/cluster.sh up
        ;;
      down | status) exec bash scripts/k8s/cluster.sh "$2" ;;
      *) echo "usage: $0 cluster up|down|status" >&2; exit 2 ;;
    esac
    ;;
  *)
    echo "usage: $0 demo|test|cluster up|down|status" >&2
    exit 2
    ;;
esac
