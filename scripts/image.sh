#!/usr/bin/env bash
# Build skiff's container image offline from the binaries in build/bin.
#
# The image is FROM scratch and holds exactly:
#   /usr/local/bin/{skiff,skiff-agent,skiffctl}
#   every shared library those link (as ldd resolves them on this machine,
#   at the same paths) and the dynamic loader.
# Nothing else: no shell, no package manager, no /etc files (the container
# runtime adds /etc/hosts, /etc/resolv.conf and the mount points itself).
#
# Usage: scripts/image.sh [--tag TAG] [--bin-dir DIR] [--out FILE] [--no-strip]
#   --tag TAG     image tag; the image is localhost/skiff:TAG (default: dev)
#   --bin-dir DIR where the binaries are (default: build/bin of this repository)
#   --out FILE    docker archive to write (default: build/skiff-image.tar);
#                 `ctr -n k8s.io images import FILE` takes it
#   --rootfs DIR  only stage the image's files into DIR (a new directory)
#                 and stop: no podman, no archive (scripts/k8s/cluster.sh
#                 archives it itself)
#   --no-strip    keep the debug info (the copies are stripped of it by
#                 default, with `strip --strip-debug`: symbols stay, so
#                 backtraces still name functions; the files in build/bin
#                 are never touched)
#
# Needs podman (and runc or crun for the check at the end). No network:
# nothing is pulled (--pull=never) and the checks run with --network none.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$here/.." && pwd)
TAG=dev
BIN_DIR=$REPO/build/bin
OUT=$REPO/build/skiff-image.tar
STRIP=1
ROOTFS=""
BINARIES=(skiff skiff-agent skiffctl)

say() { echo "image: $*" >&2; }
die() { say "$*"; exit 1; }

while (($#)); do
  case $1 in
    --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
    --tag=*) TAG=${1#*=}; shift ;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a value}; shift 2 ;;
    --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
    --out) OUT=${2:?--out needs a value}; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --no-strip) STRIP=0; shift ;;
    --rootfs) ROOTFS=${2:?--rootfs needs a value}; shift 2 ;;
    --rootfs=*) ROOTFS=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ $TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag: $TAG"
IMAGE=localhost/skiff:$TAG

[[ -n $ROOTFS ]] || command -v podman >/dev/null || die "podman is not installed"
[[ -z $ROOTFS || ! -e $ROOTFS ]] || die "--rootfs $ROOTFS exists"
for b in "${BINARIES[@]}"; do
  [[ -x $BIN_DIR/$b ]] || die "no $BIN_DIR/$b: build first (cmake --build build)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/skiff-image.XXXXXX")
ctr_id=""
cleanup() {
  [[ -n $ctr_id ]] && podman rm -f "$ctr_id" >/dev/null 2>&1
  rm -rf "$tmp"
  rm -f "$OUT.tmp.$$"
}
trap cleanup EXIT
trap 'say "failed at line $LINENO"' ERR

root=${ROOTFS:-$tmp/ctx/rootfs}
mkdir -p "$root/usr/local/bin"

# 1. The binaries.
for b in "${BINARIES[@]}"; do
  cp -L "$BIN_DIR/$b" "$root/usr/local/bin/$b"
  if ((STRIP)); then strip --strip-debug "$root/usr/local/bin/$b"; fi
  chmod 0755 "$root/usr/local/bin/$b"
done

# 2. Their shared libraries and the loader, at the paths this machine's
#    loader resolves them to. Every library lands in one of the loader's
#    default directories (ldd reports the path it found), so the image needs
#    no ld.so.cache. A library that ldd cannot find is an error.
declare -A libs=()
for b in "${BINARIES[@]}"; do
  interp=$(readelf -l "$BIN_DIR/$b" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  [[ -n $interp ]] || die "$b is not dynamically linked? (no PT_INTERP)"
  libs[$interp]=1
  out=$(ldd "$BIN_DIR/$b") || die "ldd $b failed"
  if grep -q 'not found' <<<"$out"; then die "$b: unresolved libraries:"$'\n'"$(grep 'not found' <<<"$out")"; fi
  while read -r line; do
    case $line in
      *'=> /'*) p=${line#*=> }; p=${p%% (*} ;;   # libfoo.so.1 => /lib/.../libfoo.so.1 (0x…)
      /*) p=${line%% (*} ;;                      # /lib64/ld-linux-x86-64.so.2 (0x…)
      *) continue ;;                             # linux-vdso.so.1 (in the kernel)
    esac
    libs[$p]=1
  done <<<"$out"
done
for p in "${!libs[@]}"; do
  mkdir -p "$root$(dirname "$p")"
  cp -L "$p" "$root$p"   # dereferenced: the image has the file at the path asked for
done

if [[ -n $ROOTFS ]]; then
  say "staged in $ROOTFS: $(find "$ROOTFS" ! -type d | wc -l) files, $(du -sh "$ROOTFS" | cut -f1)"
  exit 0
fi

cat >"$tmp/ctx/Containerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
LABEL org.opencontainers.image.title="skiff" \
      org.opencontainers.image.description="skiff eBPF CNI: skiff (CNI plugin), skiff-agent (node agent), skiffctl"
CMD ["/usr/local/bin/skiff-agent", "--config", "/etc/skiff/agent.json"]
EOF

say "image contents:"
(cd "$root" && find . -mindepth 1 ! -type d | sed 's/^\.//' | sort | while read -r f; do
  printf '  %-52s %8s KiB\n' "$f" "$(( $(stat -c %s "$root$f") / 1024 ))"; done) >&2

# 3. Build (no RUN step, so no runtime and no network is involved), tag, save.
say "building $IMAGE"
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
podman build --pull=never --network=none --layers=false -q -t "$IMAGE" -f "$tmp/ctx/Containerfile" "$tmp/ctx" >/dev/null

# The image this tag named before is left without a name: remove it, unless
# another tag or a container still uses it (then rmi refuses and it stays).
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [[ -n $old_id && $old_id != "$new_id" ]] &&
   [[ $(podman image inspect --format '{{len .RepoTags}}' "$old_id" 2>/dev/null) == 0 ]]; then
  podman rmi "$old_id" >/dev/null 2>&1 || true
fi

# 4. Check the image runs: each binary starts, finds its libraries, answers.
#    --network none. The low explicit ulimits are there because podman's
#    defaults ask runc to raise RLIMIT_NOFILE/NPROC, which fails ("error
#    setting rlimit type 7: operation not permitted") where podman runs
#    without CAP_SYS_RESOURCE, as on this project's build machine.
run() { podman run --rm --network none --pull=never --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$@"; }
out=$(run "$IMAGE" /usr/local/bin/skiffctl --help 2>&1) || die "skiffctl --help failed in the image: $out"
grep -q '^Usage: skiffctl' <<<"$out" || die "skiffctl --help printed no usage: $out"
rc=0; out=$(run "$IMAGE" /usr/local/bin/skiff-agent 2>&1) || rc=$?
if [[ $rc -ne 2 ]] || ! grep -q 'usage: skiff-agent' <<<"$out"; then
  die "skiff-agent without arguments: exit $rc, output: $out"
fi
out=$(echo '{"cniVersion":"1.0.0"}' | run -i -e CNI_COMMAND=VERSION "$IMAGE" /usr/local/bin/skiff 2>&1) \
  || die "skiff VERSION failed in the image: $out"
grep -q '"supportedVersions"' <<<"$out" || die "skiff VERSION printed: $out"
if run "$IMAGE" /bin/sh -c true >/dev/null 2>&1; then die "the image has a /bin/sh"; fi
say "checked: skiffctl --help, skiff-agent usage, skiff VERSION run in the image; /bin/sh does not"

# 5. The file list of the image as built, against what was staged.
ctr_id=$(podman create --pull=never --network none "$IMAGE")
got=$(podman export "$ctr_id" | tar -t | sed 's|^\./||; s|^/||' | grep -v '/$' | sort)
podman rm -f "$ctr_id" >/dev/null; ctr_id=""
want=$(cd "$root" && find . -mindepth 1 ! -type d | sed 's|^\./||' | sort)
extra=$(comm -23 <(echo "$got") <(echo "$want"))
# podman create may leave empty runtime files behind (e.g. /run/.containerenv,
# /etc/hosts, /etc/resolv.conf placeholders); they are not in the image's layer.
extra=$(grep -vxE 'run/\.containerenv|etc/(hosts|resolv\.conf|hostname)' <<<"$extra" || true)
[[ -z $extra ]] || die "the image has files that were not staged:"$'\n'"$extra"
[[ -z $(comm -13 <(echo "$got") <(echo "$want")) ]] || die "staged files missing from the image"

mkdir -p "$(dirname "$OUT")"
podman save -q --format docker-archive -o "$OUT.tmp.$$" "$IMAGE" >/dev/null
mv -f "$OUT.tmp.$$" "$OUT"

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
say "built $IMAGE (${id:0:12}): $(numfmt --to=iec-i --suffix=B "$size") ($size bytes) unpacked;" \
  "archive $OUT $(numfmt --to=iec-i --suffix=B "$(stat -c %s "$OUT")")"
echo "$IMAGE"
