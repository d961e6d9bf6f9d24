"""Masquerade in eBPF: pod traffic leaving the cluster gets the node's
address, replies and ICMP errors come back to the right pod. No iptables
nat rule anywhere."""
import subprocess

import pytest

from cluster_topo import Cluster, wait_for
from skiff_topo import in_ns, unique

# Answers each TCP/UDP client with "<peer ip>:<peer port>" (7000 / 7001),
# counts the bytes of one TCP upload on 7003, and answers every line on a
# TCP connection to 7004 with the peer's "<ip>:<port>".
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
def lines(c, p):
    f = c.makefile("rb")
    for _ in f:
        c.sendall(f"{p[0]}:{p[1]}\n".encode())
def line_echo():
    e = socket.socket(); e.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); e.bind(("0.0.0.0", 7004)); e.listen(8)
    while True:
        c, p = e.accept(); threading.Thread(target=lines, args=(c, p), daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
threading.Thread(target=sink, daemon=True).start()
threading.Thread(target=line_echo, daemon=True).start()
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


# One socket from a fixed source port, kept open: each line on stdin sends
# one request (TCP to 7004 or UDP to 7001) and prints the answer.
HELD = r"""
import socket, sys
ip, proto, sport = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", sport))
    s.settimeout(5); s.connect((ip, 7004)); f = s.makefile("rb")
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", sport)); s.settimeout(1)
for _ in sys.stdin:
    try:
        if proto == "tcp":
            s.sendall(b"x\n"); print(f.readline().decode().strip(), flush=True)
        else:
            for _ in range(3):
                s.sendto(b"x", (ip, 7001))
                try:
                    print(s.recvfrom(64)[0].decode(), flush=True); break
                except socket.timeout:
                    pass
            else:
                print("ERR timeout", flush=True)
    except OSError as e:
        print("ERR", e, flush=True)
"""


class Held:
    """HELD running in a namespace; ask() sends one request on its socket."""

    def __init__(self, ns, ip, proto, sport):
        self.p = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "--", "/usr/bin/python3", "-c", HELD, ip,
                                   proto, str(sport)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def close(self):
        self.p.kill()
        self.p.wait()


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


def start_with_outside(cluster, **masq):
    """start(), then the outside host 192.168.1.100 with its server."""
    start(cluster, **masq)
    serve(cluster, attach_host(cluster, "192.168.1.100"))


def ask(pod, ip, proto, sport=0):
    return pod.run("/usr/bin/python3", "-c", CLIENT, ip, proto, str(sport), check=False, timeout=30).stdout.strip()


def no_nat_rules(node):
    out = in_ns(node.ns, "iptables-save", "-t", "nat", check=False).stdout
    return [line for line in out.splitlines() if line.startswith("-A")]


def test_pods_reach_outside_as_the_node(cluster):
    start_with_outside(cluster)
    n1, n2 = cluster.nodes
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
    start_with_outside(cluster)
    n1 = cluster.nodes[0]
    a, b = cluster.add_pod(n1), cluster.add_pod(n1)
    for proto in ("udp", "tcp"):
        seen = {ask(p, "192.168.1.100", proto, sport=40000) for p in (a, b)}
        assert len(seen) == 2 and all(s.startswith(n1.ip + ":") for s in seen), (proto, seen)


def test_port_range_exhaustion_drops_new_flows_only_and_recovers(cluster):
    start_with_outside(cluster, portRange="61000-61001")
    n1 = cluster.nodes[0]
    pods = [cluster.add_pod(n1) for _ in range(4)]
    # The first pod keeps its port; the next two need the range's two ports.
    assert ask(pods[0], "192.168.1.100", "udp", sport=45000) == f"{n1.ip}:45000"
    second = ask(pods[1], "192.168.1.100", "udp", sport=45000)
    third = ask(pods[2], "192.168.1.100", "udp", sport=45000)
    assert {second, third} == {f"{n1.ip}:61000", f"{n1.ip}:61001"}, (second, third)
    assert ask(pods[3], "192.168.1.100", "udp", sport=45000).startswith("ERR")
    assert n1.counters().get((135, 0), 0) >= 1  # drop-nat-no-port
    assert ask(pods[1], "192.168.1.100", "udp", sport=45000) == second  # existing flow untouched
    # Once the idle flows expire (6 s UDP timeout) the range frees up.
    wait_for(lambda: ask(pods[3], "192.168.1.100", "udp", sport=45000).startswith(n1.ip + ":"),
             "a port frees up after expiry", timeout=30, interval=0.5)


def test_pods_keep_their_own_source_port_even_an_ephemeral_one(cluster):
    start_with_outside(cluster)
    n1 = cluster.nodes[0]
    pod = cluster.add_pod(n1)
    for proto, port in (("tcp", 40000), ("udp", 40000), ("tcp", 2000)):
        assert ask(pod, "192.168.1.100", proto, sport=port) == f"{n1.ip}:{port}", proto


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize("first", ["pod", "node"])
def test_a_pod_and_the_node_share_a_port_toward_one_server(cluster, proto, first):
    # A pod and the node talk to one server from the same port (a node's
    # resolver and a pod's, say): both must get their own answers. The one
    # that came first keeps the port; the node's flow moves (its replies
    # are moved back), a pod's flow takes another port.
    start_with_outside(cluster)
    n1 = cluster.nodes[0]
    pod = cluster.add_pod(n1)
    held = {}
    try:
        for who in (first, "node" if first == "pod" else "pod"):
            held[who] = Held(pod.ns if who == "pod" else n1.ns, "192.168.1.100", proto, 40002)
            held[who].seen = held[who].ask()
        assert held[first].seen == f"{n1.ip}:40002"
        second = held["node" if first == "pod" else "pod"]
        assert second.seen.startswith(n1.ip + ":") and second.seen != f"{n1.ip}:40002", second.seen
        for h in held.values():  # both flows go on, each with its translation
            assert h.ask() == h.seen
    finally:
        for h in held.values():
            h.close()
    c = n1.counters()
    if first == "pod":
        assert c.get((16, 0), 0) == 1, c  # snat-node-moved
        assert c.get((17, 1), 0) >= 2, c  # snat-node: replies moved back
    else:
        assert c.get((15, 0), 0) == 1, c  # snat-node-new


def test_pod_keeps_off_a_port_the_node_listens_on(cluster):
    # A socket the node opened before it sent anything (a listener here) is
    # not in the table: the pod's claim asks the node's socket table.
    start_with_outside(cluster)
    n1 = cluster.nodes[0]
    pod = cluster.add_pod(n1)
    assert ask(pod, "192.168.1.100", "tcp", sport=40004) == f"{n1.ip}:40004"
    cluster.topo.spawn(n1.ns, "/usr/bin/python3", "-c",
                       "import socket, time\ns = socket.socket(); s.bind(('0.0.0.0', 40005)); s.listen(1)\n"
                       "time.sleep(3600)")
    wait_for(lambda: "LISTEN" in in_ns(n1.ns, "ss", "-ltn", "sport = :40005", check=False).stdout, "node listener")
    seen = ask(pod, "192.168.1.100", "tcp", sport=40005)
    assert seen.startswith(n1.ip + ":") and seen != f"{n1.ip}:40005", seen


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
