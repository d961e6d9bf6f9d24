"""Network-namespace topologies for skiff integration tests.

Everything a test creates (namespaces, bpffs pin dirs, state dirs) carries a
unique name and is removed by close(), which fixtures call on failure too.
Commands run inside a namespace with `nsenter --net` (not `ip netns exec`,
which remounts /sys and hides /sys/fs/bpf).
"""
import functools
import ipaddress
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.environ.get("SKIFF_BIN_DIR", os.path.join(REPO, "build", "bin"))
SKIFF = os.path.join(BIN_DIR, "skiff")
SKIFFCTL = os.path.join(BIN_DIR, "skiffctl")
CNI_PATH = f"{BIN_DIR}:/usr/lib/cni"

_counter = itertools.count()


def unique(prefix):
    """A short unique name (fits IFNAMSIZ-limited contexts when prefix is short)."""
    return f"{prefix}{os.getpid() % 100000}x{next(_counter)}{uuid.uuid4().hex[:4]}"


def sh(*cmd, check=True, timeout=60, input=None, env=None):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()} {r.stdout.strip()}")
    return r


def in_ns(ns, *cmd, **kw):
    return sh("nsenter", f"--net=/run/netns/{ns}", "--", *cmd, **kw)


FAULT_INJECT = "SKIFF_FAULT_INJECT"


@functools.lru_cache(maxsize=None)
def _has_test_hooks(binary):
    """Whether binary was built with -DSKIFF_TEST_HOOKS=ON: only then does it hold the variable's name."""
    with open(binary, "rb") as f:
        return FAULT_INJECT.encode() in f.read()


def fault_env(spec):
    """The environment that makes the plugin inject a fault: spec is <point>
    (fail the ADD there), kill:<point> or hold:<point>:<file>. Fails the
    calling test, saying why, when the plugin was built without the hooks
    (it would ignore the variable, and the test would test nothing)."""
    if not _has_test_hooks(SKIFF):
        pytest.fail(f"{SKIFF} was built without the test hooks, so it ignores {FAULT_INJECT}: "
                    "configure with -DSKIFF_TEST_HOOKS=ON (./dev.sh test does)", pytrace=False)
    return {FAULT_INJECT: spec}


class Node:
    """A node network namespace with an uplink veth, a pin dir and a state dir."""

    def __init__(self, topo, name, ip, pod_cidr, cluster_cidr="10.244.0.0/16", cni_version="1.0.0",
                 underlay=None, bridge="br0"):
        self.topo = topo
        self.ns = name
        self.ip = ip
        self.pod_cidr = pod_cidr
        self.cluster_cidr = cluster_cidr
        self.cni_version = cni_version
        self.pin = f"/sys/fs/bpf/{name}"
        self.state = os.path.join(topo.tmp, name, "state")
        self.log = os.path.join(topo.tmp, name, "skiff.log")
        self.network = "skiffnet"
        os.makedirs(os.path.dirname(self.state), exist_ok=True)
        sh("ip", "netns", "add", name)
        topo.namespaces.append(name)
        topo.pins.append(self.pin)
        in_ns(name, "ip", "link", "set", "lo", "up")
        if underlay:
            # The uplink's peer is a port of the underlay's bridge (one L2 segment).
            port = unique("p")[:15]
            self.port = port
            in_ns(name, "ip", "link", "add", "up0", "type", "veth", "peer", "name", port, "netns", underlay)
            in_ns(underlay, "ip", "link", "set", port, "master", bridge, "up")
        else:
            # No dummy module on this kernel: an uplink veth whose peer stays here.
            in_ns(name, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
            in_ns(name, "ip", "link", "set", "up0p", "up")
        in_ns(name, "ip", "addr", "add", f"{ip}/24", "dev", "up0")
        in_ns(name, "ip", "link", "set", "up0", "up")

    def conf(self, **overrides):
        c = {
            "cniVersion": self.cni_version,
            "name": self.network,
            "type": "skiff",
            "podCIDR": self.pod_cidr,
            "clusterCIDR": self.cluster_cidr,
            "pinPath": self.pin,
            "stateDir": self.state,
            "logFile": self.log,
        }
        c.update(overrides)
        return {k: v for k, v in c.items() if v is not None}

    def cni(self, command, container_id=None, netns=None, ifname="eth0", conf=None, env=None, raw_stdin=None,
            timeout=60):
        """Run the plugin the way libcni does: env vars, config on stdin, in the node netns.
        Returns (exit code, parsed stdout or None, stderr)."""
        e = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
             "CNI_PATH": CNI_PATH}
        if container_id is not None:
            e["CNI_CONTAINERID"] = container_id
        if netns is not None:
            e["CNI_NETNS"] = netns
        if ifname is not None:
            e["CNI_IFNAME"] = ifname
        e.update(env or {})
        stdin = raw_stdin if raw_stdin is not None else json.dumps(conf if conf is not None else self.conf())
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.ns}", "--", SKIFF], input=stdin,
                           capture_output=True, text=True, env=e, timeout=timeout)
        out = json.loads(r.stdout) if r.stdout.strip() else None
        return r.returncode, out, r.stderr

    def add_pod(self, name=None, ifname="eth0", **kw):
        pod = self.topo.pod_ns(name)
        rc, out, err = self.cni("ADD", container_id=f"c-{pod}", netns=f"/run/netns/{pod}", ifname=ifname, **kw)
        assert rc == 0, f"ADD failed: {out} {err}"
        ip = out["ips"][0]["address"].split("/")[0]
        return Pod(self, pod, f"c-{pod}", ip, out)

    def del_pod(self, pod, **kw):
        rc, out, err = self.cni("DEL", container_id=pod.cid, netns=f"/run/netns/{pod.ns}", ifname=pod.ifname, **kw)
        assert rc == 0, f"DEL failed: {out} {err}"

    def run(self, *cmd, **kw):
        return in_ns(self.ns, *cmd, **kw)

    # --- observations used to prove "nothing left behind" ---
    def links(self):
        return json.loads(self.run("ip", "-j", "link", "show").stdout)

    def host_ifindex(self, pod):
        """The ifindex of pod's host-side veth (the first interface of its result)."""
        name = pod.result["interfaces"][0]["name"]
        return json.loads(self.run("ip", "-j", "link", "show", "dev", name).stdout)[0]["ifindex"]

    def skiff_veths(self):
        return [l["ifname"] for l in self.links() if l["ifname"].startswith("skf")]

    def pod_routes(self):
        routes = json.loads(self.run("ip", "-j", "route", "show").stdout)
        return [r for r in routes if r.get("dst", "").startswith(self.pod_cidr.rsplit(".", 1)[0])]

    def leases(self):
        d = os.path.join(self.state, "networks", self.network, "ipam")
        if not os.path.isdir(d):
            return []
        return sorted(f for f in os.listdir(d) if f.count(".") == 3 and "tmp" not in f)

    def temp_files(self):
        """Temporary files of atomic writes (<name>.tmp.<pid>.<n>) in the state dir."""
        d = os.path.join(self.state, "networks", self.network)
        return sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if ".tmp." in f)

    def attachments(self):
        d = os.path.join(self.state, "networks", self.network, "attachments")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def endpoints(self):
        path = os.path.join(self.pin, "skiff_endpoints")
        if not os.path.exists(path):
            return []
        return json.loads(sh("bpftool", "-j", "map", "dump", "pinned", path).stdout)

    def pod_sources(self):
        """The filled slots of the pod sources array: [(host veth ifindex, pod IP)]."""
        path = os.path.join(self.pin, "skiff_pod_srcs")
        if not os.path.exists(path):
            return []
        out = []
        for e in json.loads(sh("bpftool", "-j", "map", "dump", "pinned", path).stdout):
            v = e["formatted"]["value"] if "formatted" in e else e["value"]
            if v["ifindex"]:
                out.append((v["ifindex"], str(ipaddress.IPv4Address(socket.ntohl(v["ip"])))))
        return sorted(out)

    def counters(self):
        """{(reason, dir): packets} summed over CPUs, read with bpftool."""
        path = os.path.join(self.pin, "skiff_metrics")
        if not os.path.exists(path):
            return {}
        out = {}
        for raw in json.loads(sh("bpftool", "-j", "map", "dump", "pinned", path).stdout):
            e = raw["formatted"]  # decoded through the map's BTF
            key = e["key"]
            pk = sum(v["value"]["packets"] for v in e["values"])
            if pk:
                out[(key // 2, key % 2)] = pk
        return out

    def leftovers(self):
        """Per-attachment state that must be gone once every pod is deleted."""
        return {"veths": self.skiff_veths(), "routes": self.pod_routes(), "leases": self.leases(),
                "attachments": self.attachments(), "endpoints": self.endpoints(), "pod_sources": self.pod_sources(),
                "temp": self.temp_files()}


class Pod:
    def __init__(self, node, ns, cid, ip, result, ifname="eth0"):
        self.node, self.ns, self.cid, self.ip, self.result, self.ifname = node, ns, cid, ip, result, ifname

    def run(self, *cmd, **kw):
        return in_ns(self.ns, *cmd, **kw)

    def ping(self, ip, count=2):
        return self.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", ip, check=False)


class Topology:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="skiff-it-")
        self.namespaces = []
        self.pins = []
        self.procs = []
        self.cgroups = []

    def node(self, ip="192.168.1.11", pod_cidr="10.244.1.0/24", **kw):
        return Node(self, unique("skn"), ip, pod_cidr, **kw)

    def underlay(self):
        """A namespace holding one bridge: the L2 segment nodes plug into."""
        name = unique("sku")
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        in_ns(name, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(name, "ip", "link", "set", "br0", "up")
        return name

    def pod_ns(self, name=None):
        name = name or unique("skp")
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        in_ns(name, "ip", "link", "set", "lo", "up")
        return name

    def cgroup(self):
        """A private cgroup2 directory (never the root cgroup) for socket-LB tests."""
        for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            if os.path.exists(os.path.join(root, "cgroup.procs")) and \
                    sh("stat", "-f", "-c", "%T", root).stdout.strip() == "cgroup2fs":
                path = os.path.join(root, unique("skiff-cg-"))
                os.mkdir(path)
                self.cgroups.append(path)
                return path
        raise RuntimeError("no cgroup2 mount")

    def spawn(self, ns, *cmd):
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "--", *cmd], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for pin in self.pins:
            if os.path.isdir(pin):
                for f in os.listdir(pin):
                    os.unlink(os.path.join(pin, f))
                os.rmdir(pin)
        for cg in self.cgroups:
            try:
                os.rmdir(cg)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
