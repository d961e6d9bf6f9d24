"""Overlay mode: nodes on different subnets behind a router namespace that
has no route to any PodCIDR. Native routing cannot work there; VXLAN
(routingMode vxlan) carries pod traffic between the nodes' tunnel devices."""
import json
import select
import signal
import socket
import struct
import subprocess
import time

import pytest

from cluster_topo import Cluster, wait_for
from skiff_topo import in_ns
from test_multinode import PEER_SERVER, seen_source, serve

FWD_REMOTE_NODE = (5, 0)
FWD_TUNNEL = (19, 0)
FWD_FROM_TUNNEL = (20, 1)
FWD_FRAG_NEEDED = (21, 0)
DROP_TUNNEL_SPOOF = (136, 1)
DROP_NO_TUNNEL = (137, 0)
NODE_F_ENCAP, NODE_F_HOST = 2, 4


def routed(topo, mode="vxlan", subnets=(1, 2, 3)):
    c = Cluster(topo, n=len(subnets), subnets=list(subnets))
    if mode:
        c.agent_extra["routingMode"] = mode
    for nd in c.nodes:
        kubelet_firewall(nd)
    return c


def kubelet_firewall(node):
    """What kubelet installs on every node: packets marked 0x8000 are
    dropped. The tunnel's outer packets pass the node's netfilter, so no
    skiff mark may reach it."""
    in_ns(node.ns, "iptables", "-w", "-A", "OUTPUT", "-m", "mark", "--mark", "0x8000/0x8000", "-j", "DROP")


@pytest.fixture
def overlay(topo):
    c = routed(topo)
    c.start()
    return c


def tunnel_flags(cluster, node):
    return {cidr: flags for cidr, (_, flags) in cluster.node_map(node).items()}


def test_native_fails_on_a_routed_underlay_and_vxlan_works_after_a_switch(topo):
    c = routed(topo, mode=None)
    n1, n2, _ = c.nodes
    for nd in c.nodes:
        c.start_agent(nd)
    # Native routing needs the other nodes on the uplink's segment: the
    # routes cannot be installed, and the agent says so.
    wait_for(lambda: c.http(n1, "/healthz")[0] == 503, "native agent unhealthy")
    code, body = c.http(n1, "/healthz")
    assert "10.244.2.0/24" in body or "route" in body, body
    # Pods set up by the plugin alone cannot reach each other: the router
    # has no route to the PodCIDRs.
    a, b = n1.add_pod(conf=n1.conf(mtu=1450)), n2.add_pod(conf=n2.conf(mtu=1450))
    assert a.ping(b.ip).returncode != 0
    # The same cluster, switched to vxlan: the agents restart with the new
    # mode, the same pods reach each other.
    for nd in c.nodes:
        c.kill_agent(nd)
    c.agent_extra["routingMode"] = "vxlan"
    c.start()
    assert tunnel_flags(c, n1)["10.244.2.0/24"] == NODE_F_ENCAP
    assert a.ping(b.ip).returncode == 0


def test_agents_program_the_tunnel(overlay):
    n1, n2, n3 = overlay.nodes
    assert overlay.node_map(n1) == {
        "10.244.1.0/24": ("192.168.1.11", 1),
        "10.244.2.0/24": ("192.168.2.12", NODE_F_ENCAP),
        "10.244.3.0/24": ("192.168.3.13", NODE_F_ENCAP),
        "192.168.2.12/32": ("192.168.2.12", NODE_F_ENCAP | NODE_F_HOST),
        "192.168.3.13/32": ("192.168.3.13", NODE_F_ENCAP | NODE_F_HOST),
    }
    # The node's own traffic reaches remote PodCIDRs through the tunnel device.
    routes = json.loads(in_ns(n1.ns, "ip", "-j", "route", "show", "proto", "178").stdout)
    assert {r["dst"]: (r["dev"], r.get("gateway")) for r in routes} == {
        "10.244.2.0/24": ("skiff_vxlan", None), "10.244.3.0/24": ("skiff_vxlan", None)}
    link = json.loads(in_ns(n1.ns, "ip", "-d", "-j", "link", "show", "skiff_vxlan").stdout)[0]
    info = link["linkinfo"]["info_data"]
    assert info.get("external") is True and info["port"] == 8472, info
    assert link["mtu"] == 1450 and link["address"] == "02:73:6b:69:66:66"
    assert "NOARP" in link["flags"]
    # IPv4 only: no link-local address, so the kernel sends no router
    # solicitations or MLD reports into a device that has no node for them.
    assert link.get("inet6_addr_gen_mode") == "none", link
    v6 = json.loads(in_ns(n1.ns, "ip", "-6", "-j", "addr", "show", "dev", "skiff_vxlan").stdout)
    assert not any(a.get("addr_info") for a in v6), v6
    assert "skiff_from_tunn" in in_ns(n1.ns, "tc", "filter", "show", "dev", "skiff_vxlan", "ingress").stdout
    assert "skiff_to_tunnel" in in_ns(n1.ns, "tc", "filter", "show", "dev", "skiff_vxlan", "egress").stdout
    # Pods get the uplink's MTU less VXLAN's 50 bytes.
    assert overlay.plugin_conf(n2)["mtu"] == 1450


def test_pod_to_pod_icmp_tcp_udp_with_source_preserved(topo, overlay):
    n1, n2, n3 = overlay.nodes
    a, b, c = overlay.add_pod(n1), overlay.add_pod(n2), overlay.add_pod(n3)
    serve(topo, b)
    serve(topo, c)
    before = n1.counters()
    assert a.ping(b.ip, count=3).returncode == 0
    assert a.ping(c.ip, count=3).returncode == 0
    assert b.ping(c.ip, count=3).returncode == 0
    for dst in (b, c):
        assert seen_source(a, dst.ip, "tcp") == a.ip
        assert seen_source(a, dst.ip, "udp") == a.ip
    after = n1.counters()
    assert after.get(FWD_TUNNEL, 0) - before.get(FWD_TUNNEL, 0) >= 6
    # The replies' outer packets go from the uplink to the VXLAN socket.
    assert after.get(FWD_FROM_TUNNEL, 0) - before.get(FWD_FROM_TUNNEL, 0) >= 6
    assert after.get(FWD_REMOTE_NODE, 0) == 0, "nothing was routed natively"
    assert after.get(DROP_NO_TUNNEL, 0) == 0, "something went into the tunnel with no node to go to"


def test_node_to_remote_pod_and_pod_to_remote_node(topo, overlay):
    n1, n2, _ = overlay.nodes
    a, b = overlay.add_pod(n1), overlay.add_pod(n2)
    serve(topo, b)
    r = in_ns(n1.ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", b.ip, check=False)
    assert r.returncode == 0, r.stdout
    # The node's own address as source, carried by the tunnel both ways.
    r = in_ns(n1.ns, "/usr/bin/python3", "-c", "import socket; s = socket.create_connection(('%s', 7000), 3); "
              "print(s.recv(64).decode())" % b.ip, check=False, timeout=20)
    assert r.stdout.strip() == n1.ip, r
    # A pod reaches another node's address; the reply, from the node, and the
    # request, from the pod, both travel encapsulated (the underlay never
    # sees a pod address: the router drops them, having no route back).
    in_ns(overlay.underlay, "iptables", "-A", "FORWARD", "-s", "10.244.0.0/16", "-j", "DROP")
    in_ns(overlay.underlay, "iptables", "-A", "FORWARD", "-d", "10.244.0.0/16", "-j", "DROP")
    assert a.ping(n2.ip).returncode == 0
    assert a.ping(b.ip).returncode == 0


def test_masquerade_to_outside_the_cluster(topo, overlay):
    n1 = overlay.nodes[0]
    # A host outside the cluster, on its own subnet behind the router.
    out = topo.pod_ns()
    port = "o" + out[-12:]
    in_ns(out, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", port[:15], "netns", overlay.underlay)
    in_ns(overlay.underlay, "ip", "link", "set", port[:15], "master", "br0", "up")
    in_ns(overlay.underlay, "ip", "addr", "add", "192.168.0.1/24", "dev", "br0")
    in_ns(out, "ip", "addr", "add", "192.168.0.100/24", "dev", "eth0")
    in_ns(out, "ip", "link", "set", "eth0", "up")
    in_ns(out, "ip", "route", "add", "default", "via", "192.168.0.1")
    topo.spawn(out, "/usr/bin/python3", "-c", PEER_SERVER)
    wait_for(lambda: "LISTEN" in in_ns(out, "ss", "-ltn", "sport = :7000", check=False).stdout, "outside server")
    a = overlay.add_pod(n1)
    assert seen_source(a, "192.168.0.100", "tcp") == n1.ip
    assert seen_source(a, "192.168.0.100", "udp") == n1.ip


def read_line(proc, timeout):
    """One line of proc's stdout, or "" when none comes within timeout."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def vxlan_frame(vni, inner_src, inner_dst, dport, payload):
    """A VXLAN payload: header, inner Ethernet to the tunnel MAC, IPv4, UDP."""
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(inner_src), socket.inet_aton(inner_dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = bytes.fromhex("02736b696666") + bytes.fromhex("020000000001") + b"\x08\x00"
    return struct.pack("!II", 0x08000000, vni << 8) + eth + ip + udp


SEND_VXLAN = r"""
import socket, sys
src, dst, frame = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
for _ in range(3):
    s.sendto(frame, (dst, 8472))
"""

UDP_SINK = r"""
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7100))
while True:
    data, peer = u.recvfrom(2048)
    print(peer[0], data.decode(errors="replace"), flush=True)
"""


def test_spoofed_tunnel_packets_are_dropped_and_counted(topo, overlay):
    n1, n2, n3 = overlay.nodes
    a = overlay.add_pod(n1)
    sink = subprocess.Popen(["nsenter", f"--net=/run/netns/{a.ns}", "--", "/usr/bin/python3", "-c", UDP_SINK],
                            stdout=subprocess.PIPE, text=True)
    topo.procs.append(sink)
    wait_for(lambda: "7100" in in_ns(a.ns, "ss", "-lun", check=False).stdout, "sink listening")

    def send(from_ns, src, inner_src, vni=1, tag="x"):
        frame = vxlan_frame(vni, inner_src, a.ip, 7100, tag.encode())
        in_ns(from_ns, "/usr/bin/python3", "-c", SEND_VXLAN, src, n1.ip, frame.hex())

    before = n1.counters().get(DROP_TUNNEL_SPOOF, 0)
    # From the router: claims a node-2 pod address; node-2 did not send it.
    send(overlay.underlay, "192.168.1.1", "10.244.2.77", tag="router")
    # From node-3: claims node-2's PodCIDR.
    send(n3.ns, n3.ip, "10.244.2.78", tag="node3-as-node2")
    # From node-2, with another cluster's VNI.
    send(n2.ns, n2.ip, "10.244.2.79", vni=7, tag="wrong-vni")
    # From node-2, for its own PodCIDR: the genuine article, delivered.
    send(n2.ns, n2.ip, "10.244.2.80", tag="genuine")
    line = read_line(sink, 20).split()
    assert line == ["10.244.2.80", "genuine"], line
    wait_for(lambda: n1.counters().get(DROP_TUNNEL_SPOOF, 0) - before >= 9, "spoofed packets counted")
    assert n1.counters().get(DROP_TUNNEL_SPOOF, 0) - before == 9
    sink.kill()
    rest = sink.communicate(timeout=10)[0]
    assert all(tag in ("", "genuine") for tag in (ln.split()[-1] for ln in rest.splitlines() if ln)), rest


def test_cross_subnet_encapsulates_only_toward_the_far_node(topo):
    c = routed(topo, mode="vxlan-cross-subnet", subnets=(1, 1, 3))
    c.start()
    n1, n2, n3 = c.nodes
    assert tunnel_flags(c, n1)["10.244.2.0/24"] == 0
    assert tunnel_flags(c, n1)["10.244.3.0/24"] == NODE_F_ENCAP
    assert c.skiff_routes(n1) == {"10.244.2.0/24": "192.168.1.12", "10.244.3.0/24": None}
    a, b, far = c.add_pod(n1), c.add_pod(n2), c.add_pod(n3)
    cnt = n1.counters()
    assert a.ping(b.ip, count=3).returncode == 0
    after_near = n1.counters()
    assert after_near.get(FWD_REMOTE_NODE, 0) - cnt.get(FWD_REMOTE_NODE, 0) >= 3
    assert after_near.get(FWD_TUNNEL, 0) == cnt.get(FWD_TUNNEL, 0)
    assert a.ping(far.ip, count=3).returncode == 0
    after_far = n1.counters()
    assert after_far.get(FWD_TUNNEL, 0) - after_near.get(FWD_TUNNEL, 0) >= 3
    assert after_far.get(FWD_REMOTE_NODE, 0) == after_near.get(FWD_REMOTE_NODE, 0)
    # node-2, on node-1's segment, reaches the far node encapsulated too.
    assert b.ping(far.ip).returncode == 0


BULK_SERVER = r"""
import socket
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 7200)); t.listen(4)
while True:
    c, _ = t.accept()
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.close()
    print(n, flush=True)
"""

BULK_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 7200), timeout=20)
s.sendall(b"x" * int(sys.argv[2]))
s.close()
"""


def test_path_mtu_discovery_through_a_smaller_underlay_link(topo):
    c = routed(topo)
    n1, n2, n3 = c.nodes
    # One MTU for the whole cluster's pods, but node-3 sits behind a smaller
    # link: the router asks node-1 to send smaller outer packets, and
    # node-1 tells its pod.
    c.agent_extra["mtu"] = 1450
    in_ns(c.underlay, "ip", "link", "set", n3.port, "mtu", "1300")
    in_ns(n3.ns, "ip", "link", "set", "up0", "mtu", "1300")
    c.start()
    assert c.plugin_conf(n3)["mtu"] == 1450 and c.plugin_conf(n1)["mtu"] == 1450
    a, far = c.add_pod(n1), c.add_pod(n3)
    # Datagrams with DF: the first big one finds the small link (the
    # router's ICMP teaches node-1 the path MTU); node-1 then answers the
    # pod itself, and what fits gets through.
    for _ in range(3):
        a.run("ping", "-M", "do", "-s", "1400", "-c", "1", "-W", "1", far.ip, check=False)
    assert n1.counters().get(FWD_FRAG_NEEDED, 0) > 0
    assert "mtu 1250" in a.run("ip", "route", "get", far.ip).stdout
    assert a.run("ping", "-M", "do", "-s", str(1250 - 28), "-c", "2", "-W", "2", far.ip,
                 check=False).returncode == 0
    # A TCP stream from a fresh pod: its segments shrink to what fits.
    a = c.add_pod(n1)
    sink = subprocess.Popen(["nsenter", f"--net=/run/netns/{far.ns}", "--", "/usr/bin/python3", "-c", BULK_SERVER],
                            stdout=subprocess.PIPE, text=True)
    topo.procs.append(sink)
    wait_for(lambda: "LISTEN" in in_ns(far.ns, "ss", "-ltn", "sport = :7200", check=False).stdout, "bulk server")
    before = n1.counters().get(FWD_FRAG_NEEDED, 0)
    r = a.run("/usr/bin/python3", "-c", BULK_CLIENT, far.ip, str(2 * 1024 * 1024), check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert read_line(sink, 20).strip() == str(2 * 1024 * 1024)
    assert n1.counters().get(FWD_FRAG_NEEDED, 0) > before
    # The pod learnt the path's MTU: the underlay's less the encapsulation.
    assert "mtu 1250" in a.run("ip", "route", "get", far.ip).stdout


# A probe stream stopped with SIGINT once the disruption is over; ping
# then prints its summary.
PROBE = ["ping", "-c", "100000", "-i", "0.05", "-W", "1"]


def stop_probe(probe):
    time.sleep(0.5)
    probe.send_signal(signal.SIGINT)
    out, _ = probe.communicate(timeout=30)
    return out


def test_agents_killed_and_restarted_under_traffic(topo, overlay):
    n1, n2, _ = overlay.nodes
    a, b = overlay.add_pod(n1), overlay.add_pod(n2)
    serve(topo, b)
    probe = subprocess.Popen(["nsenter", f"--net=/run/netns/{a.ns}", "--", *PROBE, b.ip],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    for nd in (n1, n2):
        overlay.kill_agent(nd)
    assert seen_source(a, b.ip, "tcp") == a.ip  # new connections with both agents gone
    for nd in (n1, n2):
        overlay.start_agent(nd)
    for nd in (n1, n2):
        wait_for(lambda nd=nd: overlay.http(nd, "/healthz")[0] == 200, f"{nd.name} healthy again")
    overlay.kill_agent(n1, sig=15)  # and a clean stop and start
    overlay.start_agent(n1)
    wait_for(lambda: overlay.http(n1, "/healthz")[0] == 200, "node-1 healthy after the restart")
    out = stop_probe(probe)
    assert " 0% packet loss" in out, out
    wait_for(lambda: overlay.http(n1, "/healthz")[0] == 200, "node-1 healthy again")
    assert overlay.metric(n1, 'skiff_agent_writes_total{target="node_map",op="upsert"}') == 0
    assert overlay.metric(n1, 'skiff_agent_writes_total{target="route",op="upsert"}') == 0


def test_switching_modes_on_a_running_cluster_loses_nothing(topo):
    """One L2 segment, where both modes work: the agents are restarted one
    at a time into vxlan and back, under traffic."""
    c = Cluster(topo, n=2)
    for nd in c.nodes:
        kubelet_firewall(nd)
    c.start()
    n1, n2 = c.nodes
    a, b = c.add_pod(n1), c.add_pod(n2)
    probe = subprocess.Popen(["nsenter", f"--net=/run/netns/{a.ns}", "--", *PROBE, b.ip],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    for mode, flags in (("vxlan", NODE_F_ENCAP), ("native", 0)):
        c.agent_extra["routingMode"] = mode
        for nd, other in ((n1, n2), (n2, n1)):
            c.kill_agent(nd, sig=15)
            c.start_agent(nd)
            wait_for(lambda nd=nd, other=other, flags=flags:
                     tunnel_flags(c, nd).get(other.pod_cidr) == flags, f"{nd.name} in {mode} mode")
            time.sleep(0.5)
        before = n1.counters()
        assert a.ping(b.ip, count=3).returncode == 0
        after = n1.counters()
        key = FWD_TUNNEL if mode == "vxlan" else FWD_REMOTE_NODE
        assert after.get(key, 0) - before.get(key, 0) >= 3, (mode, after)
    out = stop_probe(probe)
    assert " 0% packet loss" in out, out


def test_skiffctl_traces_the_encapsulation(overlay):
    from test_skiffctl_trace import ctl
    n1, n2, _ = overlay.nodes
    a, b = overlay.add_pod(n1), overlay.add_pod(n2)
    _, t = ctl(n1, "trace", "--from", f"{a.ip}:40000", "--to", f"{b.ip}:80")
    assert t["verdict"] == "redirect" and t["reason"] == "fwd-tunnel", t
    assert t["redirect"]["device"] == "skiff_vxlan" and t["redirect"]["into"] == "device egress"
    assert t["encapsulation"] == {"type": "vxlan", "vni": 1, "remote": n2.ip,
                                  "outer": {"src": n1.ip, "dst": n2.ip, "dport": 8472}}, t
    assert t["packet_out"]["src"] == a.ip and t["packet_out"]["dst"] == b.ip
    # The node map says how each node is reached.
    _, nodes = ctl(n1, "node", "list")
    flags = {e["pod_cidr"] if "pod_cidr" in e else e.get("cidr"): e["flags"] for e in nodes}
    assert "encap" in flags["10.244.2.0/24"], nodes
    assert "host" in flags["192.168.2.12/32"], nodes
