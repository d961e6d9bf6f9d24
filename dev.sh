#!/usr/bin/env bash
# The project's two entry points; each does all set-up on a fresh machine.
#   ./dev.sh demo   install what is missing, build, run the demo
#   ./dev.sh test   install what is missing, build, run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

build() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)"
}

case "${1:-}" in
  demo)
    bash scripts/setup.sh
    build
    exec bash scripts/demo.sh
    ;;
  test)
    bash scripts/setup.sh
    build
    exec ctest --test-dir build --output-on-failure
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
