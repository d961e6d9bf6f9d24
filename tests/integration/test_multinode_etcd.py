"""Agents sharing a real etcd: PodCIDRs claimed atomically, nodes joining
and leaving (lease expiry) while traffic runs."""
import json
import subprocess

import pytest

from cluster_topo import Cluster, wait_for
from skiff_topo import in_ns
from test_multinode import seen_source, serve


@pytest.fixture
def cluster(topo):
    c = Cluster(topo, n=3, etcd=True, lease_ttl=3)
    c.start()
    for nd in c.nodes:  # converged: every node knows every PodCIDR
        wait_for(lambda nd=nd: len(c.node_map(nd)) == 3, f"{nd.name} sees all nodes")
    return c


def test_pod_cidrs_claimed_and_cross_node_traffic(topo, cluster):
    cidrs = [nd.pod_cidr for nd in cluster.nodes]
    assert len(set(cidrs)) == 3 and all(c.startswith("10.244.") and c.endswith("/24") for c in cidrs)
    pods = [cluster.add_pod(nd) for nd in cluster.nodes]
    for a in pods:
        for b in pods:
            if a is not b:
                assert a.ping(b.ip).returncode == 0, f"{a.ip} -> {b.ip}"
    serve(topo, pods[2])
    for proto in ("tcp", "udp"):
        assert seen_source(pods[0], pods[2].ip, proto) == pods[0].ip  # no NAT


def test_restarted_agent_keeps_its_pod_cidr(cluster):
    n1 = cluster.nodes[0]
    before = n1.pod_cidr
    cluster.kill_agent(n1)
    cluster.start_agent(n1)
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 200, "agent back")
    assert cluster.plugin_conf(n1)["podCIDR"] == before


def test_node_joins_and_leaves_while_traffic_runs(topo, cluster):
    n1, n2, _ = cluster.nodes
    a, b = cluster.add_pod(n1), cluster.add_pod(n2)
    probe = subprocess.Popen(["nsenter", f"--net=/run/netns/{a.ns}", "--", "ping", "-c", "120", "-i", "0.05",
                              "-W", "1", b.ip], stdout=subprocess.PIPE, text=True)
    # A fourth node joins.
    n4 = cluster.add_node(4)
    cluster.start([n4])
    wait_for(lambda: n4.pod_cidr in cluster.node_map(n1), "node-1 learns node-4")
    d = cluster.add_pod(n4)
    assert a.ping(d.ip).returncode == 0
    # It dies: once its lease expires the others forget it.
    cluster.kill_agent(n4)
    wait_for(lambda: n4.pod_cidr not in cluster.node_map(n1), "node-4's lease expired on node-1", timeout=30)
    wait_for(lambda: n4.pod_cidr not in cluster.skiff_routes(n2), "node-4's route gone on node-2", timeout=30)
    out, _ = probe.communicate(timeout=60)
    assert " 0% packet loss" in out, out


def test_etcd_unreachable_keeps_state_and_recovers(topo, cluster):
    n1, n2, _ = cluster.nodes
    a, b = cluster.add_pod(n1), cluster.add_pod(n2)
    before = cluster.node_map(n1)
    cluster.etcd.proc.kill()
    cluster.etcd.proc.wait()
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 503, "agent notices etcd is gone", timeout=30)
    assert cluster.node_map(n1) == before  # nothing wiped
    assert a.ping(b.ip).returncode == 0
    # etcd back (same data dir): agents re-register and become healthy.
    from cluster_topo import Etcd
    cluster.etcd = Etcd(topo, cluster.underlay, "192.168.1.1")
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 200, "agent healthy again", timeout=30)
    assert cluster.node_map(n1) == before


def test_services_from_etcd(topo, cluster):
    import base64
    from test_services import SERVER, CLIENT, service, slice_, WEB_PORTS, WEB_SLICE_PORTS, VIP
    n1, n2, n3 = cluster.nodes
    backend = cluster.add_pod(n2)
    topo.spawn(backend.ns, "/usr/bin/python3", "-c", SERVER, backend.ip)
    wait_for(lambda: "LISTEN" in in_ns(backend.ns, "ss", "-ltn", "sport = :7000", check=False).stdout, "server")
    client = cluster.add_pod(n1)

    def put(key, obj):
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                           "value": base64.b64encode(json.dumps(obj).encode()).decode()})
        in_ns(cluster.underlay, "curl", "-s", "-X", "POST", f"{cluster.etcd.url}/v3/kv/put", "-d", body)

    put(f"{cluster.etcd_prefix}/services/default/web", service("web", VIP, WEB_PORTS))
    put(f"{cluster.etcd_prefix}/endpointslices/default/web-1",
        slice_("web", "web-1", [(backend.ip, True, False)], WEB_SLICE_PORTS))
    # The two puts may reach the agent in two passes: wait for the backends
    # (one per slice port) too.
    wait_for(lambda: all(m in cluster.http(n1, "/metrics")[1] for m in
                         ('skiff_map_entries{map="frontends"} 2', 'skiff_map_entries{map="backends"} 2')),
             "services programmed")
    for proto, port in (("tcp", 80), ("udp", 53)):
        r = client.run("/usr/bin/python3", "-c", CLIENT, VIP, str(port), proto, "5", check=False, timeout=60)
        assert [line.split() for line in r.stdout.splitlines()] == [[backend.ip, client.ip]] * 5, r.stdout
