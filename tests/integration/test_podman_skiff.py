"""Two podman containers on a *skiff* CNI network reach each other via BPF.

Inside a private "node" netns (lo + a veth "uplink" so the node has an
address), podman runs two busybox containers on a skiff network
(podCIDR 10.244.1.0/24): "srv" serves a random token with busybox httpd,
"cli" fetches it with wget and pings srv.  The skiff_metrics per-CPU counter
for {SKIFF_FWD_LOCAL_POD, egress} must grow across that traffic, which proves
the packets were redirected by skiff's BPF program rather than routed by some
bridge.  After `podman rm` the node ns, the pinned endpoints map and skiff's
state dir must be clean, and after close() the harness must report no
leftovers.  Everything (containers, netns, pin dir, state) is removed by the
fixture finalizer, also on failure.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cluster_topo import wait_for
from podman_harness import PodmanNode

REF_CNI_DIR = "/usr/lib/cni"
SKIFF_BIN_DIR = os.environ.get(
    "SKIFF_BIN_DIR", str(Path(__file__).resolve().parents[2] / "build" / "bin"))
SKIFF_BIN = Path(SKIFF_BIN_DIR) / "skiff"
POD_CIDR = "10.244.1.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
POD_GW = "169.254.1.1"
BPFFS = Path("/sys/fs/bpf")
UPLINK_ADDR = "192.168.1.11/24"

# maps/skiff_maps.h
SKIFF_FWD_LOCAL_POD = 1
SKIFF_DIR_EGRESS = 0
SKIFF_DIR_MAX = 2
FWD_LOCAL_EGRESS_IDX = SKIFF_FWD_LOCAL_POD * SKIFF_DIR_MAX + SKIFF_DIR_EGRESS

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed"),
    pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed"),
    pytest.mark.skipif(not SKIFF_BIN.is_file(),
                       reason=f"skiff plugin not built ({SKIFF_BIN})"),
]


def _run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    cp = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> rc={cp.returncode}\n"
                             f"stdout: {cp.stdout}\nstderr: {cp.stderr}")
    return cp


def _netns_list() -> str:
    return _run("ip", "netns", "list").stdout


def _ip_json(ns: str, *args: str) -> list:
    out = _run("ip", "-n", ns, "-j", *args).stdout.strip()
    return json.loads(out) if out else []


def _bpftool_dump(pin: Path) -> list:
    out = _run("bpftool", "-j", "map", "dump", "pinned", str(pin)).stdout.strip()
    return json.loads(out) if out else []


def _le_u64(raw: list, off: int) -> int:
    return int.from_bytes(bytes(int(b, 16) for b in raw[off:off + 8]), "little")


def _entry_key(entry: dict) -> int | None:
    if "formatted" in entry and "key" in entry["formatted"]:
        return int(entry["formatted"]["key"])
    key = entry.get("key")
    if isinstance(key, int):
        return key
    if isinstance(key, list):  # raw bytes, little endian u32
        return int.from_bytes(bytes(int(b, 16) for b in key), "little")
    return None


def _per_cpu_packets(entry: dict) -> int:
    values = (entry.get("formatted") or {}).get("values") or entry.get("values") or []
    total = 0
    for v in values:
        val = v.get("value")
        if isinstance(val, dict):
            total += int(val["packets"])
        elif isinstance(val, list):  # raw bytes of struct skiff_metrics_value
            total += _le_u64(val, 0)
        else:
            raise AssertionError(f"unexpected per-cpu value format: {v}")
    return total


def metric_packets(pin_dir: Path, index: int) -> int:
    """Sum over CPUs of skiff_metrics[index].packets."""
    for entry in _bpftool_dump(pin_dir / "skiff_metrics"):
        if _entry_key(entry) == index:
            return _per_cpu_packets(entry)
    raise AssertionError(f"no key {index} in {pin_dir}/skiff_metrics")


def skiff_conflist(name: str, pin_dir: Path, state_dir: Path, log_file: Path) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "skiff",
            "podCIDR": POD_CIDR,
            "clusterCIDR": CLUSTER_CIDR,
            "pinPath": str(pin_dir),
            "stateDir": str(state_dir),
            "logFile": str(log_file),
        }],
    }


class SkiffEnv:
    """Names and paths of one test run (node ns, pin dir, state, log)."""

    def __init__(self, tmp_path: Path):
        uid = uuid.uuid4().hex[:8]
        self.node_ns = f"skiff-pm-{uid}"
        self.network = f"skiffpm{uid}"
        self.pin_dir = BPFFS / f"skiff-podman-{uid}"
        self.skiff_dir = tmp_path / "skiff"
        self.state_dir = self.skiff_dir / "state"
        self.log_file = self.skiff_dir / "skiff.log"
        self.podman_dir = tmp_path / "podman"
        self.node: PodmanNode | None = None

    @property
    def net_state(self) -> Path:
        return self.state_dir / "networks" / self.network

    def log(self) -> str:
        try:
            return self.log_file.read_text()
        except OSError as e:
            return f"<no skiff log: {e}>"

    def leases(self) -> list[str]:
        ipam = self.net_state / "ipam"
        if not ipam.is_dir():
            return []
        out = []
        for p in ipam.iterdir():
            try:
                ipaddress.IPv4Address(p.name)
            except ValueError:
                continue
            out.append(p.name)
        return sorted(out)

    def attachments(self) -> list[str]:
        d = self.net_state / "attachments"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def skf_links(self) -> list[str]:
        return [l["ifname"] for l in _ip_json(self.node_ns, "link", "show")
                if l.get("ifname", "").startswith("skf")]


@pytest.fixture
def skiff_env(tmp_path):
    env = SkiffEnv(tmp_path)
    ns = env.node_ns
    _run("ip", "netns", "add", ns)
    try:
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        # No dummy module on this kernel: a veth pair inside the node ns is
        # the "uplink" that gives host-originated traffic a source address.
        _run("ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
        _run("ip", "-n", ns, "addr", "add", UPLINK_ADDR, "dev", "up0")
        _run("ip", "-n", ns, "link", "set", "up0", "up")
        _run("ip", "-n", ns, "link", "set", "up0p", "up")
        env.state_dir.mkdir(parents=True)
        yield env
    finally:
        errors = []
        if env.node is not None:
            try:
                env.node.close()
            except Exception as e:  # keep cleaning up
                errors.append(e)
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)
        # bpffs allows unlinking pins and rmdir of the pin dir.
        subprocess.run(["rm", "-rf", str(env.pin_dir)], capture_output=True, timeout=30)
        shutil.rmtree(env.skiff_dir, ignore_errors=True)
        assert ns not in _netns_list()
        assert not env.pin_dir.exists(), f"pin dir {env.pin_dir} left behind"
        assert not env.skiff_dir.exists()
        if errors:
            raise errors[0]


def _wget(node: PodmanNode, url: str, deadline_s: float = 20) -> str | None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        # NB: Debian's static busybox 1.35 wget segfaults with -T; use timeout.
        cp = node.exec("cli", "timeout", "5", "wget", "-q", "-O", "-", url, timeout=30)
        if cp.returncode == 0:
            return cp.stdout
        time.sleep(0.5)
    return None


def test_skiff_podman_http_and_ping(skiff_env):
    env = skiff_env
    token = f"hello-from-skiff-{uuid.uuid4().hex}"
    conflist = skiff_conflist(env.network, env.pin_dir, env.state_dir, env.log_file)
    node = PodmanNode(env.node_ns, conflist, [SKIFF_BIN_DIR, REF_CNI_DIR], env.podman_dir)
    env.node = node

    def ctx() -> str:
        return f"\n--- skiff log ({env.log_file}) ---\n{env.log()}"

    try:
        node.run("srv", "sh", "-c",
                 f"mkdir -p /www && echo {token} > /www/index.html && "
                 "exec httpd -f -p 8080 -h /www")
        node.run("cli", "sleep", "3600")
    except Exception as e:
        raise AssertionError(f"podman run failed: {e}{ctx()}") from None

    # -- addressing: /32 from the podCIDR, default route via 169.254.1.1
    pod_net = ipaddress.ip_network(POD_CIDR)
    ips = {}
    for name in ("srv", "cli"):
        net = node.inspect(name)["NetworkSettings"]["Networks"][env.network]
        ip = net["IPAddress"]
        assert ipaddress.ip_address(ip) in pod_net, (name, net)
        assert net["IPPrefixLen"] == 32, (name, net)
        ips[name] = ip
        addr = node.exec(name, "ip", "-o", "-4", "addr", "show", "dev", "eth0", check=True)
        assert f"inet {ip}/32" in addr.stdout, addr.stdout
        route = node.exec(name, "ip", "-4", "route", "show", "default", check=True)
        assert re.search(rf"default via {re.escape(POD_GW)} dev eth0", route.stdout), route.stdout
    srv_ip, cli_ip = ips["srv"], ips["cli"]
    assert srv_ip != cli_ip

    # -- two skiff host veths in the node ns, no bridge anywhere
    assert len(env.skf_links()) == 2, env.skf_links()
    assert _ip_json(env.node_ns, "link", "show", "type", "bridge") == []
    assert len(_bpftool_dump(env.pin_dir / "skiff_endpoints")) == 2
    assert len(env.leases()) == 2, env.leases()
    assert len(env.attachments()) == 2, env.attachments()

    # -- traffic through the BPF datapath
    before = metric_packets(env.pin_dir, FWD_LOCAL_EGRESS_IDX)
    body = _wget(node, f"http://{srv_ip}:8080/index.html")
    assert body is not None, "wget never succeeded: " + node.logs("srv") + ctx()
    assert body.strip() == token
    after_wget = metric_packets(env.pin_dir, FWD_LOCAL_EGRESS_IDX)
    assert after_wget > before, (before, after_wget)

    ping = node.exec("cli", "ping", "-c", "3", "-W", "2", srv_ip, timeout=30)
    assert ping.returncode == 0, ping.stdout + ping.stderr + ctx()
    assert "3 packets received" in ping.stdout, ping.stdout
    after_ping = metric_packets(env.pin_dir, FWD_LOCAL_EGRESS_IDX)
    # 3 echo requests cli->srv + 3 replies srv->cli, all pod-to-pod redirects
    assert after_ping >= after_wget + 6, (after_wget, after_ping)

    assert _ip_json(env.node_ns, "link", "show", "type", "bridge") == []
    assert sorted(node.ps_all()) == ["cli", "srv"]

    # -- CNI DEL cleans everything up
    netns_files = node.netns_paths()
    assert len(netns_files) == 2, netns_files
    node.rm_all()
    assert node.ps_all() == []
    # DEL returns with the host veths down; a detached process deletes them.
    wait_for(lambda: env.skf_links() == [], "host veths deleted")
    routes = _run("ip", "-n", env.node_ns, "route").stdout
    assert srv_ip not in routes and cli_ip not in routes, routes
    assert _bpftool_dump(env.pin_dir / "skiff_endpoints") == []
    assert env.leases() == [], env.leases()
    assert env.attachments() == [], env.attachments()

    node.close()
    assert node.leftovers() == []
    listing = _netns_list()
    for path in netns_files:
        assert Path(path).name not in listing
    assert not Path("/var/lib/cni/networks", env.network).exists()
