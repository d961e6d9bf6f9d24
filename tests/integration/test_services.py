"""ClusterIP services served by skiff's programs and maps: DNAT with
conntrack, local and remote backends, replies translated back."""
import json
import subprocess

import pytest

from cluster_topo import Cluster, node_object, wait_for
from skiff_topo import in_ns

VIP = "10.96.0.10"

# Answers "<own ip> <peer ip>" on TCP 7000 and UDP 7001 (7002 with --alt).
SERVER = r"""
import socket, sys, threading
me = sys.argv[1]
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 7000)); t.listen(128)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7001))
def udp():
    while True:
        data, peer = u.recvfrom(2048); u.sendto(f"{me} {peer[0]}".encode(), peer)
threading.Thread(target=udp, daemon=True).start()
e = socket.socket(); e.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); e.bind(("0.0.0.0", 7002)); e.listen(16)
def echo(c):
    while True:
        d = c.recv(64)
        if not d:
            return
        c.sendall(me.encode() + b" " + d)
def echo_accept():
    while True:
        c, _ = e.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
threading.Thread(target=echo_accept, daemon=True).start()
while True:
    c, peer = t.accept(); c.sendall(f"{me} {peer[0]}".encode()); c.close()
"""

CLIENT = r"""
import socket, sys, time
ip, port, proto, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for _ in range(n):
    try:
        if proto == "tcp":
            s = socket.create_connection((ip, port), timeout=2); print(s.recv(64).decode()); s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
            s.sendto(b"x", (ip, port)); print(s.recvfrom(64)[0].decode()); s.close()
    except OSError as e:
        print("ERR", e)
"""

# A steady UDP client with one fixed source port (like a DNS resolver):
# one probe every 50 ms, prints which backend answered each.
STEADY = r"""
import socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5353)); s.settimeout(0.05)
for i in range(n):
    s.sendto(b"p", (ip, port))
    t0 = time.monotonic()
    try:
        print(s.recvfrom(64)[0].decode().split()[0], flush=True)
    except socket.timeout:
        print("LOST", flush=True)
    time.sleep(max(0, 0.05 - (time.monotonic() - t0)))
"""


def service(name, vip, ports, affinity=None, maglev=False):
    spec = {"type": "ClusterIP", "clusterIP": vip, "clusterIPs": [vip], "ports": ports}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity}}
    meta = {"name": name, "namespace": "default"}
    if maglev:
        meta["annotations"] = {"skiff.io/lb-algorithm": "maglev"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def slice_(svc, name, endpoints, ports):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready, "serving": ready or term,
                                                             "terminating": term}}
                          for ip, ready, term in endpoints],
            "ports": ports}


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
             {"name": "dns", "port": 53, "targetPort": 7001, "protocol": "UDP"}]
WEB_SLICE_PORTS = [{"name": "http", "port": 7000, "protocol": "TCP"}, {"name": "dns", "port": 7001, "protocol": "UDP"}]


class Svc:
    def __init__(self, topo, mode="native"):
        """mode "vxlan": the nodes on three subnets behind a router with no
        route to any PodCIDR, the agents in overlay mode."""
        self.topo = topo
        self.mode = mode
        self.cluster = Cluster(topo, n=3, subnets=[1, 2, 3] if mode == "vxlan" else None)
        if mode == "vxlan":
            self.cluster.agent_extra["routingMode"] = "vxlan"
        self.outside_ip = "192.168.0.100" if mode == "vxlan" else "192.168.1.100"
        self.cgroup = topo.cgroup()
        self.cluster.socket_lb_cgroup = self.cgroup
        self.cluster.start()
        self.nodes = self.cluster.nodes
        self.base = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in self.nodes]
        self.backends = [self.cluster.add_pod(self.nodes[0]), self.cluster.add_pod(self.nodes[1])]
        for b in self.backends:
            topo.spawn(b.ns, "/usr/bin/python3", "-c", SERVER, b.ip)
        for b in self.backends:
            wait_for(lambda b=b: "LISTEN" in in_ns(b.ns, "ss", "-ltn", "sport = :7000", check=False).stdout,
                     "backend server")
        self.client = self.cluster.add_pod(self.nodes[0])

    def publish(self, *objs):
        self.cluster.write_source(self.base + list(objs))

    def web(self, endpoints=None, **kw):
        eps = endpoints if endpoints is not None else [(b.ip, True, False) for b in self.backends]
        self.publish(service("web", VIP, WEB_PORTS, **kw), slice_("web", "web-1", eps, WEB_SLICE_PORTS))

    def frontends(self, node):
        code, body = self.cluster.http(node, "/metrics")
        for line in body.splitlines():
            if line.startswith('skiff_map_entries{map="frontends"}'):
                return int(float(line.split()[-1]))
        return -1

    def ask(self, pod, port, proto, n):
        r = pod.run("/usr/bin/python3", "-c", CLIENT, VIP, str(port), proto, str(n), check=False, timeout=120)
        return [line.split() for line in r.stdout.splitlines()]


@pytest.fixture(params=["native", "vxlan"])
def svc(topo, request):
    return Svc(topo, request.param)


def test_clusterip_tcp_udp_local_and_remote_backends(svc):
    svc.web()
    wait_for(lambda: all(svc.frontends(nd) == 2 for nd in svc.nodes), "frontends programmed on every node")
    for proto, port in (("tcp", 80), ("udp", 53)):
        answers = svc.ask(svc.client, port, proto, 30)
        assert all(a[0] != "ERR" for a in answers), answers
        seen = {a[0] for a in answers}
        # Spread over the local (node-1) and the remote (node-2) backend.
        assert seen == {b.ip for b in svc.backends}, (proto, seen)
        # No SNAT: backends see the client pod's own address.
        assert {a[1] for a in answers} == {svc.client.ip}
    # A client on a node with no backend at all (node-3) works too.
    far = svc.cluster.add_pod(svc.nodes[2])
    answers = svc.ask(far, 80, "tcp", 10)
    assert all(a[0] in {b.ip for b in svc.backends} for a in answers), answers
    counters = svc.nodes[0].counters()
    assert counters.get((7, 0), 0) >= 30  # svc-new
    assert counters.get((9, 0), 0) + counters.get((9, 1), 0) > 0  # svc-reply (local veth, uplink)


def test_removed_backend_stops_new_connections_and_udp_flow_moves(svc):
    svc.web()
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 2, "frontends programmed")
    steady = subprocess.Popen(["nsenter", f"--net=/run/netns/{svc.client.ns}", "--", "/usr/bin/python3", "-c",
                               STEADY, VIP, "53", "120"], stdout=subprocess.PIPE, text=True)
    # Learn which backend the fixed-port flow sticks to, then remove it.
    first = steady.stdout.readline().strip()
    assert first in {b.ip for b in svc.backends}
    keep = [b for b in svc.backends if b.ip != first][0]
    svc.web(endpoints=[(keep.ip, True, False)])
    out = [first] + steady.stdout.read().split()
    steady.wait(timeout=30)
    switch = out.index(keep.ip)
    after = out[switch:]
    # Once moved it stays on the live backend; the move costs fewer than 20
    # probes at 50 ms each (under a second), counting the agent's reaction.
    assert set(after) == {keep.ip}, after
    assert out[:switch].count("LOST") < 20, out[:switch]
    assert all(x in (first, "LOST") for x in out[:switch])
    # New TCP connections only reach the remaining backend.
    answers = svc.ask(svc.client, 80, "tcp", 10)
    assert {a[0] for a in answers} == {keep.ip}


def test_not_ready_and_terminating_endpoints(svc):
    a, b = svc.backends
    svc.web(endpoints=[(a.ip, True, False), (b.ip, False, True)])  # b terminating
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 2, "frontends programmed")
    answers = svc.ask(svc.client, 80, "tcp", 10)
    assert {x[0] for x in answers} == {a.ip}


REFUSED = r"""
import socket, sys
ip = sys.argv[1]
try:
    socket.create_connection((ip, 80), timeout=5); print("tcp connected")
except ConnectionRefusedError:
    print("tcp refused")
except OSError as e:
    print("tcp", e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.connect((ip, 53))
try:
    u.send(b"q"); u.recv(64); print("udp answered")
except ConnectionRefusedError:
    print("udp refused")
except OSError as e:
    print("udp", e)
"""


def test_service_without_endpoints_refuses_at_once(svc):
    svc.publish(service("empty", "10.96.0.20", [{"name": "http", "port": 80, "protocol": "TCP"},
                                                {"name": "dns", "port": 53, "protocol": "UDP"}]))
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 2, "frontends programmed")
    r = svc.client.run("/usr/bin/python3", "-c", REFUSED, "10.96.0.20", check=False, timeout=30)
    # Like kube-proxy's REJECT: a TCP RST and an ICMP port unreachable, not a timeout.
    assert r.stdout.split("\n")[:2] == ["tcp refused", "udp refused"], r.stdout
    assert svc.nodes[0].counters().get((132, 0), 0) >= 2  # no-backend, counted


def test_session_affinity_client_ip(svc):
    svc.web(affinity=60)
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 2, "frontends programmed")
    answers = svc.ask(svc.client, 80, "tcp", 20)
    assert len({a[0] for a in answers}) == 1, answers  # every connection to one backend
    other = svc.cluster.add_pod(svc.nodes[2])
    assert len({a[0] for a in svc.ask(other, 80, "tcp", 10)}) == 1


def test_hairpin_pod_reaches_itself_through_its_service(svc):
    me = svc.backends[1]
    svc.web(endpoints=[(me.ip, True, False)])
    wait_for(lambda: svc.frontends(svc.nodes[1]) == 2, "frontends programmed")
    for proto, port in (("tcp", 80), ("udp", 53)):
        answers = svc.ask(me, port, proto, 5)
        # It answered itself; the connection came from the hairpin address.
        assert answers == [[me.ip, "169.254.42.1"]] * 5, (proto, answers)


def outside_host(svc):
    """A host on the underlay that is not a cluster node."""
    ns = svc.topo.pod_ns()
    port = "o" + ns[-12:]
    in_ns(ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", port[:15], "netns", svc.cluster.underlay)
    in_ns(svc.cluster.underlay, "ip", "link", "set", port[:15], "master", "br0", "up")
    in_ns(ns, "ip", "addr", "add", f"{svc.outside_ip}/24", "dev", "eth0")
    in_ns(ns, "ip", "link", "set", "eth0", "up")
    if svc.cluster.subnets:  # routed underlay: the outside host has a subnet of its own
        in_ns(svc.cluster.underlay, "ip", "addr", "add", "192.168.0.1/24", "dev", "br0")
        in_ns(ns, "ip", "route", "add", "default", "via", "192.168.0.1")
    return ns


def nodeport_service(policy):
    spec = {"type": "NodePort", "clusterIP": VIP, "clusterIPs": [VIP], "externalTrafficPolicy": policy,
            "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
                      {"name": "dns", "port": 53, "targetPort": 7001, "nodePort": 30053, "protocol": "UDP"}]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def ask_from(ns, ip, port, proto, n):
    r = in_ns(ns, "/usr/bin/python3", "-c", CLIENT, ip, str(port), proto, str(n), check=False, timeout=120)
    return [line.split() for line in r.stdout.splitlines()]


def test_nodeport_cluster_policy_from_outside(svc):
    outside = outside_host(svc)
    svc.publish(nodeport_service("Cluster"),
                slice_("web", "web-1", [(b.ip, True, False) for b in svc.backends], WEB_SLICE_PORTS))
    wait_for(lambda: all(svc.frontends(nd) == 4 for nd in svc.nodes), "ClusterIP + NodePort frontends")
    for node in (svc.nodes[0], svc.nodes[2]):  # a node with a local backend, and one without
        for proto, port in (("tcp", 30080), ("udp", 30053)):
            answers = ask_from(outside, node.ip, port, proto, 20)
            assert all(a[0] != "ERR" for a in answers), (node.name, proto, answers)
            # Remote backends see the node's address (SNAT), so their replies
            # come back through it; a local backend may see the client.
            for a in answers:
                assert a[1] in (node.ip, svc.outside_ip), a
    assert {a[0] for a in ask_from(outside, svc.nodes[2].ip, 30080, "tcp", 20)} == {b.ip for b in svc.backends}


def test_nodeport_from_a_pod_to_other_nodes(svc):
    svc.publish(nodeport_service("Cluster"),
                slice_("web", "web-1", [(b.ip, True, False) for b in svc.backends], WEB_SLICE_PORTS))
    wait_for(lambda: all(svc.frontends(nd) == 4 for nd in svc.nodes), "ClusterIP + NodePort frontends")
    # The client is a pod on node-1; node-2 has a backend, node-3 has none.
    for node in (svc.nodes[1], svc.nodes[2]):
        for proto, port in (("tcp", 30080), ("udp", 30053)):
            answers = ask_from(svc.client.ns, node.ip, port, proto, 10)
            assert len(answers) == 10 and all(a[0] in {b.ip for b in svc.backends} for a in answers), \
                (node.name, proto, answers)


def test_nodeport_local_policy_keeps_client_ip(svc):
    outside = outside_host(svc)
    svc.publish(nodeport_service("Local"),
                slice_("web", "web-1", [(b.ip, True, False) for b in svc.backends], WEB_SLICE_PORTS))
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 4, "frontends programmed")
    answers = ask_from(outside, svc.nodes[0].ip, 30080, "tcp", 10)
    # Only node-1's own backend, and it sees the real client address.
    assert answers == [[svc.backends[0].ip, svc.outside_ip]] * 10, answers
    # node-3 has no local backend: refused at once.
    r = in_ns(outside, "/usr/bin/python3", "-c", CLIENT, svc.nodes[2].ip, "30080", "tcp", "1", check=False)
    assert "Connection refused" in r.stdout, r.stdout


def test_bad_services_are_skipped_whole(svc):
    good = [service("web", VIP, WEB_PORTS), slice_("web", "web-1", [(b.ip, True, False) for b in svc.backends],
                                                   WEB_SLICE_PORTS)]
    bad = [service("bad-ip", "10.96.0.300", [{"port": 80}]),
           service("bad-port", "10.96.0.31", [{"name": "a", "port": 80}, {"name": "b", "port": 70000}]),
           service("dup", VIP, [{"name": "http", "port": 80, "protocol": "TCP"}]),  # "default/dup" < "default/web"
           slice_("web", "web-bad", [("10.244.1.999", True, False)], WEB_SLICE_PORTS)]
    svc.publish(*(good + bad))
    wait_for(lambda: len(json.loads(svc.cluster.http(svc.nodes[0], "/healthz")[1])["skipped"]) == 4,
             "four skipped objects reported")
    skipped = json.loads(svc.cluster.http(svc.nodes[0], "/healthz")[1])["skipped"]
    assert any("bad-ip" in s for s in skipped) and any("bad-port" in s for s in skipped)
    assert any("already used" in s for s in skipped) and any("web-bad" in s for s in skipped)
    # "dup" sorts first and claims VIP:80/tcp; so "web" is skipped whole
    # (neither its TCP nor its UDP port is programmed): 1 frontend from dup.
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 1, "only dup's frontend")


def test_thousands_of_endpoints_in_one_slice(svc):
    eps = [(f"10.244.{200 + i // 250}.{i % 250 + 1}", True, False) for i in range(3000)]
    svc.publish(service("big", "10.96.0.40", [{"name": "http", "port": 80, "protocol": "TCP"}]),
                slice_("big", "big-1", eps, [{"name": "http", "port": 7000, "protocol": "TCP"}]))
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 1, "big service programmed")
    code, body = svc.cluster.http(svc.nodes[0], "/metrics")
    assert 'skiff_map_entries{map="backends"} 3000' in body


def test_host_processes_reach_clusterip(svc):
    svc.web()
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 2, "frontends programmed")
    node = svc.nodes[0]
    # A host process (host-network pods are the same) of node-1, in the
    # cgroup the agent attached socket LB to.
    for proto, port in (("tcp", 80), ("udp", 53)):
        r = in_ns(node.ns, "sh", "-c", f'echo $$ > {svc.cgroup}/cgroup.procs && exec /usr/bin/python3 -c "$0" "$@"',
                  CLIENT, VIP, str(port), proto, "20", check=False, timeout=120)
        answers = [line.split() for line in r.stdout.splitlines()]
        assert len(answers) == 20 and all(a[0] != "ERR" for a in answers), (proto, r.stdout, r.stderr)
        assert {a[0] for a in answers} == {b.ip for b in svc.backends}, proto  # local and remote backends
        assert {a[1] for a in answers} == {node.ip}, proto  # the node's own address, no NAT on the wire


def test_maglev_service(svc):
    svc.web(maglev=True)
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 2, "frontends programmed")
    code, body = svc.cluster.http(svc.nodes[0], "/metrics")
    for proto, port in (("tcp", 80), ("udp", 53)):
        answers = svc.ask(svc.client, port, proto, 40)
        assert all(a[0] != "ERR" for a in answers), answers
        assert {a[0] for a in answers} == {b.ip for b in svc.backends}, proto  # the table spreads flows
    # Every node holds the same table for the frontend: a flow maps alike
    # whichever node sees it (compared through the maps, keyed the same).
    def dump(nd, name):
        out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", f"{nd.pin}/{name}"],
                             capture_output=True, text=True).stdout
        return [e["formatted"] for e in json.loads(out)]

    def table(nd):
        frontend = {e["key"]["id"]: (e["value"]["ip"], e["value"]["port"], e["value"]["proto"])
                    for e in dump(nd, "skiff_revnat")}
        addr = {e["key"]: (e["value"]["ip"], e["value"]["port"]) for e in dump(nd, "skiff_backends")}
        return sorted((frontend.get(e["key"]["revnat_id"]), e["key"]["index"], addr.get(e["value"]))
                      for e in dump(nd, "skiff_maglev"))

    # The other nodes' agents may still be programming: wait for all three.
    for nd in svc.nodes[1:]:
        wait_for(lambda nd=nd: len(table(nd)) == 2 * 1021, f"maglev tables on {nd.name}")
    tables = [table(nd) for nd in svc.nodes]
    assert len(tables[0]) == 2 * 1021  # one table per frontend (TCP and UDP)
    assert tables[0] == tables[1] == tables[2]


def test_conntrack_entries_expire_and_are_collected(topo):
    cluster = Cluster(topo, n=2)
    cluster.agent_config = (lambda orig: lambda nd: {**orig(nd), "conntrack": {
        "udpTimeoutSeconds": 1, "gcIntervalSeconds": 1}})(cluster.agent_config)
    cluster.start()
    n1, n2 = cluster.nodes
    backend = cluster.add_pod(n2)
    topo.spawn(backend.ns, "/usr/bin/python3", "-c", SERVER, backend.ip)
    wait_for(lambda: "LISTEN" in in_ns(backend.ns, "ss", "-ltn", "sport = :7000", check=False).stdout, "server")
    client = cluster.add_pod(n1)
    base = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in cluster.nodes]
    cluster.write_source(base + [service("web", VIP, WEB_PORTS),
                                 slice_("web", "web-1", [(backend.ip, True, False)], WEB_SLICE_PORTS)])
    wait_for(lambda: 'skiff_map_entries{map="frontends"} 2' in cluster.http(n1, "/metrics")[1], "programmed")

    def ct_entries():
        out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", f"{n1.pin}/skiff_ct"],
                             capture_output=True, text=True).stdout
        return json.loads(out) if out.strip() else []

    r = client.run("/usr/bin/python3", "-c", CLIENT, VIP, "53", "udp", "3", check=False, timeout=60)
    assert r.stdout.count(backend.ip) == 3, r.stdout
    assert len(ct_entries()) == 6  # forward + reply for three sockets
    # Idle for longer than the UDP timeout: the agent's GC removes them.
    wait_for(lambda: ct_entries() == [], "conntrack collected", timeout=30)
    # Counted when the GC pass ends, which may be a tick after its last deletion.
    wait_for(lambda: cluster.metric(n1, 'skiff_agent_conntrack_gc_deleted_total{reason="expired"}') >= 6,
             "the expired entries counted", timeout=30)


def test_terminating_endpoint_keeps_existing_connections(svc):
    a, b = svc.backends
    ports = WEB_PORTS + [{"name": "echo", "port": 9000, "protocol": "TCP"}]
    slice_ports = WEB_SLICE_PORTS + [{"name": "echo", "port": 7002, "protocol": "TCP"}]
    svc.publish(service("web", VIP, ports), slice_("web", "web-1", [(b.ip, True, False)], slice_ports))
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 3, "frontends programmed")
    # A long-lived connection to b, then b starts terminating (a takes new ones).
    conv = subprocess.Popen(["nsenter", f"--net=/run/netns/{svc.client.ns}", "--", "/usr/bin/python3", "-c", r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 9000), timeout=5)
for line in sys.stdin:
    s.sendall(line.strip().encode()); print(s.recv(64).decode(), flush=True)
""", VIP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    conv.stdin.write("before\n"); conv.stdin.flush()
    assert conv.stdout.readline().strip() == f"{b.ip} before"
    svc.publish(service("web", VIP, ports),
                slice_("web", "web-1", [(a.ip, True, False), (b.ip, False, True)], slice_ports))
    wait_for(lambda: {x[0] for x in svc.ask(svc.client, 80, "tcp", 3)} == {a.ip}, "new connections to a only")
    conv.stdin.write("after\n"); conv.stdin.flush()
    assert conv.stdout.readline().strip() == f"{b.ip} after"  # the old connection lives on
    conv.stdin.close()
    conv.wait(timeout=10)


def test_direct_connection_reusing_a_service_tuple(svc):
    """A pod reaches a backend through the VIP, then directly with the same
    source port: the second connection's replies must not be mistaken for
    the first's (a stale REPLY entry would rewrite them to the VIP)."""
    b = svc.backends[0]
    svc.web(endpoints=[(b.ip, True, False)])
    wait_for(lambda: svc.frontends(svc.nodes[0]) == 2, "frontends programmed")
    script = r"""
import socket, sys
def ask(ip, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close: no TIME_WAIT
    s.bind(("0.0.0.0", 45555)); s.settimeout(3); s.connect((ip, port)); r = s.recv(64).decode(); s.close(); return r
print(ask(sys.argv[1], 80)); print(ask(sys.argv[2], 7000))
"""
    r = svc.client.run("/usr/bin/python3", "-c", script, VIP, b.ip, check=False, timeout=30)
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(l.startswith(b.ip) for l in lines), (r.stdout, r.stderr)
