#!/usr/bin/env bash
# The tree's formatting and lint, checked by ctest "lint" (./dev.sh test):
#   C++ (userspace/, cni/, tools/, tests/, bench/): .clang-format at the top;
#   C (bpf/, maps/, the other .c files): bpf/.clang-format, kernel style;
#   Python: pyflakes (unused names and imports, undefined names).
# scripts/lint.sh --fix formats the files in place (Python is reported only).
# Pinned to clang-format 14 (Debian 12's): other versions break lines
# differently.
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
[[ ${1:-} == --fix ]] && fix=1
CF=${CLANG_FORMAT:-clang-format-14}
command -v "$CF" >/dev/null || { echo "lint: $CF not found (scripts/setup.sh installs it)" >&2; exit 77; }

mapfile -t kernel < <(git ls-files 'bpf/*.c' 'bpf/*.h' 'maps/*.h' '*.c')
mapfile -t cpp < <(git ls-files '*.cc' '*.h' ':!:bpf/*' ':!:maps/*')
mapfile -t py < <(git ls-files '*.py')

status=0
format() {  # style file, files...
    local style=$1
    shift
    if ((fix)); then
        "$CF" --style="file:$style" -i "$@"
    elif ! "$CF" --style="file:$style" --dry-run -Werror "$@" 2>/tmp/lint.$$; then
        head -40 /tmp/lint.$$ >&2
        echo "lint: $(grep -c 'error:' /tmp/lint.$$ || true) formatting differences; scripts/lint.sh --fix applies them" >&2
        status=1
    fi
    rm -f /tmp/lint.$$
}
format bpf/.clang-format "${kernel[@]}"
format .clang-format "${cpp[@]}"

if ! "${PYTHON3:-/usr/bin/python3}" -m pyflakes "${py[@]}"; then
    echo "lint: pyflakes found the problems above" >&2
    status=1
fi
exit $status
