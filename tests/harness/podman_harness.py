"""Run real podman containers on a CNI network inside a test "node" netns.

The harness is self-contained and leaves nothing behind: every podman
invocation uses a private containers.conf, private storage (vfs) and run
dirs, a private CNI config dir, file-based locks and a private cgroup parent,
all under a per-instance temp dir.  podman itself is executed under
``nsenter --net=/run/netns/<node_ns>`` so that the CNI plugins it runs (and
the host side of the container veths, routes, sysctls they create) live in the
test node namespace, never in the root network namespace.

Typical use::

    with PodmanNode("skiff-node-1234", conflist, ["/usr/lib/cni"], tmp_path) as node:
        node.run("a", "sleep", "3600")
        print(node.ip_of("a"))
        cp = node.exec("a", "ip", "addr")

API (all subprocess calls are bounded by timeouts):

``PodmanNode(node_ns, conflist, plugin_dirs, workdir, *, timeout=120)``
    ``node_ns``: name of an existing netns (``/run/netns/<node_ns>``) created
    by the caller.  ``conflist``: CNI conflist dict (must have ``name``); it is
    written to the private config dir.  For ``host-local`` IPAM a private
    ``dataDir`` is injected when absent so leases never land in
    /var/lib/cni.  ``plugin_dirs``: CNI plugin search path, in order.
    ``workdir``: parent dir for the per-instance temp dir.
``run(name, *cmd, detach=True, extra_args=()) -> str``
    ``podman run`` on the conflist network (adds --runtime runc, ulimits,
    cgroup parent).  Returns the container id.  With ``detach=False`` the
    container runs to completion first (see ``logs()``); a non-zero exit
    raises ``PodmanError``.
``exec(name, *cmd, check=False, timeout=None) -> CompletedProcess``
``ip_of(name) -> str``       IPv4 address on the CNI network (podman inspect).
``inspect(name) -> dict``
``logs(name) -> str``
``podman(*args, check=True, timeout=None) -> CompletedProcess``  raw access.
``ps_all() -> list[str]``    names of all containers in the private store.
``netns_paths() -> list[str]`` container netns bind mounts seen so far.
``rm_all()``                 force-remove all containers (CNI DEL runs).
``close()``                  rm_all + remove image store, temp dirs, netns
                             bind mounts, mounts and cgroup dirs.  Idempotent.
``leftovers() -> list[str]`` after close(): anything still left (should be []).

Quirks handled here (podman 4.3.1, Debian 12, no CAP_SYS_RESOURCE):
* podman refuses a runroot longer than 50 chars -> runroot/tmp_dir live in a
  short ``/tmp/skpm-*`` dir; storage, CNI config etc. under ``workdir``.
* default ulimits may be unsettable -> explicit nofile/nproc <= 4096 (runc
  failed with "error setting rlimit type 6" for nproc=65536 here).
* ``podman import`` writes /var/lib/containers/cache/blob-info-cache-v1.boltdb
  regardless of --root -> import runs in a private mount ns with a tmpfs over
  /var/lib.
* ``lock_type = "file"`` (locks under our tmp_dir) instead of the shared
  /dev/shm/libpod_lock segment, which a fresh store would reset on "refresh".
* cgroupfs would leave a shared ``libpod_parent`` cgroup -> per-instance
  ``--cgroup-parent`` which close() rmdirs.
* container netns bind mounts are /run/netns/netns-<uuid>; they are removed
  by podman on rm, and close() unmounts/unlinks any that remain.
* libcni/runc lazily create the shared (empty) dirs /var/lib/cni/results and
  /run/runc; leftovers() checks that no entry of ours remains in them.
* Debian's static busybox 1.35 ``wget -T`` segfaults; use ``timeout N wget``.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterable, Sequence

IMAGE = "localhost/skiff-test:latest"
BUSYBOX = "/bin/busybox"
NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
SHORT_TMP = "/tmp"
ULIMIT_CAP = 4096


class PodmanError(RuntimeError):
    pass


def _toml_str(s: str) -> str:
    return json.dumps(str(s))  # JSON string escaping is valid TOML basic string


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(i) for i in items) + "]"


def _mount_points() -> list[str]:
    """Mount points of the current mount namespace (mountinfo field 5)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 4:
                # octal escapes (\040 etc.) are kept as-is; our paths have none
                out.append(parts[4])
    return out


class PodmanNode:
    """Podman + CNI inside a caller-provided node network namespace."""

    def __init__(
        self,
        node_ns: str,
        conflist: dict,
        plugin_dirs: Sequence[str],
        workdir: os.PathLike | str,
        *,
        timeout: float = 120,
    ):
        self.node_ns = node_ns
        self.node_ns_path = NETNS_DIR / node_ns
        if not self.node_ns_path.exists():
            raise PodmanError(f"node netns {self.node_ns_path} does not exist")
        self.timeout = timeout
        self.conflist = json.loads(json.dumps(conflist))  # deep copy
        if not self.conflist.get("name") or not self.conflist.get("plugins"):
            raise ValueError("conflist needs 'name' and 'plugins'")
        self.plugin_dirs = [str(p) for p in plugin_dirs]
        self.uid = uuid.uuid4().hex[:10]
        Path(workdir).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"podman-{self.uid}-", dir=workdir))
        # podman refuses a runroot longer than 50 chars (unix socket paths live
        # below it and in tmp_dir), so those two get a short private dir.
        self.short_dir = Path(tempfile.mkdtemp(prefix=f"skpm-{self.uid}-", dir=SHORT_TMP))
        self.root = self.dir / "root"
        self.runroot = self.short_dir / "run"
        self.tmpdir = self.short_dir / "tmp"
        self.cni_dir = self.dir / "cni"
        self.ipam_dir = self.dir / "ipam"
        self.big_tmp = self.dir / "bigtmp"
        for d in (self.root, self.runroot, self.tmpdir, self.cni_dir,
                  self.ipam_dir, self.big_tmp):
            d.mkdir(mode=0o700)
        # Unique cgroupfs parent so no shared "libpod_parent" dir is left behind.
        self.cgroup_parent = f"/skiff-podman-{self.uid}"
        self._netns_seen: set[str] = set()
        self._cids: set[str] = set()
        self._closed = False

        self.network = self.conflist["name"]
        for plugin in self.conflist.get("plugins", []):
            ipam = plugin.get("ipam")
            if isinstance(ipam, dict) and ipam.get("type") == "host-local":
                ipam.setdefault("dataDir", str(self.ipam_dir))
        (self.cni_dir / f"{self.network}.conflist").write_text(
            json.dumps(self.conflist, indent=2))

        soft_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        soft_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        # Never raise limits (no CAP_SYS_RESOURCE); runc also failed here with
        # "error setting rlimit type 6" (NPROC) at 65536, so stay modest.
        self.nofile = min(soft_nofile, ULIMIT_CAP) if soft_nofile > 0 else 1024
        self.nproc = min(soft_nproc, ULIMIT_CAP) if soft_nproc > 0 else 1024

        self.conf_path = self.dir / "containers.conf"
        self.conf_path.write_text(self._containers_conf())
        self.storage_conf_path = self.dir / "storage.conf"
        self.storage_conf_path.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f"graphroot = {_toml_str(self.root)}\n"
            f"runroot = {_toml_str(self.runroot)}\n")

        self.env = {
            "PATH": os.environ.get(
                "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.dir),
            "CONTAINERS_CONF": str(self.conf_path),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf_path),
            "TMPDIR": str(self.big_tmp),
            "LANG": "C",
        }
        try:
            self._import_image()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _containers_conf(self) -> str:
        ulimits = [f"nofile={self.nofile}:{self.nofile}",
                   f"nproc={self.nproc}:{self.nproc}"]
        return f"""\
# generated by podman_harness.py -- private to one PodmanNode instance
[containers]
default_ulimits = {_toml_list(ulimits)}
default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
  "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
  "SYS_CHROOT"]
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
log_driver = "k8s-file"
netns = "bridge"

[network]
network_backend = "cni"
network_config_dir = {_toml_str(self.cni_dir)}
cni_plugin_dirs = {_toml_list(self.plugin_dirs)}
default_network = {_toml_str(self.network)}

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = {_toml_str(self.dir / "events.log")}
runtime = "runc"
lock_type = "file"
tmp_dir = {_toml_str(self.tmpdir)}
volume_path = {_toml_str(self.root / "volumes")}
static_dir = {_toml_str(self.root / "libpod")}
image_copy_tmp_dir = {_toml_str(self.big_tmp)}
no_pivot_root = false
"""

    def _import_image(self) -> None:
        rootfs_tar = self.dir / "rootfs.tar"
        applets = subprocess.run(
            [BUSYBOX, "--list"], capture_output=True, text=True, check=True,
            timeout=30).stdout.split()
        with tarfile.open(rootfs_tar, "w") as tar:
            def add_dir(name, mode=0o755):
                ti = tarfile.TarInfo(name)
                ti.type = tarfile.DIRTYPE
                ti.mode = mode
                tar.addfile(ti)
            for d in ("bin", "etc", "tmp", "www", "proc", "sys", "dev", "run",
                      "root", "var", "sbin", "usr", "usr/bin"):
                add_dir(d, 0o1777 if d == "tmp" else 0o755)
            tar.add(BUSYBOX, arcname="bin/busybox")
            for a in applets:
                if a in ("busybox", "[[") or "/" in a:
                    continue
                ti = tarfile.TarInfo(f"bin/{a}")
                ti.type = tarfile.SYMTYPE
                ti.linkname = "busybox"
                tar.addfile(ti)
            for name, data in (
                    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                    ("etc/group", "root:x:0:\n"),
                    ("www/index.html", "skiff-test image\n")):
                raw = data.encode()
                ti = tarfile.TarInfo(name)
                ti.size = len(raw)
                ti.mode = 0o644
                tar.addfile(ti, io.BytesIO(raw))
        # c/image writes a shared blob-info cache to /var/lib/containers/cache
        # on import (podman 4.3 ignores the store for it).  Run the import in a
        # throw-away private mount namespace with a tmpfs over /var/lib so that
        # nothing lands on the host.  vfs storage needs no mounts, so the
        # imported image is fully usable afterwards from the host namespace.
        self.podman("import", "--change", "CMD=/bin/sh", str(rootfs_tar), IMAGE,
                    timeout=max(self.timeout, 120), private_varlib=True)
        rootfs_tar.unlink()

    # -------------------------------------------------------------- plumbing
    def _cmd(self, *args: str, private_varlib: bool = False) -> list[str]:
        wrap = []
        if private_varlib:
            wrap = ["unshare", "--mount", "--propagation", "private", "--",
                    "sh", "-c",
                    'mount -t tmpfs -o mode=0755,size=64m skiff-varlib /var/lib'
                    ' && exec "$@"', "sh"]
        return [
            "nsenter", f"--net={self.node_ns_path}", "--", *wrap,
            "podman",
            "--root", str(self.root),
            "--runroot", str(self.runroot),
            "--storage-driver", "vfs",
            "--tmpdir", str(self.tmpdir),
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            "--network-config-dir", str(self.cni_dir),
            *args,
        ]

    def podman(self, *args: str, check: bool = True, timeout: float | None = None,
               private_varlib: bool = False) -> subprocess.CompletedProcess:
        """Run a podman command in the node netns against the private store."""
        cmd = self._cmd(*map(str, args), private_varlib=private_varlib)
        try:
            cp = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                                timeout=timeout or self.timeout,
                                stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise PodmanError(f"timeout after {e.timeout}s: podman {' '.join(args)}\n"
                              f"stdout: {e.stdout}\nstderr: {e.stderr}") from None
        if check and cp.returncode != 0:
            raise PodmanError(
                f"podman {' '.join(map(str, args))} -> rc={cp.returncode}\n"
                f"stdout: {cp.stdout}\nstderr: {cp.stderr}")
        return cp

    # ------------------------------------------------------------------- API
    def run(self, name: str, *cmd: str, detach: bool = True,
            extra_args: Sequence[str] = (), timeout: float | None = None) -> str:
        cidfile = self.dir / f"cid-{name}"
        cidfile.unlink(missing_ok=True)  # podman refuses an existing cidfile
        args = ["run", "--name", name, "--cidfile", str(cidfile),
                "--network", self.network, "--runtime", "runc",
                "--cgroup-parent", self.cgroup_parent,
                "--ulimit", f"nofile={self.nofile}:{self.nofile}",
                "--ulimit", f"nproc={self.nproc}:{self.nproc}",
                "--pull", "never"]
        if detach:
            args.append("-d")
        args += [*extra_args, IMAGE, *cmd]
        cp = self.podman(*args, check=False, timeout=timeout)
        cid = cidfile.read_text().strip() if cidfile.exists() else cp.stdout.strip()
        if cid:
            self._cids.add(cid)
            self._record_netns(name)
        if cp.returncode != 0:
            raise PodmanError(f"podman run {name} -> rc={cp.returncode}\n"
                              f"stdout: {cp.stdout}\nstderr: {cp.stderr}")
        return cid

    def exec(self, name: str, *cmd: str, check: bool = False,
             timeout: float | None = None) -> subprocess.CompletedProcess:
        return self.podman("exec", name, *cmd, check=check, timeout=timeout)

    def inspect(self, name: str) -> dict:
        return json.loads(self.podman("container", "inspect", name).stdout)[0]

    def ip_of(self, name: str) -> str:
        nets = self.inspect(name)["NetworkSettings"].get("Networks") or {}
        net = nets.get(self.network) or {}
        ip = net.get("IPAddress") or self.inspect(name)["NetworkSettings"].get("IPAddress")
        if not ip:
            raise PodmanError(f"no IP for {name} on {self.network}: {nets}")
        return ip

    def logs(self, name: str) -> str:
        cp = self.podman("logs", name)
        return cp.stdout + cp.stderr

    def ps_all(self) -> list[str]:
        cp = self.podman("ps", "-a", "--format", "{{.Names}}")
        return [line for line in cp.stdout.split() if line]

    def netns_paths(self) -> list[str]:
        return sorted(self._netns_seen)

    def _record_netns(self, name: str) -> None:
        try:
            key = self.inspect(name)["NetworkSettings"].get("SandboxKey")
        except Exception:
            return
        if key:
            self._netns_seen.add(key)

    def rm_all(self) -> None:
        """Force-remove every container; CNI DEL runs in the node netns."""
        for _ in range(3):
            self.podman("rm", "--all", "--force", "--time", "0", check=False)
            try:
                if not self.ps_all():
                    break
            except PodmanError:
                pass
            time.sleep(1)
        self._remove_netns_mounts()

    # --------------------------------------------------------------- cleanup
    def _remove_netns_mounts(self) -> None:
        """Remove container netns bind mounts podman may have left behind."""
        for path in list(self._netns_seen):
            p = Path(path)
            if p.parent != NETNS_DIR or not p.name.startswith("netns-"):
                continue  # only ever touch podman-created netns files
            if path in _mount_points():
                subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def _umount_under_dir(self) -> None:
        prefixes = (str(self.dir) + "/", str(self.short_dir) + "/")
        mps = [m for m in _mount_points() if m.startswith(prefixes)]
        for m in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)

    def _cgroup_dirs(self) -> list[Path]:
        out = []
        rel = self.cgroup_parent.lstrip("/")
        if CGROUP_ROOT.is_dir():
            for ctrl in CGROUP_ROOT.iterdir():
                p = ctrl / rel
                if p.is_dir():
                    out.append(p)
            p = CGROUP_ROOT / rel  # unified-only hierarchy
            if p.is_dir():
                out.append(p)
        return out

    def _remove_cgroups(self) -> None:
        for p in self._cgroup_dirs():
            # children first (should already be gone after rm)
            for child in sorted((c for c in p.rglob("*") if c.is_dir()),
                                key=lambda c: len(str(c)), reverse=True):
                try:
                    child.rmdir()
                except OSError:
                    pass
            try:
                p.rmdir()
            except OSError:
                pass

    def _force_kill_leftovers(self) -> None:
        """Last resort if podman could not remove everything (e.g. node netns
        already gone): delete our runc containers and kill our conmons."""
        for cid in self._cids:
            if os.path.exists(f"/run/runc/{cid}"):
                subprocess.run(["runc", "delete", "--force", cid],
                               capture_output=True, timeout=30)
        for pid, _ in self._processes():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        if self._processes():
            time.sleep(0.5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors = []
        try:
            if self.node_ns_path.exists():
                self.rm_all()
                self.podman("rmi", "--all", "--force", check=False)
        except Exception as e:  # keep cleaning up
            errors.append(e)
        self._force_kill_leftovers()
        self._remove_netns_mounts()
        self._umount_under_dir()
        self._remove_cgroups()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.short_dir, ignore_errors=True)
        if errors:
            raise errors[0]

    def leftovers(self) -> list[str]:
        """Describe anything this instance left behind (empty list == clean)."""
        left = []
        for path in self._netns_seen:
            if os.path.lexists(path):
                left.append(f"netns file {path}")
            if path in _mount_points():
                left.append(f"netns mount {path}")
        prefixes = (str(self.dir), str(self.short_dir))
        left += [f"mount {m}" for m in _mount_points() if m.startswith(prefixes)]
        left += [f"dir {d}" for d in (self.dir, self.short_dir) if d.exists()]
        left += [f"cgroup {p}" for p in self._cgroup_dirs()]
        # Shared dirs podman/libcni/runc use outside our private dirs: the
        # dirs themselves are shared infrastructure, but no per-run entry may
        # remain in them.
        results = Path("/var/lib/cni/results")
        if results.is_dir():
            left += [f"cni cache {p}" for p in results.iterdir()
                     if p.name.startswith(self.network + "-")
                     or any(c in p.name for c in self._cids)]
        left += [f"runc state /run/runc/{c}" for c in self._cids
                 if os.path.exists(f"/run/runc/{c}")]
        if os.path.exists(f"/var/lib/cni/networks/{self.network}"):
            left.append(f"host-local leases /var/lib/cni/networks/{self.network}")
        left += [f"process {pid}: {cmd}" for pid, cmd in self._processes()]
        return left

    def _processes(self) -> list[tuple[int, str]]:
        """Processes (conmon, container init, podman) referring to our dir."""
        out = []
        needles = (str(self.dir).encode(), str(self.short_dir).encode())
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if any(n in cmd for n in needles):
                out.append((int(d.name), cmd.replace(b"\0", b" ").decode(errors="replace")))
        return out

    def __enter__(self) -> "PodmanNode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
