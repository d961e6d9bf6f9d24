"""The agent under a flood of objects: memory is given back once the flood
is withdrawn, and a source over maxObjects is not applied (the datapath
keeps what it has, /healthz and metrics say why)."""
import json
import os

from cluster_topo import Cluster, node_object, wait_for

FLOOD = 100_000


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def write_list(path, items_json):
    """Writes a List from pre-serialised items (fast for a hundred thousand)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write('{"apiVersion": "v1", "kind": "List", "items": [')
        f.write(",".join(items_json))
        f.write("]}")
    os.rename(tmp, path)


def bogus_service(i):
    # An invalid ClusterIP: parsed, planned, skipped and reported, like a
    # flood of junk from a broken controller.
    return ('{"apiVersion":"v1","kind":"Service","metadata":{"name":"flood-%d","namespace":"flood",'
            '"creationTimestamp":"2024-01-01T00:00:00Z","labels":{"app":"flood-%d"}},'
            '"spec":{"type":"ClusterIP","clusterIP":"10.96.%d.bogus","ports":[{"name":"http","port":80,'
            '"targetPort":8080,"protocol":"TCP"}]}}' % (i, i, i % 256))


def test_memory_is_given_back_after_a_flood(topo):
    cluster = Cluster(topo, n=1)
    cluster.agent_extra = {"maxObjects": 200_000}
    n1 = cluster.nodes[0]
    cluster.start()
    agent = cluster.agents[n1.ns]
    with open(f"/proc/{agent.pid}/comm") as f:
        assert f.read().strip() == "skiff-agent"  # nsenter execs the agent: its pid is ours
    base = [json.dumps(node_object(n1.name, n1.ip, n1.pod_cidr))]
    wait_for(lambda: cluster.metric(n1, 'skiff_agent_reconciles_total{result="ok"}'), "first reconcile")
    idle = vm_kib(agent.pid, "VmRSS")

    write_list(cluster.source, base + [bogus_service(i) for i in range(FLOOD)])
    wait_for(lambda: cluster.metric(n1, "skiff_agent_skipped_objects") == FLOOD, "the flood planned", timeout=60)
    peak = vm_kib(agent.pid, "VmRSS")
    assert peak > idle + 100 * 1024, (idle, peak)  # the flood did take memory (KiB)
    assert cluster.metric(n1, "skiff_agent_source_objects") == FLOOD + 1
    log = open(os.path.join(topo.tmp, n1.ns, "agent.log")).read()
    assert log.count("flood/flood-") <= 20, "a flood of skipped objects is logged in full"

    write_list(cluster.source, base)
    wait_for(lambda: cluster.metric(n1, "skiff_agent_skipped_objects") == 0, "the flood withdrawn", timeout=30)
    # The trim follows the reconcile that dropped the flood (and is counted
    # once malloc_trim() returned): wait for it, then look at the RSS.
    wait_for(lambda: cluster.metric(n1, "skiff_agent_memory_trims_total") >= 1, "the memory trim", timeout=30)
    # Given back, not merely free inside the process.
    try:
        wait_for(lambda: vm_kib(agent.pid, "VmRSS") < peak / 2, "RSS back under half the peak", timeout=10)
    finally:
        print(f"VmRSS idle {idle} KiB, peak {peak} KiB, after {vm_kib(agent.pid, 'VmRSS')} KiB")
    code, _ = cluster.http(n1, "/healthz")
    assert code == 200


def test_source_over_max_objects_is_not_applied(topo):
    cluster = Cluster(topo, n=2)
    cluster.agent_extra = {"maxObjects": 10}
    n1, n2 = cluster.nodes
    cluster.start()
    nodes = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in cluster.nodes]
    wait_for(lambda: cluster.skiff_routes(n1) == {n2.pod_cidr: n2.ip}, "route to node-2")
    # Over the limit, with node-2 readdressed: nothing of it is applied.
    moved = [node_object(n2.name, "192.168.1.99", n2.pod_cidr) if o["metadata"]["name"] == n2.name else o
             for o in nodes]
    flood = [json.loads(bogus_service(i)) for i in range(9)]
    cluster.write_source(moved + flood)  # 11 objects
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 503, "the limit reported")
    health = json.loads(cluster.http(n1, "/healthz")[1])
    assert "11 objects" in health["objectLimitError"] and "maxObjects 10" in health["objectLimitError"], health
    assert health["objects"] == 11 and health["maxObjects"] == 10
    assert cluster.metric(n1, "skiff_agent_source_over_limit") == 1
    assert cluster.metric(n1, "skiff_agent_snapshots_refused_total") == 1
    assert cluster.skiff_routes(n1) == {n2.pod_cidr: n2.ip}, "the datapath kept what it had"
    assert cluster.metric(n1, "skiff_agent_skipped_objects") == 0, "the refused snapshot was planned"
    log = open(os.path.join(topo.tmp, n1.ns, "agent.log")).read()
    assert "more than maxObjects 10" in log
    # Back under the limit: applied.
    cluster.write_source(moved + flood[:5])
    wait_for(lambda: cluster.http(n1, "/healthz")[0] == 200, "healthy again")
    wait_for(lambda: cluster.skiff_routes(n1) == {n2.pod_cidr: "192.168.1.99"}, "the new snapshot applied")
    assert cluster.metric(n1, "skiff_agent_source_over_limit") == 0
