"""skiffctl's map and attachment views (node, service, ct, nat, net, map dump)
read against a live two-node cluster and checked against what was
programmed, what traffic created and what bpftool sees; JSON shapes and
errors."""
import glob
import ipaddress
import json
import os
import platform
import subprocess
import tempfile
import time

import pytest

from cluster_topo import CLUSTER_CIDR, Cluster, node_object, wait_for
from skiff_topo import SKIFFCTL, Topology, in_ns
from test_masquerade import CLIENT as MASQ_CLIENT
from test_masquerade import attach_host, serve
from test_services import CLIENT as SVC_CLIENT
from test_services import SERVER, VIP, WEB_PORTS, WEB_SLICE_PORTS, service, slice_

OUTSIDE = "192.168.1.100"
STICKY_VIP = "10.96.0.11"
SELF_VIP = "10.96.0.12"  # only backend a: a reaching it is hairpinned

# A long-lived TCP connection: prints its source port and the echo reply,
# then holds the connection until stdin closes.
CONV = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.getsockname()[1], flush=True)
s.sendall(b"hello"); print(s.recv(64).decode(), flush=True)
sys.stdin.read()
"""

# Attach a pinned program to a device's tcx ingress (BPF_PROG_ATTACH; bpftool
# 7.1 cannot). Exit code 3 when the kernel has no tcx.
NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
TCX_ATTACH = r"""
import ctypes, errno, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, len(attr))
    r = libc.syscall(int(sys.argv[3]), cmd, buf, len(attr))  # __NR_bpf
    if r < 0:
        e = ctypes.get_errno()
        print(os.strerror(e)); sys.exit(3 if e == errno.EINVAL else 1)
    return r
path = ctypes.create_string_buffer(sys.argv[1].encode())
fd = bpf(7, struct.pack("=QII", ctypes.addressof(path), 0, 0))  # BPF_OBJ_GET
bpf(8, struct.pack("=IIII", socket.if_nametoindex(sys.argv[2]), fd, 46, 0))  # BPF_PROG_ATTACH, BPF_TCX_INGRESS
"""


def tcp_port(name, port):
    return {"name": name, "port": port, "protocol": "TCP"}


ECHO_PORTS = WEB_PORTS + [tcp_port("echo", 9000)]
ECHO_SLICE_PORTS = WEB_SLICE_PORTS + [tcp_port("echo", 7002)]


def run_ctl(node, *args, pin=None, user=None):
    pre = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if user else []
    r = subprocess.run(["nsenter", f"--net=/run/netns/{node.ns}", "--", *pre, SKIFFCTL, "--pin-path", pin or node.pin,
                        *args], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def ctl_json(node, *args):
    rc, out, err = run_ctl(node, "-j", *args)
    assert rc == 0, (args, out, err)
    return json.loads(out)


def ctl_text(node, *args):
    rc, out, err = run_ctl(node, *args)
    assert rc == 0 and err == "", (args, out, err)
    return out


def ctl_error(node, *args, **kw):
    """A failing command: JSON {"error": ...} and a non-zero exit; the message."""
    rc, out, err = run_ctl(node, "-j", *args, **kw)
    assert rc != 0, (args, out)
    doc = json.loads(out)
    check(doc, ERROR)
    assert set(doc) == {"error"} and doc["error"]
    rc2, out2, err2 = run_ctl(node, *args, **kw)  # text mode: on stderr
    assert rc2 != 0 and out2 == "" and err2.startswith("Error: "), (out2, err2)
    return doc["error"]


def bpftool_dump(node, name):
    r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", f"{node.pin}/{name}"], capture_output=True, text=True)
    return json.loads(r.stdout) if r.stdout.strip() else []


def ip_of(be_u32):  # a network-order address that BTF shows as a little-endian __u32
    return ".".join(str((be_u32 >> (8 * i)) & 0xff) for i in range(4))


def port_of(be_u16):
    return ((be_u16 & 0xff) << 8) | (be_u16 >> 8)


# ---- JSON shapes: required keys and types ----

class Nullable:
    def __init__(self, schema):
        self.schema = schema


def check(value, schema, path="$"):
    if isinstance(schema, Nullable):
        if value is not None:
            check(value, schema.schema, path)
    elif isinstance(schema, dict):
        assert isinstance(value, dict), (path, value)
        missing = set(schema) - set(value)
        assert not missing, (path, missing)
        for k, s in schema.items():
            check(value[k], s, f"{path}.{k}")
    elif isinstance(schema, list):
        assert isinstance(value, list), (path, value)
        for i, v in enumerate(value):
            check(v, schema[0], f"{path}[{i}]")
    elif isinstance(schema, set):  # one of these values
        assert value in schema, (path, value)
    elif schema == "ip":
        ipaddress.IPv4Address(value)
    elif schema == "cidr":
        ipaddress.IPv4Network(value)
    elif schema == "port":
        assert isinstance(value, int) and 0 <= value <= 65535, (path, value)
    elif schema == "hex":
        assert isinstance(value, str) and all(len(b) == 2 for b in value.split()), (path, value)
        bytes.fromhex(value)
    elif schema == "num":
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0, (path, value)
    else:
        assert isinstance(value, schema) and (schema is bool or not isinstance(value, bool)), (path, value)


PROTO = {"tcp", "udp", "icmp"}
NODES = [{"cidr": "cidr", "node_ip": "ip", "flags": [{"local"}]}]
BACKEND = {"backend_id": int, "ip": "ip", "port": "port", "proto": PROTO}
SERVICES = {"frontends": [{"vip": "ip", "port": "port", "proto": PROTO, "flags": [{"affinity", "maglev"}],
                           "affinity_timeout": int, "revnat_id": int, "count": int,
                           "backends": [dict(BACKEND, slot=int)]}],
            "terminating": [BACKEND]}
ADDR = {"addr": "ip", "port": "port"}
TUPLE = {"proto": PROTO, "saddr": "ip", "sport": "port", "daddr": "ip", "dport": "port",
         "age_s": "num", "idle_s": "num", "packets": int, "bytes": int, "nat": ADDR}
CT = [dict(TUPLE, direction={"forward", "reply"}, snat=Nullable(ADDR), backend_id=int, revnat_id=int,
           flags=[{"syn", "closing", "snat", "replied"}])]
NAT = [dict(TUPLE, direction={"egress", "ingress"}, echo_id=Nullable("port"), flags=[{"closing"}])]
NET = {"devices": [{"ifindex": int, "name": str, "hook": {"ingress", "egress"}, "mode": {"tc", "tcx"},
                    "prog_id": int, "prog_name": str, "prog_tag": str}],
       "cgroup": [{"hook": str, "prog_id": int, "link_id": int, "cgroup_id": int, "prog_name": str,
                   "attach_type": str}]}
DUMP = {"name": str, "type": str, "key_size": int, "value_size": int, "max_entries": int, "per_cpu": bool,
        "entries": [{"key": "hex"}]}
ERROR = {"error": str}
DECODED = {"skiff_endpoints", "skiff_pod_srcs", "skiff_nodes", "skiff_nomasq", "skiff_services", "skiff_backends", "skiff_revnat",
           "skiff_ct", "skiff_snat", "skiff_affinity", "skiff_maglev", "skiff_sock_rnat", "skiff_config",
           "skiff_frags", "skiff_trace", "skiff_metrics", "skiff_nexthops"}


# ---- one cluster for the module ----

class Env:
    def __init__(self, topo):
        self.topo = topo
        self.cluster = c = Cluster(topo, n=2)
        self.cgroup = c.socket_lb_cgroup = topo.cgroup()
        c.start()
        self.n1, self.n2 = c.nodes
        self.a, self.b = c.add_pod(self.n1), c.add_pod(self.n2)
        self.term = c.add_pod(self.n2)  # a terminating endpoint: backends in no slot
        self.client = c.add_pod(self.n1)
        for p in (self.a, self.b):
            topo.spawn(p.ns, "/usr/bin/python3", "-c", SERVER, p.ip)
            wait_for(lambda p=p: "LISTEN" in in_ns(p.ns, "ss", "-ltn", "sport = :7002", check=False).stdout, "server")
        self.outside = attach_host(c, OUTSIDE)
        serve(c, self.outside)
        base = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in c.nodes]
        c.write_source(base + [
            service("web", VIP, ECHO_PORTS),
            slice_("web", "web-1", [(self.a.ip, True, False), (self.b.ip, True, False), (self.term.ip, False, True)],
                   ECHO_SLICE_PORTS),
            service("sticky", STICKY_VIP, [tcp_port("http", 8080)], affinity=30, maglev=True),
            slice_("sticky", "sticky-1", [(self.a.ip, True, False)], [tcp_port("http", 7000)]),
            service("self", SELF_VIP, [tcp_port("echo", 9000)]),
            slice_("self", "self-1", [(self.a.ip, True, False)], [tcp_port("echo", 7002)]),
        ])
        for nd in c.nodes:
            wait_for(lambda nd=nd: 'skiff_map_entries{map="frontends"} 5' in c.http(nd, "/metrics")[1],
                     "services programmed")

    def conv(self, pod, vip, port):
        """Open a long-lived connection: (source port, reply words, process)."""
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{pod.ns}", "--", "/usr/bin/python3", "-c", CONV, vip,
                              str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.topo.procs.append(p)
        return int(p.stdout.readline()), p.stdout.readline().split(), p


@pytest.fixture(scope="module")
def env():
    topo = Topology()
    try:
        yield Env(topo)
    finally:
        topo.close()


def test_node_list(env):
    for node, other in ((env.n1, env.n2), (env.n2, env.n1)):
        nodes = ctl_json(node, "node", "list")
        check(nodes, NODES)
        assert {e["cidr"]: (e["node_ip"], e["flags"]) for e in nodes} == {
            node.pod_cidr: (node.ip, ["local"]), other.pod_cidr: (other.ip, [])}
        # The same as bpftool's BTF view of the map.
        assert env.cluster.node_map(node) == {e["cidr"]: (e["node_ip"], 1 if e["flags"] else 0) for e in nodes}
    text = ctl_text(env.n1, "no")  # prefix, default verb
    assert text.startswith("POD CIDR") and env.n2.pod_cidr in text and "local" in text


def frontends(doc):
    return {(f["vip"], f["port"], f["proto"]): f for f in doc["frontends"]}


def test_service_list(env):
    doc = ctl_json(env.n1, "service", "list")
    check(doc, SERVICES)
    fe = frontends(doc)
    assert set(fe) == {(VIP, 80, "tcp"), (VIP, 53, "udp"), (VIP, 9000, "tcp"), (STICKY_VIP, 8080, "tcp"),
                       (SELF_VIP, 9000, "tcp")}
    for port, proto, target in ((80, "tcp", 7000), (53, "udp", 7001), (9000, "tcp", 7002)):
        f = fe[(VIP, port, proto)]
        assert f["count"] == 2 and f["flags"] == [] and f["affinity_timeout"] == 0, f
        assert [b["slot"] for b in f["backends"]] == [1, 2]
        # Exactly the ready endpoints of the slice, at the target port.
        assert {(b["ip"], b["port"], b["proto"]) for b in f["backends"]} == {(env.a.ip, target, proto),
                                                                            (env.b.ip, target, proto)}
    sticky = fe[(STICKY_VIP, 8080, "tcp")]
    assert sticky["flags"] == ["affinity", "maglev"] and sticky["affinity_timeout"] == 30
    assert [(b["slot"], b["ip"], b["port"]) for b in sticky["backends"]] == [(1, env.a.ip, 7000)]
    # The terminating endpoint's backends exist, in no slot.
    assert {(t["ip"], t["port"], t["proto"]) for t in doc["terminating"]} == {
        (env.term.ip, 7000, "tcp"), (env.term.ip, 7001, "udp"), (env.term.ip, 7002, "tcp")}
    slotted = {b["backend_id"] for f in doc["frontends"] for b in f["backends"]}
    assert not slotted & {t["backend_id"] for t in doc["terminating"]}
    # Ids agree with the raw maps (bpftool's BTF view).
    backends = {e["formatted"]["key"]: e["formatted"]["value"] for e in bpftool_dump(env.n1, "skiff_backends")}
    for f in doc["frontends"]:
        for b in f["backends"] + doc["terminating"]:
            raw = backends[b["backend_id"]]
            assert (ip_of(raw["ip"]), port_of(raw["port"])) == (b["ip"], b["port"])
    revnat = {e["formatted"]["key"]["id"]: e["formatted"]["value"] for e in bpftool_dump(env.n1, "skiff_revnat")}
    assert len({f["revnat_id"] for f in doc["frontends"]}) == 5
    for (vip, port, _), f in fe.items():
        assert (ip_of(revnat[f["revnat_id"]]["ip"]), port_of(revnat[f["revnat_id"]]["port"])) == (vip, port)
    # Both nodes were programmed alike (ids are each agent's own).

    def addrs(d):
        return {k: (f["flags"], sorted((b["ip"], b["port"]) for b in f["backends"])) for k, f in frontends(d).items()}
    assert addrs(ctl_json(env.n2, "se")) == addrs(doc)
    text = ctl_text(env.n1, "service", "list")
    assert text.startswith("FRONTEND") and f"{VIP}:80/tcp" in text and "affinity=30s,maglev" in text
    assert "terminating" in text and f"{env.term.ip}:7002/tcp" in text


def test_ct_list_shows_the_connection_pair(env):
    cport, reply, proc = env.conv(env.client, VIP, 9000)
    backend_ip = reply[0]
    assert reply == [backend_ip, "hello"] and backend_ip in (env.a.ip, env.b.ip)
    fe = frontends(ctl_json(env.n1, "service", "list"))[(VIP, 9000, "tcp")]
    backend_id = {b["ip"]: b["backend_id"] for b in fe["backends"]}[backend_ip]
    ct = ctl_json(env.n1, "ct", "list")
    check(ct, CT)

    def find(direction, saddr, sport, daddr, dport):
        found = [e for e in ct if (e["direction"], e["proto"], e["saddr"], e["sport"], e["daddr"], e["dport"]) ==
                 (direction, "tcp", saddr, sport, daddr, dport)]
        assert len(found) == 1, (direction, saddr, sport, daddr, dport, ct)
        return found[0]

    fwd = find("forward", env.client.ip, cport, VIP, 9000)
    assert fwd["nat"] == {"addr": backend_ip, "port": 7002} and fwd["snat"] is None
    assert fwd["backend_id"] == backend_id and fwd["revnat_id"] == fe["revnat_id"]
    assert {"syn", "replied"} <= set(fwd["flags"]) and "snat" not in fwd["flags"]
    assert fwd["packets"] >= 3 and fwd["bytes"] > 3 * 40
    assert 0 <= fwd["idle_s"] <= fwd["age_s"] < 60
    rev = find("reply", backend_ip, 7002, env.client.ip, cport)
    assert rev["nat"] == {"addr": VIP, "port": 9000} and rev["snat"] is None
    assert rev["backend_id"] == backend_id and rev["revnat_id"] == fe["revnat_id"] and "replied" in rev["flags"]
    # Age and idle time follow the clock.
    time.sleep(1.5)
    later = [e for e in ctl_json(env.n1, "ct") if e["direction"] == "forward" and e["sport"] == cport and
             e["saddr"] == env.client.ip][0]
    assert 1.0 <= later["age_s"] - fwd["age_s"] < 10 and later["idle_s"] >= 1.0
    text = ctl_text(env.n1, "ct", "list")
    assert text.startswith("DIR") and f"{env.client.ip}:{cport}" in text and f"{VIP}:9000" in text
    proc.stdin.close()
    proc.wait(timeout=10)


def test_ct_list_hairpin_is_snat(env):
    cport, reply, proc = env.conv(env.a, SELF_VIP, 9000)
    assert reply == [env.a.ip, "hello"]
    ct = ctl_json(env.n1, "ct", "list")
    fwd = [e for e in ct if e["direction"] == "forward" and (e["saddr"], e["sport"], e["daddr"]) ==
           (env.a.ip, cport, SELF_VIP)]
    assert len(fwd) == 1, ct
    fwd = fwd[0]
    assert "snat" in fwd["flags"] and fwd["snat"]["addr"] == "169.254.42.1"
    assert fwd["nat"] == {"addr": env.a.ip, "port": 7002}
    rev = [e for e in ct if e["direction"] == "reply" and (e["saddr"], e["sport"], e["daddr"], e["dport"]) ==
           (env.a.ip, 7002, "169.254.42.1", fwd["snat"]["port"])]
    assert len(rev) == 1 and rev[0]["nat"] == {"addr": SELF_VIP, "port": 9000}, ct
    assert rev[0]["snat"] == {"addr": env.a.ip, "port": cport}  # the real client, where replies go back to
    proc.stdin.close()
    proc.wait(timeout=10)


def test_nat_list_shows_masquerade_translations(env):
    kept = env.client.run("/usr/bin/python3", "-c", MASQ_CLIENT, OUTSIDE, "udp", "20000", check=False).stdout.strip()
    assert kept == f"{env.n1.ip}:20000", kept  # a free tuple: the pod's own port is kept
    # Another pod from the same port to the same destination: a range port.
    ranged = env.a.run("/usr/bin/python3", "-c", MASQ_CLIENT, OUTSIDE, "udp", "20000", check=False).stdout.strip()
    assert ranged.startswith(env.n1.ip + ":"), ranged
    ranged_port = int(ranged.split(":")[1])
    assert 61000 <= ranged_port <= 65535
    assert env.client.ping(OUTSIDE).returncode == 0
    nat = ctl_json(env.n1, "nat", "list")
    check(nat, NAT)

    def one(**want):
        found = [e for e in nat if all(e[k] == v for k, v in want.items())]
        assert len(found) == 1, (want, nat)
        return found[0]

    for pod, nport in ((env.client, 20000), (env.a, ranged_port)):
        eg = one(direction="egress", proto="udp", saddr=pod.ip, sport=20000, daddr=OUTSIDE, dport=7001)
        assert eg["nat"] == {"addr": env.n1.ip, "port": nport} and eg["echo_id"] is None
        assert eg["packets"] >= 1 and eg["bytes"] > 0 and 0 <= eg["idle_s"] <= eg["age_s"] < 60
        ing = one(direction="ingress", proto="udp", saddr=OUTSIDE, sport=7001, daddr=env.n1.ip, dport=nport)
        assert ing["nat"] == {"addr": pod.ip, "port": 20000} and ing["packets"] >= 1
    # ICMP echo: the identifier stands in for the ports.
    eg = one(direction="egress", proto="icmp", saddr=env.client.ip, daddr=OUTSIDE)
    assert eg["echo_id"] == eg["sport"] and eg["nat"] == {"addr": env.n1.ip, "port": eg["echo_id"]}
    ing = one(direction="ingress", proto="icmp", saddr=OUTSIDE, daddr=env.n1.ip)
    assert ing["echo_id"] == ing["dport"] == eg["nat"]["port"]
    assert ing["nat"] == {"addr": env.client.ip, "port": eg["echo_id"]} and ing["packets"] >= 2
    text = ctl_text(env.n1, "nat")
    assert text.startswith("DIR") and f"{env.n1.ip}:{ranged_port}" in text and f"id {eg['echo_id']}" in text


def test_net_show(env):
    n1 = env.n1
    doc = ctl_json(n1, "net", "show")
    check(doc, NET)
    devs = doc["devices"]
    assert all(d["mode"] == "tc" for d in devs), devs
    up0 = [d for d in devs if d["name"] == "up0"]
    assert sorted((d["hook"], d["prog_name"]) for d in up0) == [("egress", "skiff_to_uplink"),
                                                                ("ingress", "skiff_uplink")]
    pods = [d for d in devs if d["prog_name"] == "skiff_from_pod"]
    assert sorted(d["name"] for d in pods) == sorted(n1.skiff_veths()) and len(pods) == 2
    assert {d["hook"] for d in pods} == {"ingress"} and len({d["prog_id"] for d in pods}) == 1
    ifindex = {l["ifname"]: l["ifindex"] for l in n1.links()}
    assert all(ifindex[d["name"]] == d["ifindex"] for d in devs)
    # bpftool sees the same filter.
    bt = json.loads(in_ns(n1.ns, "bpftool", "-j", "net", "show", "dev", "up0").stdout)[0]["tc"]
    assert sorted((t["kind"], t["id"]) for t in bt) == sorted((f"clsact/{d['hook']}", d["prog_id"]) for d in up0)
    # Socket LB: the links pinned in this node's pin dir, on the test's cgroup.
    cg = {c["hook"]: c for c in doc["cgroup"]}
    assert {h: c["prog_name"] for h, c in cg.items()} == {
        "connect4": "skiff_connect4", "sendmsg4": "skiff_sendmsg4", "recvmsg4": "skiff_recvmsg4",
        "getpeername4": "skiff_getpeer4"}
    assert cg["connect4"]["attach_type"] == "cgroup_inet4_connect"
    assert {c["cgroup_id"] for c in cg.values()} == {os.stat(env.cgroup).st_ino}
    links = {l["id"]: l for l in json.loads(subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True,
                                                           text=True).stdout)}
    assert all(links[c["link_id"]]["prog_id"] == c["prog_id"] for c in cg.values())
    other = {c["link_id"] for c in ctl_json(env.n2, "net", "show")["cgroup"]}
    assert len(other) == 4 and not other & {c["link_id"] for c in cg.values()}  # node-2 has its own links
    text = ctl_text(n1, "net")
    assert "skiff_uplink" in text and "skiff_from_pod" in text and "connect4" in text and "clsact" not in text


def test_net_show_detects_tcx(env):
    if NR_BPF is None:
        pytest.skip(f"no bpf syscall number for {platform.machine()}")
    n1 = env.n1
    prog = glob.glob(f"{n1.pin}/prog_from_pod_*")[0]
    n1.run("ip", "link", "add", "tcx0", "type", "veth", "peer", "name", "tcx1")
    try:
        r = n1.run("/usr/bin/python3", "-c", TCX_ATTACH, prog, "tcx0", str(NR_BPF), check=False)
        if r.returncode == 3:
            pytest.skip("kernel without tcx")
        assert r.returncode == 0, r.stdout + r.stderr
        devs = [d for d in ctl_json(n1, "net", "show")["devices"] if d["name"] == "tcx0"]
        assert [(d["hook"], d["mode"], d["prog_name"]) for d in devs] == [("ingress", "tcx", "skiff_from_pod")]
    finally:
        n1.run("ip", "link", "del", "tcx0", check=False)


def raw_bytes(entry):
    return bytes(int(x, 16) for x in entry["key"]), bytes(int(x, 16) for x in entry["value"])


def test_map_dump(env):
    r = env.client.run("/usr/bin/python3", "-c", SVC_CLIENT, VIP, "80", "tcp", "1", check=False, timeout=30)
    assert r.stdout.split()[0] in (env.a.ip, env.b.ip), r.stdout  # counted as svc-new
    doc = ctl_json(env.n1, "map", "dump", "skiff_services")
    check(doc, DUMP)
    assert (doc["name"], doc["type"], doc["key_size"], doc["value_size"], doc["per_cpu"]) == (
        "skiff_services", "hash", 12, 16, False)
    mine = {(bytes.fromhex(e["key"]), bytes.fromhex(e["value"])) for e in doc["entries"]}
    assert mine == {raw_bytes(e) for e in bpftool_dump(env.n1, "skiff_services")}
    decoded = {(d["key"]["vip"], d["key"]["port"], d["key"]["proto"], d["key"]["slot"]): d["value"]
               for d in (e["decoded"] for e in doc["entries"])}
    fe = frontends(ctl_json(env.n1, "service", "list"))
    for (vip, port, proto), f in fe.items():
        assert decoded[(vip, port, proto, 0)] == {k: f[k] for k in ("count", "revnat_id", "flags", "affinity_timeout")}
        for b in f["backends"]:
            assert decoded[(vip, port, proto, b["slot"])] == {"backend_id": b["backend_id"]}
    assert ctl_json(env.n1, "map", "dump", "services")["name"] == "skiff_services"  # without the prefix
    # A per-CPU map: every CPU's value and their sum, decoded.
    m = ctl_json(env.n1, "map", "dump", "skiff_metrics")
    check(m, DUMP)
    assert m["per_cpu"] and len(m["entries"]) == m["max_entries"] == 512
    ncpu = len(bpftool_dump(env.n1, "skiff_metrics")[0]["values"])
    for e in m["entries"]:
        assert len(e["values"]) == ncpu
        packets = sum(int.from_bytes(bytes.fromhex(v["value"])[:8], "little") for v in e["values"])
        assert e["decoded"]["value"]["packets"] == packets
    svc_new = [e for e in m["entries"] if e["decoded"]["key"] == {"index": 14, "reason": "svc-new",
                                                                   "direction": "egress"}]
    assert svc_new[0]["decoded"]["value"]["packets"] >= 1
    text = ctl_text(env.n1, "map", "dump", "skiff_nodes")
    assert text.startswith("skiff_nodes: lpm_trie") and "key:" in text and f'"{env.n1.pod_cidr}"' in text
    # The agent's view of its node, as the datapath reads it.
    cfg = ctl_json(env.n1, "map", "dump", "skiff_config")["entries"][0]["decoded"]["value"]
    assert (cfg["node_ip"], cfg["cluster_cidr"], cfg["cluster_mask"]) == (env.n1.ip, CLUSTER_CIDR, "255.255.0.0"), cfg
    # Each local pod's source slot: its host veth and its address.
    srcs = ctl_json(env.n1, "map", "dump", "pod_srcs")
    assert len(srcs["entries"]) == srcs["max_entries"] == 4096
    filled = {e["decoded"]["value"]["ip"]: e["decoded"] for e in srcs["entries"] if e["decoded"]["value"]["ifindex"]}
    assert set(filled) == {env.a.ip, env.client.ip}, filled
    for d in filled.values():
        assert d["key"]["slot"] == d["value"]["ifindex"] % 4096
    # The FIB's answer toward node 2 for the client's packets: out of node 1's
    # uplink, to node 2's uplink MAC.
    env.client.ping(env.b.ip)
    up1 = json.loads(env.n1.run("ip", "-j", "link", "show", "dev", "up0").stdout)[0]
    up2 = json.loads(env.n2.run("ip", "-j", "link", "show", "dev", "up0").stdout)[0]
    nh = ctl_json(env.n1, "map", "dump", "nexthops")
    assert (nh["name"], nh["type"], nh["per_cpu"]) == ("skiff_nexthops", "lru_hash", False)
    mine = [e["decoded"]["value"] for e in nh["entries"]
            if e["decoded"]["key"] == {"saddr": env.client.ip, "node_ip": env.n2.ip}]
    assert [(a["ifindex"], a["smac"], a["dmac"], a["mtu"]) for a in mine] == [
        (up1["ifindex"], up1["address"], up2["address"], up1["mtu"])], nh
    ct = ctl_json(env.n1, "ma", "d", "skiff_ct")  # prefixes
    assert all(e["decoded"]["key"]["direction"] in ("forward", "reply") for e in ct["entries"])
    # Every pinned map with a key dumps, and the layouts skiffctl knows decode.
    pinned = ctl_error(env.n1, "map", "dump", "skiff_nope").split("pinned maps: ")[1].split(", ")
    assert {"skiff_services", "skiff_ct", "skiff_snat", "skiff_nodes"} <= set(pinned)
    for name in pinned:
        if name == "skiff_events":
            continue  # a ring buffer: checked in test_map_dump_errors
        d = ctl_json(env.n1, "map", "dump", name)
        check(d, DUMP)
        assert all(("decoded" in e) == (name in DECODED) for e in d["entries"]), name


def test_map_dump_errors(env):
    err = ctl_error(env.n1, "map", "dump", "skiff_nope")
    assert "no map 'skiff_nope'" in err and "skiff_services" in err and "skiff_ct" in err and "prog_" not in err
    prog = os.path.basename(glob.glob(f"{env.n1.pin}/prog_from_pod_*")[0])
    assert "is not a map" in ctl_error(env.n1, "map", "dump", prog)
    assert "usage" in ctl_error(env.n1, "map", "dump")
    assert "usage" in ctl_error(env.n1, "map", "dump", "skiff_ct", "skiff_nodes")
    assert "invalid map name" in ctl_error(env.n1, "map", "dump", "../skiff_ct")
    assert "missing command" in ctl_error(env.n1, "map")
    if os.path.exists(f"{env.n1.pin}/skiff_events"):  # a ring buffer has no entries to dump
        assert "no entries to dump" in ctl_error(env.n1, "map", "dump", "skiff_events")


def test_json_pretty_matches_compact(env):
    for args in (("node", "list"), ("service", "list"), ("net", "show")):
        rc, out, _ = run_ctl(env.n1, "-p", *args)
        assert rc == 0 and "\n  " in out and json.loads(out) == ctl_json(env.n1, *args)


def test_without_privileges(env):
    rc, out, err = run_ctl(env.n1, "-j", "node", "list", user="nobody")
    if rc == 126 or "setpriv" in err:
        pytest.skip(f"cannot run skiffctl as nobody: {err}")
    for args in (("node", "list"), ("ct", "list"), ("map", "dump", "skiff_nodes"), ("net", "show")):
        err = ctl_error(env.n1, *args, user="nobody")
        assert "permission denied" in err and "needs root" in err, (args, err)


def test_no_maps_in_pin_path(node):
    for args in (("node", "list"), ("service", "list"), ("ct", "list"), ("nat", "list"), ("map", "dump", "skiff_ct")):
        assert "no skiff maps in " + node.pin in ctl_error(node, *args), args
    # A directory that is not bpffs, holding an ordinary file by a map's name.
    with tempfile.TemporaryDirectory(dir=node.topo.tmp) as d:
        with open(os.path.join(d, "skiff_nodes"), "w") as f:
            f.write("not a map")
        assert "no skiff maps in " + d in ctl_error(node, "node", "list", pin=d)
        assert "no skiff maps in " + d in ctl_error(node, "map", "dump", "skiff_nodes", pin=d)
    # Attachments need no maps: nothing is attached yet.
    assert ctl_json(node, "net", "show") == {"devices": [], "cgroup": []}
    assert "no programs attached" in ctl_text(node, "net", "show")


def test_noun_and_verb_errors(node):
    err = ctl_error(node, "n", "list")
    assert "ambiguous object 'n'" in err and all(n in err for n in ("node", "nat", "net"))
    assert "unknown object 'frobnicate'" in ctl_error(node, "frobnicate")
    assert "unexpected argument 'extra'" in ctl_error(node, "node", "list", "extra")
    assert "unexpected argument" in ctl_error(node, "net", "show", "up0")
    assert "ambiguous object 's'" in ctl_error(node, "s")
