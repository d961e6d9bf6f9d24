#!/usr/bin/env bash
# Builds the Kubernetes control-plane and node binaries the test bed runs
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl)
# from Debian bookworm's `kubernetes` source package, and caches them outside
# the repository, keyed by version:
#
#   ${SKIFF_K8S_CACHE:-/var/cache/skiff/k8s}/1.20.2/bin/<binary>
#
# Idempotent: when the cache is complete it prints the bin directory and exits
# at once. Otherwise it takes a per-version lock, fetches the source with a
# private apt configuration (the machine's own package lists are never
# touched), builds in a scratch directory under the cache root, checks every
# binary's version, and renames the finished directory into place, so a reader
# never sees half a cache.
#
# Usage: scripts/k8s/build.sh [--force] [--verify]
#   --force   rebuild even when the cache is complete
#   --verify  on a cache hit, also run each binary and check its version
# Prints the bin directory on stdout; progress and errors go to stderr.
# Env: SKIFF_K8S_CACHE (cache root), SKIFF_K8S_APT_SOURCE ("URI SUITE" of a
#      Debian archive carrying bookworm, instead of the one found in the
#      machine's apt sources).
# Run it niced on a shared machine: nice -n 19 scripts/k8s/build.sh
set -Eeuo pipefail

K8S_VERSION=1.20.2
SUITE=bookworm            # the Debian release whose source package we build
# Bump when the build itself changes (flags, patches): a cache made by another
# recipe is rebuilt.
RECIPE=1
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
PKGS=(golang-go rsync dpkg-dev make golang-github-modern-go-reflect2-dev debian-archive-keyring)
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

CACHE_ROOT=${SKIFF_K8S_CACHE:-/var/cache/skiff/k8s}
DEST=$CACHE_ROOT/$K8S_VERSION
STAMP=$DEST/BUILD-INFO
STAMP_HEAD="skiff-k8s-build version=$K8S_VERSION recipe=$RECIPE"

force=0 verify=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --verify) verify=1 ;;
    -h|--help) sed -n '2,/^set -E/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "k8s/build: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "k8s/build: $*" >&2; }

cache_complete() {
  [[ -f $STAMP ]] && [[ $(head -n1 "$STAMP") == "$STAMP_HEAD" ]] || return 1
  local b
  for b in "${BINS[@]}"; do [[ -x $DEST/bin/$b ]] || return 1; done
}

# Runs one binary and checks that it reports v$K8S_VERSION.
check_version() {
  local bin=$1 out
  case ${bin##*/} in
    kubectl) out=$("$bin" version --client --short 2>&1) || true ;;
    *) out=$("$bin" --version 2>&1) || true ;;
  esac
  if [[ $out != *"v$K8S_VERSION"* ]]; then
    say "version check failed for $bin: got '${out:-<nothing>}', want v$K8S_VERSION"
    return 1
  fi
  echo "${bin##*/}: $out"
}

verify_all() {
  local dir=$1 b
  for b in "${BINS[@]}"; do check_version "$dir/$b" >&2; done
}

# Fast path: nothing to do, no lock, no apt.
if ((!force)) && cache_complete; then
  ((verify)) && verify_all "$DEST/bin"
  echo "$DEST/bin"
  exit 0
fi

mkdir -p "$CACHE_ROOT/logs"
exec 9>"$CACHE_ROOT/.lock-$K8S_VERSION"
if ! flock -n 9; then
  say "another build of $K8S_VERSION is running; waiting for its lock"
  flock 9
fi
# The other holder may have finished the job while we waited.
if ((!force)) && cache_complete; then
  ((verify)) && verify_all "$DEST/bin"
  echo "$DEST/bin"
  exit 0
fi

LOG=$CACHE_ROOT/logs/build-$K8S_VERSION.log
: >"$LOG"
# Scratch dirs of killed runs of this version (we hold its lock, so none is live).
rm -rf "$CACHE_ROOT/.build-$K8S_VERSION".*
WORK=$(mktemp -d "$CACHE_ROOT/.build-$K8S_VERSION.XXXXXX")
STEP="starting"
cleanup() {
  local t=$SECONDS
  # Go marks its module and build cache files read-only; make them removable.
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
  echo "=== $(date -u +%FT%TZ) scratch directory removed in $((SECONDS - t)) s" >>"$LOG"
}
on_error() {
  local rc=$1 line=$2
  trap - ERR
  say "FAILED while $STEP (exit $rc, line $line of $0)"
  if [[ -s $LOG ]]; then
    say "last lines of $LOG:"
    tail -n 30 "$LOG" | sed 's/^/    /' >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'on_error $? $LINENO' ERR
trap 'say "interrupted"; exit 130' INT TERM

step() {
  STEP=$1
  say "$STEP"
  echo "=== $(date -u +%FT%TZ) $STEP" >>"$LOG"
}

t0=$SECONDS

# --- tools -------------------------------------------------------------------
step "checking build tools (installing what is missing)"
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The machine's own sources and lists: same as scripts/setup.sh.
  { apt-get -o DPkg::Lock::Timeout=900 update -qq && apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}"; } >>"$LOG" 2>&1
fi
[[ -f $REFLECT2_SRC/reflect2.go ]] || { STEP="looking for reflect2 in $REFLECT2_SRC"; false; }

# --- source ------------------------------------------------------------------
# A private apt configuration: its own deb-src list, package lists and cache,
# so the machine's /var/lib/apt/lists stays as it is.
step "finding a Debian archive for $SUITE in the machine's apt sources"
if [[ -n ${SKIFF_K8S_APT_SOURCE:-} ]]; then
  read -r mirror suite <<<"$SKIFF_K8S_APT_SOURCE"
else
  # apt's own view of the configured sources (one-line and deb822 alike):
  # the Debian archive (not the security one) whose codename is $SUITE.
  # shellcheck disable=SC2016  # $(FIELD) is apt's template syntax, not ours
  read -r mirror suite < <(apt-get indextargets --format '$(ORIGIN)|$(LABEL)|$(CODENAME)|$(REPO_URI)|$(RELEASE)' 2>>"$LOG" |
    awk -F'|' -v s="$SUITE" '$1 == "Debian" && $2 == "Debian" && $3 == s { print $4, $5; exit }') || true
fi
if [[ -z ${mirror:-} || -z ${suite:-} ]]; then
  say "no Debian '$SUITE' archive in the machine's apt sources; set SKIFF_K8S_APT_SOURCE='URI SUITE'"
  false
fi
echo "mirror=$mirror suite=$suite" >>"$LOG"

apt_dir=$WORK/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" "$WORK/src"
signed_by=
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] && signed_by=" [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
echo "deb-src$signed_by $mirror $suite main" >"$apt_dir/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/parts"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "APT::Sandbox::User=root"
)

step "fetching the kubernetes source package from $mirror $suite"
apt-get "${APT_OPTS[@]}" update >>"$LOG" 2>&1
(cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source --download-only kubernetes) >>"$LOG" 2>&1

step "unpacking the source (Debian patches applied)"
export GOPATH=$WORK/gopath
KROOT=$GOPATH/src/k8s.io/kubernetes
mkdir -p "${KROOT%/*}"
dsc=$(echo "$WORK"/src/kubernetes_*.dsc)
dpkg-source -x "$dsc" "$KROOT" >>"$LOG" 2>&1
deb_version=$(dpkg-parsechangelog -l "$KROOT/debian/changelog" -S Version)
upstream=${deb_version%-*}
upstream=${upstream##*really}
if [[ $upstream != "$K8S_VERSION" ]]; then
  say "the $suite source package is kubernetes $deb_version, not $K8S_VERSION"
  false
fi
# `git archive` filled in the commit of the release tag; version.sh keeps it.
git_commit=$(sed -n "s/^ *KUBE_GIT_COMMIT='\([0-9a-f]\{40\}\)'.*/\1/p" "$KROOT/hack/lib/version.sh")
grep -q "'tag: v$K8S_VERSION'" "$KROOT/hack/lib/version.sh"
[[ -n $git_commit ]]
build_date=$(date -u -d "@$(dpkg-parsechangelog -l "$KROOT/debian/changelog" -S Timestamp)" +%Y-%m-%dT%H:%M:%SZ)

step "replacing vendored reflect2 1.0.1 with Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
# reflect2 1.0.1 reads runtime internals that moved in Go 1.18: kube-apiserver
# built against it segfaults at start.
rm -rf "$KROOT/vendor/github.com/modern-go/reflect2"
cp -r "$REFLECT2_SRC" "$KROOT/vendor/github.com/modern-go/reflect2"
rm -f "$KROOT/vendor/github.com/modern-go/reflect2/go.mod"

# GOPATH mode, as the 1.20 build scripts expect; no cgo; nothing from the
# caller's Go environment.
export GO111MODULE=off CGO_ENABLED=0 GOFLAGS='' GOENV=off GOCACHE=$WORK/gocache HOME=$WORK/home
export PATH=/usr/lib/go/bin:$PATH
unset GOBIN GOROOT GOOS GOARCH
mkdir -p "$HOME"
echo "go: $(go version)" >>"$LOG"

step "generating OpenAPI definitions (make gen_openapi)"
make -C "$KROOT" gen_openapi >>"$LOG" 2>&1

step "compiling ${BINS[*]}"
ldflags="-s -w -buildid="
for pkg in client-go/pkg/version component-base/version; do
  p=k8s.io/kubernetes/vendor/k8s.io/$pkg
  ldflags+=" -X $p.gitVersion=v$K8S_VERSION"
  ldflags+=" -X $p.gitMajor=${K8S_VERSION%%.*} -X $p.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
  ldflags+=" -X $p.gitCommit=$git_commit -X $p.gitTreeState=archive"
  ldflags+=" -X $p.buildDate=$build_date"
done
echo "ldflags: $ldflags" >>"$LOG"
targets=()
for b in "${BINS[@]}"; do targets+=("./cmd/$b"); done
stage=$WORK/out/$K8S_VERSION
mkdir -p "$stage/bin"
(cd "$KROOT" && go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$stage/bin/" "${targets[@]}") >>"$LOG" 2>&1

step "checking the binaries' versions"
verify_all "$stage/bin" 2>>"$LOG"

step "installing into $DEST"
{
  echo "$STAMP_HEAD"
  echo "source: kubernetes $deb_version from $mirror $suite"
  echo "commit: $git_commit"
  echo "go: $(go version)"
  echo "reflect2: golang-github-modern-go-reflect2-dev $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
  echo "built: $(date -u +%FT%TZ) in $((SECONDS - t0)) s"
} >"$stage/BUILD-INFO"
cp "$LOG" "$stage/build.log"
chmod 0755 "$stage" "$stage/bin" "$stage"/bin/*
# Swap the finished directory in with renames on one filesystem: readers see
# the old (incomplete) cache or the new one, never a partly written binary.
if [[ -e $DEST ]]; then
  mv -T "$DEST" "$WORK/old"
fi
mv -T "$stage" "$DEST"

say "done in $((SECONDS - t0)) s: $DEST/bin (log: $LOG)"
echo "$DEST/bin"
