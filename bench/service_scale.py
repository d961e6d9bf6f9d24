#!/usr/bin/env python3
"""Control-plane speed of skiff-agent at scale: N services x 3 endpoints.

Measures, for each N, in one node namespace with a real agent:
  - program: time to program all N services into an empty datapath, as the
    agent reports it (skiff_agent_last_reconcile_duration_seconds, the map
    writes) and wall clock from writing the source file to all frontends
    being programmed (adds reading and parsing the file);
  - change:  the same for changing one service's endpoints at that size;
  - memory:  the agent's resident set size after programming.
Writes JSON to stdout (or --out). Everything lives in namespaces and a
pin dir created here and removed at the end.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))

from cluster_topo import Cluster, node_object, wait_for  # noqa: E402
from skiff_topo import Topology  # noqa: E402


def services(n, generation=0):
    items = []
    for i in range(n):
        vip = f"10.96.{i // 250}.{i % 250 + 1}"
        items.append({"kind": "Service", "metadata": {"name": f"s{i}", "namespace": "bench"},
                      "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        eps = [{"addresses": [f"10.245.{(i * 3 + k) // 250 % 250}.{(i * 3 + k) % 250 + 1}"]} for k in range(3)]
        if i == 0 and generation:  # the one change: a different third endpoint
            eps[2] = {"addresses": [f"10.246.0.{generation}"]}
        items.append({"kind": "EndpointSlice", "addressType": "IPv4",
                      "metadata": {"name": f"s{i}-1", "namespace": "bench",
                                   "labels": {"kubernetes.io/service-name": f"s{i}"}},
                      "endpoints": eps, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    return items


def metric(cluster, node, name):
    v = cluster.metric(node, name)
    return v if v is not None else -1


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def agent_pid(cluster, node):
    """The agent process itself (nsenter execs it, so the Popen pid is the agent)."""
    return cluster.agents[node.ns].pid


def run(n):
    topo = Topology()
    try:
        cluster = Cluster(topo, n=1)
        # Measure changes, not the periodic full resync.
        cluster.agent_config = (lambda orig: lambda nd: {**orig(nd), "resyncSeconds": 3600})(cluster.agent_config)
        node = cluster.nodes[0]
        base = [node_object(node.name, node.ip, node.pod_cidr)]
        cluster.write_source(base)
        cluster.start()
        # Program N services from empty.
        start = time.monotonic()
        cluster.write_source(base + services(n))
        wait_for(lambda: metric(cluster, node, 'skiff_map_entries{map="frontends"}') == n,
                 f"{n} frontends", timeout=300, interval=0.01)
        wall = time.monotonic() - start
        program = metric(cluster, node, "skiff_agent_last_reconcile_duration_seconds")
        writes = metric(cluster, node, 'skiff_agent_writes_total{target="services",op="upsert"}')
        rss = rss_kib(agent_pid(cluster, node))
        # One change at that size (repeat, keep the median).
        changes, change_walls, phases = [], [], []
        for g in range(1, 6):
            before = metric(cluster, node, 'skiff_agent_reconciles_total{result="ok"}')
            start = time.monotonic()
            cluster.write_source(base + services(n, generation=g))
            wait_for(lambda: metric(cluster, node, 'skiff_agent_reconciles_total{result="ok"}') > before,
                     "reconcile of one change", timeout=120, interval=0.005)
            change_walls.append(time.monotonic() - start)
            changes.append(metric(cluster, node, "skiff_agent_last_reconcile_duration_seconds"))
            phases.append((metric(cluster, node, 'skiff_agent_last_services_duration_seconds{phase="plan"}'),
                           metric(cluster, node, 'skiff_agent_last_services_duration_seconds{phase="apply"}')))
        med = lambda v: sorted(v)[len(v) // 2]
        return {"services": n, "endpoints_per_service": 3,
                "program_reconcile_s": program, "program_wall_s": wall, "program_map_writes": writes,
                "change_reconcile_s": med(changes), "change_wall_s": med(change_walls),
                "change_reconcile_s_min_max": [min(changes), max(changes)],
                "change_plan_apply_s": phases[len(phases) // 2],
                "agent_rss_mib": rss / 1024}
    finally:
        topo.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1,100,1000,10000")
    ap.add_argument("--out")
    args = ap.parse_args()
    results = [run(int(n)) for n in args.sizes.split(",")]
    text = json.dumps(results, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
