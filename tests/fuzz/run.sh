#!/usr/bin/env bash
# Builds the libFuzzer target (tests/fuzz/CMakeLists.txt, clang++) and runs it
# over a copy of the checked-in seed corpus, so corpus/ never grows.
#
#   tests/fuzz/run.sh [--build-dir DIR] [--runs N] [--max-time SECONDS]
#                     [-- extra libFuzzer flags, which override ours]
#
# Defaults: build/fuzz, 20000 runs, at most 300 s. Exit status: 0 clean,
# non-zero on a crash, sanitizer report or build failure (reproducers land in
# DIR/artifacts/), 77 when no clang++ is installed (ctest: skipped).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=$here/../../build/fuzz
runs=20000
max_time=300  # a cap for slow or loaded machines; -runs normally ends it first
while (($#)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --max-time) max_time=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cxx=${SKIFF_FUZZ_CXX:-}
if [[ -z $cxx ]]; then
  for c in clang++ clang++-14; do
    if command -v "$c" >/dev/null; then cxx=$(command -v "$c"); break; fi
  done
fi
if [[ -z $cxx ]]; then
  echo "run.sh: no clang++ found (scripts/setup.sh installs it); skipping" >&2
  exit 77
fi

# Configure once; later runs only rebuild what changed.
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  cmake -S "$here" -B "$build_dir" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
cmake --build "$build_dir" -j"$(nproc)" >/dev/null

corpus=$(mktemp -d "${TMPDIR:-/tmp}/skiff-fuzz-corpus.XXXXXX")
trap 'rm -rf "$corpus"' EXIT
cp -r "$here/corpus/." "$corpus/"
mkdir -p "$build_dir/artifacts"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$build_dir/cni_fuzz" \
  -runs="$runs" -max_total_time="$max_time" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -dict="$here/cni.dict" -artifact_prefix="$build_dir/artifacts/" -print_final_stats=1 \
  "$@" "$corpus"
