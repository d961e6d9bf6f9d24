"""Masquerade in eBPF: pod traffic leaving the cluster gets the node's
address, replies and ICMP errors come back to the right pod. No iptables
nat rule anywhere."""
import subprocess

import pytest

from cluster_topo import Cluster, wait_for
from skiff_topo import in_ns, unique

# Answers each TCP/UDP client with "<peer ip>:<peer port>" (7000 / 7001),
# and counts the bytes of one TCP upload on 7003.
OUTSIDE_SERVER = r"""
import socket, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 7000)); t.listen(64)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7001))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7003)); s.listen(8)
def udp():
    while True:
        d, p = u.recvfrom(2048); u.sendto(f"{p[0]}:{p[1]}".encode(), p)
def sink():
    while True:
        c, _ = s.accept(); n = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            n += len(d)
        c.sendall(str(n).encode()); c.close()
threading.Thread(target=udp, daemon=True).start()
threading.Thread(target=sink, daemon=True).start()
while True:
    c, p = t.accept(); c.sendall(f"{p[0]}:{p[1]}".encode()); c.close()
"""

CLIENT = r"""
import socket, sys
ip, proto, sport = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if proto == "tcp":
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sport: s.bind(("0.0.0.0", sport))
        s.settimeout(3); s.connect((ip, 7000)); print(s.recv(64).decode())
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
        if sport: s.bind(("0.0.0.0", sport))
        for _ in range(3):
            s.sendto(b"x", (ip, 7001))
            try:
                print(s.recvfrom(64)[0].decode()); break
            except socket.timeout:
                pass
        else:
            print("ERR timeout")
except OSError as e:
    print("ERR", e)
"""

UPLOAD = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 7003), timeout=20)
data = b"x" * (1 << 20)
for _ in range(int(sys.argv[2])):
    s.sendall(data)
s.shutdown(socket.SHUT_WR)
print(s.recv(64).decode())
"""


def attach_host(cluster, ip):
    """A host on the underlay that is not a cluster node."""
    ns = cluster.topo.pod_ns()
    port = unique("o")[:15]
    in_ns(ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", cluster.underlay)
    in_ns(cluster.underlay, "ip", "link", "set", port, "master", "br0", "up")
    in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
    in_ns(ns, "ip", "link", "set", "eth0", "up")
    return ns


@pytest.fixture
def cluster(topo):
    c = Cluster(topo, n=2)
    return c


def start(cluster, **masq):
    if masq:
        # UDP flows expire after 6 s idle: longer than any step of a test
        # (a refused attempt takes 3 s), short enough to wait for.
        cluster.agent_config = (lambda orig: lambda nd: {**orig(nd), "masquerade": masq,
                                                          "conntrack": {"udpTimeoutSeconds": 6, "gcIntervalSeconds": 1}})(
            cluster.agent_config)
    cluster.start()


def serve(cluster, ns):
    cluster.topo.spawn(ns, "/usr/bin/python3", "-c", OUTSIDE_SERVER)
    wait_for(lambda: "LISTEN" in in_ns(ns, "ss", "-ltn", "sport = :7000", check=False).stdout, "outside server")


def ask(pod, ip, proto, sport=0):
    return pod.run("/usr/bin/python3", "-c", CLIENT, ip, proto, str(sport), check=False, timeout=30).stdout.strip()


def no_nat_rules(node):
    out = in_ns(node.ns, "iptables-save", "-t", "nat", check=False).stdout
    return [line for line in out.splitlines() if line.startswith("-A")]


def test_pods_reach_outside_as_the_node(cluster):
    start(cluster)
    n1, n2 = cluster.nodes
    outside = attach_host(cluster, "192.168.1.100")
    serve(cluster, outside)
    a, b = cluster.add_pod(n1), cluster.add_pod(n2)
    for pod, node in ((a, n1), (b, n2)):
        for proto in ("tcp", "udp"):
            seen = ask(pod, "192.168.1.100", proto)
            assert seen.split(":")[0] == node.ip, (proto, seen)  # masqueraded to its node
        r = pod.run("ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.1.100", check=False)
        assert r.returncode == 0, r.stdout
    # Pod-to-pod and pod-to-node stay untranslated.
    c = cluster.add_pod(n1)
    assert a.ping(b.ip).returncode == 0 and a.ping(n2.ip).returncode == 0
    counters = n1.counters()
    assert counters.get((11, 0), 0) >= 3  # snat-new: tcp, udp, icmp
    assert counters.get((13, 1), 0) >= 3  # snat-ingress: replies
    for nd in cluster.nodes:
        assert no_nat_rules(nd) == []
    del c


def test_same_source_port_from_two_pods_gets_distinct_translations(cluster):
    start(cluster)
    n1 = cluster.nodes[0]
    outside = attach_host(cluster, "192.168.1.100")
    serve(cluster, outside)
    a, b = cluster.add_pod(n1), cluster.add_pod(n1)
    for proto in ("udp", "tcp"):
        seen = {ask(p, "192.168.1.100", proto, sport=40000) for p in (a, b)}
        assert len(seen) == 2 and all(s.startswith(n1.ip + ":") for s in seen), (proto, seen)


def test_port_range_exhaustion_drops_new_flows_only_and_recovers(cluster):
    start(cluster, portRange="61000-61001")
    n1 = cluster.nodes[0]
    outside = attach_host(cluster, "192.168.1.100")
    serve(cluster, outside)
    pods = [cluster.add_pod(n1) for _ in range(3)]
    # Source ports in the node's ephemeral range are never kept: each flow
    # needs one of the two ports of the range.
    first = ask(pods[0], "192.168.1.100", "udp", sport=45000)
    second = ask(pods[1], "192.168.1.100", "udp", sport=45000)
    assert {first, second} == {f"{n1.ip}:61000", f"{n1.ip}:61001"}, (first, second)
    assert ask(pods[2], "192.168.1.100", "udp", sport=45000).startswith("ERR")
    assert n1.counters().get((135, 0), 0) >= 1  # drop-nat-no-port
    assert ask(pods[0], "192.168.1.100", "udp", sport=45000) == first  # existing flow untouched
    # Once the idle flows expire (6 s UDP timeout) the range frees up.
    wait_for(lambda: ask(pods[2], "192.168.1.100", "udp", sport=45000).startswith(n1.ip + ":"),
             "a port frees up after expiry", timeout=30, interval=0.5)


def test_path_mtu_discovery_through_the_masquerade(cluster):
    start(cluster)
    n1 = cluster.nodes[0]
    # A router on the underlay, and a far host behind it; the router's link
    # toward it has MTU 1280, while both ends talk MSS 1460: the pod's full
    # segments need "fragmentation needed" from the router to shrink.
    router = attach_host(cluster, "192.168.1.254")
    far = cluster.topo.pod_ns()
    in_ns(router, "ip", "link", "add", "far0", "type", "veth", "peer", "name", "eth0", "netns", far)
    in_ns(router, "ip", "addr", "add", "10.99.0.1/24", "dev", "far0")
    in_ns(router, "ip", "link", "set", "far0", "mtu", "1280", "up")
    in_ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    in_ns(far, "ip", "addr", "add", "10.99.0.2/24", "dev", "eth0")
    in_ns(far, "ip", "link", "set", "eth0", "up")
    in_ns(far, "ip", "route", "add", "default", "via", "10.99.0.1")
    in_ns(n1.ns, "ip", "route", "add", "10.99.0.0/24", "via", "192.168.1.254")
    serve(cluster, far)
    pod = cluster.add_pod(n1)
    r = pod.run("/usr/bin/python3", "-c", UPLOAD, "10.99.0.2", "8", check=False, timeout=60)
    assert r.stdout.strip() == str(8 << 20), (r.stdout, r.stderr)  # every byte arrived
    # The router's "fragmentation needed" reached the pod, translated.
    assert n1.counters().get((14, 1), 0) >= 1  # snat-icmp-error
    route = pod.run("ip", "route", "get", "10.99.0.2").stdout
    assert "mtu 1280" in route, route
