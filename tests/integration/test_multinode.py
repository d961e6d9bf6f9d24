"""Three nodes on one L2 segment, an agent per node: pods reach pods on
other nodes with their own source IPs, routed by skiff's programs."""
import json
import subprocess
import time

import pytest

from cluster_topo import Cluster, node_object, wait_for
from skiff_topo import in_ns

FWD_REMOTE_NODE = (5, 0)
FWD_LOCAL_POD_INGRESS = (1, 1)

# A tiny TCP+UDP server answering each client with the source address it saw.
PEER_SERVER = r"""
import socket, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 7000)); t.listen(64)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7001))
def udp():
    while True:
        data, peer = u.recvfrom(2048); u.sendto(peer[0].encode(), peer)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, peer = t.accept(); c.sendall(peer[0].encode()); c.close()
"""

PEER_CLIENT = r"""
import socket, sys
ip, proto = sys.argv[1], sys.argv[2]
if proto == "tcp":
    s = socket.create_connection((ip, 7000), timeout=3); print(s.recv(64).decode())
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
    for _ in range(5):
        s.sendto(b"hi", (ip, 7001))
        try:
            print(s.recvfrom(64)[0].decode()); break
        except socket.timeout:
            pass
"""


def seen_source(pod, ip, proto):
    r = pod.run("/usr/bin/python3", "-c", PEER_CLIENT, ip, proto, check=False, timeout=20)
    return r.stdout.strip()


@pytest.fixture
def cluster(topo):
    c = Cluster(topo, n=3)
    c.start()
    return c


def serve(topo, pod):
    topo.spawn(pod.ns, "/usr/bin/python3", "-c", PEER_SERVER)
    wait_for(lambda: in_ns(pod.ns, "ss", "-ltn", "sport = :7000", check=False).stdout.count("LISTEN"),
             "peer server")


def test_agents_program_node_map_routes_and_conflist(cluster):
    n1, n2, n3 = cluster.nodes
    nm = cluster.node_map(n1)
    assert nm == {"10.244.1.0/24": ("192.168.1.11", 1), "10.244.2.0/24": ("192.168.1.12", 0),
                  "10.244.3.0/24": ("192.168.1.13", 0)}
    assert cluster.skiff_routes(n1) == {"10.244.2.0/24": "192.168.1.12", "10.244.3.0/24": "192.168.1.13"}
    conf = cluster.plugin_conf(n2)
    assert conf["podCIDR"] == "10.244.2.0/24" and conf["type"] == "skiff" and conf["pinPath"] == n2.pin
    code, body = cluster.http(n1, "/healthz")
    assert code == 200 and json.loads(body)["podCIDR"] == "10.244.1.0/24"
    assert "skiff_uplink" in in_ns(n1.ns, "tc", "filter", "show", "dev", "up0", "ingress").stdout


def test_cross_node_icmp_tcp_udp_with_source_preserved(topo, cluster):
    n1, n2, n3 = cluster.nodes
    a, b, c = cluster.add_pod(n1), cluster.add_pod(n2), cluster.add_pod(n3)
    assert a.ip.startswith("10.244.1.") and b.ip.startswith("10.244.2.") and c.ip.startswith("10.244.3.")
    serve(topo, b)
    serve(topo, c)
    before_out, before_in = n1.counters().get(FWD_REMOTE_NODE, 0), n2.counters().get(FWD_LOCAL_POD_INGRESS, 0)
    assert a.ping(b.ip, count=3).returncode == 0
    assert a.ping(c.ip, count=3).returncode == 0
    assert b.ping(c.ip, count=3).returncode == 0
    for dst in (b, c):
        assert seen_source(a, dst.ip, "tcp") == a.ip  # no NAT between pods
        assert seen_source(a, dst.ip, "udp") == a.ip
    # The programs carried it: out of node-1's pod via the uplink redirect,
    # into node-2's pod from its uplink program.
    assert n1.counters().get(FWD_REMOTE_NODE, 0) - before_out >= 6
    assert n2.counters().get(FWD_LOCAL_POD_INGRESS, 0) - before_in >= 3


def test_host_to_remote_pod(cluster):
    n1, n2, _ = cluster.nodes
    b = cluster.add_pod(n2)
    r = in_ns(n1.ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", b.ip, check=False)
    assert r.returncode == 0, r.stdout
    # ... and a pod to another node's own address (through the stack).
    a = cluster.add_pod(n1)
    assert a.ping(n2.ip).returncode == 0


def test_node_removed_changed_and_added(cluster):
    n1, n2, n3 = cluster.nodes
    objs = {nd.name: node_object(nd.name, nd.ip, nd.pod_cidr) for nd in cluster.nodes}
    # node-3 leaves
    cluster.write_source([objs["node-1"], objs["node-2"]])
    wait_for(lambda: "10.244.3.0/24" not in cluster.node_map(n1), "node-3 gone from node-1's map")
    wait_for(lambda: "10.244.3.0/24" not in cluster.skiff_routes(n1), "node-3 route gone")
    assert "10.244.2.0/24" in cluster.node_map(n1) and "10.244.2.0/24" in cluster.skiff_routes(n1)
    # node-2 changes address
    cluster.write_source([objs["node-1"], node_object("node-2", "192.168.1.22", "10.244.2.0/24")])
    wait_for(lambda: cluster.node_map(n1).get("10.244.2.0/24", ("",))[0] == "192.168.1.22", "node-2 readdressed")
    wait_for(lambda: cluster.skiff_routes(n1).get("10.244.2.0/24") == "192.168.1.22", "route via new address")
    # everybody back
    cluster.write_source(list(objs.values()))
    wait_for(lambda: cluster.node_map(n1).get("10.244.3.0/24") == ("192.168.1.13", 0), "node-3 back")
    wait_for(lambda: cluster.skiff_routes(n1) == {"10.244.2.0/24": "192.168.1.12", "10.244.3.0/24": "192.168.1.13"},
             "routes restored")


def test_agent_killed_under_traffic_nothing_lost_nothing_flushed(topo, cluster):
    n1, n2, _ = cluster.nodes
    a, b = cluster.add_pod(n1), cluster.add_pod(n2)
    serve(topo, b)
    # A steady probe stream across the kill and the restart.
    probe = subprocess.Popen(["nsenter", f"--net=/run/netns/{a.ns}", "--", "ping", "-c", "60", "-i", "0.05",
                              "-W", "1", b.ip], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    cluster.kill_agent(n1)
    cluster.kill_agent(n2)
    # New connections while both agents are dead.
    assert seen_source(a, b.ip, "tcp") == a.ip
    assert a.ping(b.ip).returncode == 0
    cluster.start_agent(n1)
    cluster.start_agent(n2)
    out, _ = probe.communicate(timeout=60)
    assert " 0% packet loss" in out, out
    # The restarted agents found everything in place and wrote nothing.
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 200, "node-1 agent healthy again")
    wait_for(lambda: cluster.http(n2, "/healthz")[0] == 200, "node-2 agent healthy again")
    for nd in (n1, n2):
        assert cluster.metric(nd, 'skiff_agent_writes_total{target="node_map",op="upsert"}') == 0
        assert cluster.metric(nd, 'skiff_agent_writes_total{target="node_map",op="delete"}') == 0
        assert cluster.metric(nd, 'skiff_agent_writes_total{target="route",op="upsert"}') == 0


def test_bad_source_keeps_working_state(topo, cluster):
    n1, n2, n3 = cluster.nodes
    a, b = cluster.add_pod(n1), cluster.add_pod(n2)
    before = cluster.node_map(n1)
    with open(cluster.source, "w") as f:
        f.write("{ this is not json")
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 503, "agent reports the broken source")
    code, body = cluster.http(n1, "/healthz")
    assert "not valid JSON" in json.loads(body)["sourceError"]
    assert cluster.node_map(n1) == before
    assert a.ping(b.ip).returncode == 0
    # Invalid, address-less and overlapping nodes are skipped, the rest stays.
    good = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in cluster.nodes]
    bad = [node_object("bad-cidr", "192.168.1.50", "10.244.999.0/24"),
           node_object("no-address", None, "10.244.50.0/24"),
           node_object("overlap", "192.168.1.51", "10.244.2.0/23"),
           node_object("outside", "192.168.1.52", "10.99.0.0/24")]
    cluster.write_source(good + bad)
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 200, "agent healthy with the fixed source")
    skipped = json.loads(cluster.http(n1, "/healthz")[1])["skipped"]
    assert len(skipped) == 4, skipped
    assert any("bad-cidr" in s for s in skipped) and any("no InternalIP" in s for s in skipped)
    assert any("overlaps" in s for s in skipped) and any("outside clusterCIDR" in s for s in skipped)
    assert cluster.node_map(n1) == before
    assert cluster.metric(n1, "skiff_agent_skipped_objects") == 4
    assert a.ping(b.ip).returncode == 0


def test_metrics_endpoint(cluster):
    n1 = cluster.nodes[0]
    cluster.add_pod(n1)
    code, body = cluster.http(n1, "/metrics")
    assert code == 200
    assert 'skiff_map_entries{map="nodes"} 3' in body
    assert 'skiff_map_entries{map="endpoints"} 1' in body
    assert "skiff_agent_reconciles_total{result=\"ok\"}" in body
    assert "# TYPE skiff_datapath_packets_total counter" in body


def test_status_follows_the_agent(topo):
    cluster = Cluster(topo, n=2)
    n1, n2 = cluster.nodes
    cluster.agent_config = (lambda orig: (lambda nd: {**orig(nd), "cniVersion": "1.1.0"}))(cluster.agent_config)
    cluster.start()
    conf = cluster.plugin_conf(n1)
    assert conf["requireAgent"] is True and conf["cniVersion"] == "1.1.0"
    rc, out, err = n1.cni("STATUS", container_id=None, netns=None, ifname=None, conf=conf)
    assert rc == 0, (out, err)
    # node-1 drops out of the cluster: its agent unprograms the PodCIDR and
    # the plugin reports the node not ready for pods.
    cluster.write_source([node_object(n2.name, n2.ip, n2.pod_cidr)])
    wait_for(lambda: "10.244.1.0/24" not in cluster.node_map(n1), "node-1's own PodCIDR unprogrammed")
    rc, out, _ = n1.cni("STATUS", container_id=None, netns=None, ifname=None, conf=conf)
    assert rc != 0 and out["code"] == 50 and "not programmed" in out["msg"]
