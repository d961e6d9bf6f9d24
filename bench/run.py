#!/usr/bin/env python3
"""skiff benchmark suite: the one entry point.

Builds the setups side by side in network namespaces (the physical limit:
veth pair / bare underlay; the veth floor across nodes: pods on veth pairs
forwarded by a minimal tc program, bench/floor/veth_floor.c; the reference
bridge CNI plugin + host-local + ipMasq + br_netfilter + kube-proxy-format
iptables chains; skiff with its agents) and one external host with a leg on
each setup's underlay, then
measures, interleaved A/B (the order of the setups rotates every
repetition), at least 3 repetitions:

  pod -> pod same node, pod -> pod across nodes, pod -> ClusterIP with the
  backend on the same node and on the other node, pod -> external host
  (masquerade: iptables MASQUERADE vs skiff's eBPF SNAT; the limit is the
  node talking to the external host over the same kind of underlay):
      TCP stream (iperf3, 1 and 4 flows), TCP request/response rate and
      round-trip p50/p99 (sockperf ping-pong), connection rate (wrk, one
      request per connection, server closes first);
  CNI ADD/DEL latency and pods per second, skiff vs the bridge plugin;
  service scale: pod -> ClusterIP connection rate and RR with N services
      programmed (iptables chains vs skiff maps), the iptables install time
      and the time of one change (kube-proxy partial and full sync).

Writes bench/results/results.json, results.md and PNG plots. Progress goes
to stderr. Everything it creates lives in namespaces, pin dirs and a temp
dir removed in `finally`.

    sudo python3 bench/run.py            # full, ~31 min (installing 10,000 iptables services alone: ~4 min)
    sudo python3 bench/run.py --quick    # ~5 min
    sudo python3 bench/run.py --placements unpinned,split,same   # placement study only (bench/placement.py)
    sudo python3 bench/run.py --overlay --quick   # overlay across nodes (bench/overlay.py), ~2.5 min (full: ~12 min)
"""
import argparse
import contextlib
import gzip
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# --bin-dir must take effect before tests/harness/skiff_topo.py reads SKIFF_BIN_DIR at import.
for _i, _a in enumerate(sys.argv):
    if _a == "--bin-dir" and _i + 1 < len(sys.argv):
        os.environ["SKIFF_BIN_DIR"] = os.path.abspath(sys.argv[_i + 1])
    elif _a.startswith("--bin-dir="):
        os.environ["SKIFF_BIN_DIR"] = os.path.abspath(_a.split("=", 1)[1])

import cni_bench as CB  # noqa: E402
import live as LV  # noqa: E402
import overlay as OV  # noqa: E402
import placement as P  # noqa: E402
import plots as PL  # noqa: E402
import report  # noqa: E402
import topo as T  # noqa: E402
import workloads as W  # noqa: E402
from topo import log  # noqa: E402

# The workloads with targets near their measured ratios get more
# repetitions (wl_reps): a 64-byte ping-pong's round trip (about 70 us here)
# is mostly waiting for CPUs to wake, and single pairs moved by up to +-15%
# in a 9-repetition probe; one stream's ratios moved by +-5% between full
# runs of 3. With 3 the median could not tell 0.95 from 1.00.
WORKLOADS = ("stream1", "stream4", "rr", "crr")
PROFILES = {
    "quick": {"reps": 3, "wl_reps": {}, "seconds": 1, "cni_pods": 20, "scale": [1, 1000], "scale_seconds": 1,
              "pairs": 3, "rounds": 3, "placement_seconds": 1,
              "overlay_rounds": 3, "overlay_seconds": 1},
    "full": {"reps": 3, "wl_reps": {"rr": 9, "stream1": 9}, "seconds": 3, "cni_pods": 50,
             "scale": [1, 100, 1000, 10000], "scale_seconds": 3, "pairs": 9, "rounds": 15, "placement_seconds": 2,
             "overlay_rounds": 9, "overlay_seconds": 3},
}


def check_masquerade(ext, setups, expect, pods):
    """pod -> external must be translated: the external server sees each
    client as its node's address, and has no route back to any pod.
    Raises (the run stops) otherwise: a benchmark that measured an
    untranslated path would be wrong."""
    for ip in pods:
        if ext.routes_to(ip):
            raise RuntimeError(f"the external host has a route to pod {ip}: replies would not need the SNAT")
    seen = {}
    for name, (client, ip) in setups.items():
        seen[name] = W.client_address(client, ip)
        if seen[name] != expect[name]:
            raise RuntimeError(f"pod -> external, {name}: the external server sees {seen[name]!r}, expected the "
                               f"node address {expect[name]} (masquerade not in effect)")
    return seen


SNAT_REASONS = ("snat-new", "snat-egress", "snat-ingress")


def snat_counters(sk):
    st = sk.stats(0)
    return {r: sum(v for (reason, _), v in st.items() if reason == r) for r in SNAT_REASONS}


def datapath_bench(s, prof, reps, results, only_scen=None, only_wl=None, stats=True):
    veth_a, veth_b = s["veth"]
    fl_a, fl_b = s["floor_local_pods"]
    wire_a, wire_b = s["wire_nodes"]
    floor_a, floor_b = s["floor_pods"]
    b1, b2 = s["bridge_nodes"]
    sk = s["skiff"]
    ext = s["external"]
    topo = s["topo"]
    log("attaching pods (bridge plugin, skiff)")
    bc, bs1, bs2 = b1.add_pod(), b1.add_pod(), b2.add_pod()
    sc, ss1, ss2 = sk.add_pod(0), sk.add_pod(0), sk.add_pod(1)
    # The ClusterIP scenarios get their own client pod: connections to the VIP
    # and direct ones to the same backend must never share 4-tuples (the
    # server's TIME_WAIT sockets, and NAT state, would couple the scenarios).
    bcv, scv = b1.add_pod(), sk.add_pod(0)
    for ep in (veth_b, wire_b, floor_b, fl_b, bs1, bs2, ss1, ss2, ext):
        W.start_servers(topo, ep)
    for ep in (veth_a, wire_a, floor_a, fl_a, bc, sc, bcv, scv):
        W.tune_client(ep.ns)
    log("programming the ClusterIPs (backend on the client's node, and on the other node): kube-proxy chains "
        "in bridge node-1, Service objects for skiff")
    T.install_kube_proxy(b1, [W.web_service(bs1.ip), W.web_service(bs2.ip, "web-remote", T.VIP_REMOTE)])
    sk.publish([W.web_service(ss1.ip), W.web_service(ss2.ip, "web-remote", T.VIP_REMOTE)])
    ext_setups = {"wire": (wire_a, ext.ips["wire"]), "bridge": (bc, ext.ips["bridge"]),
                  "skiff": (sc, ext.ips["skiff"])}
    # Sanity: every path answers before anything is measured.
    for c, ip, port in ((veth_a, veth_b.ip, 8080), (wire_a, wire_b.ip, 8080), (floor_a, floor_b.ip, 8080),
                        (fl_a, fl_b.ip, 8080),
                        (bc, bs1.ip, 8080), (bc, bs2.ip, 8080), (sc, ss1.ip, 8080), (sc, ss2.ip, 8080), (bcv, T.VIP, 80),
                        (scv, T.VIP, 80), (bcv, T.VIP_REMOTE, 80), (scv, T.VIP_REMOTE, 80),
                        *((c, ip, 8080) for c, ip in ext_setups.values())):
        T.wait_for(lambda c=c, ip=ip, port=port: c.run("curl", "-s", "-m", "2", f"http://{ip}:{port}/",
                                                        check=False).stdout.strip() == "ok",
                   f"{c.label} -> {ip}:{port}", timeout=15)
    for x, y in ((floor_a, floor_b), (floor_b, floor_a), (fl_a, fl_b), (fl_b, fl_a)):
        if not T.floor_forwards(x, y):
            raise RuntimeError(f"the veth floor does not carry {y.label} -> {x.label} (echo reply TTL is not 64)")
    expect = {"wire": wire_a.ip, "bridge": b1.node.ip, "skiff": sk.nodes[0].ip}
    pods = [bc.ip, sc.ip, bs1.ip, ss1.ip]
    seen = check_masquerade(ext, ext_setups, expect, pods)
    log(f"pod -> external: the external host sees {seen} and has no route to {', '.join(pods)}")
    scenarios = {
        report.SAME: {"veth": (veth_a, veth_b.ip), "floor": (fl_a, fl_b.ip), "bridge": (bc, bs1.ip),
                      "skiff": (sc, ss1.ip)},
        report.SVC: {"bridge": (bcv, T.VIP), "skiff": (scv, T.VIP)},
        report.CROSS: {"wire": (wire_a, wire_b.ip), "floor": (floor_a, floor_b.ip), "bridge": (bc, bs2.ip),
                       "skiff": (sc, ss2.ip)},
        report.SVC_REMOTE: {"bridge": (bcv, T.VIP_REMOTE), "skiff": (scv, T.VIP_REMOTE)},
        report.EXT: ext_setups,
    }
    # Per workload, the direct and the ClusterIP scenario of one placement run
    # back to back, so their ratio pairs measurements seconds apart.
    groups = [[report.SAME, report.SVC], [report.CROSS, report.SVC_REMOTE], [report.EXT]]
    workloads = list(WORKLOADS)
    if only_scen:
        groups = [[sc for sc in g if any(w in sc for w in only_scen)] for g in groups]
    if only_wl is not None:
        workloads = [w for w in workloads if w in only_wl]
    conntrack_nodes = [b1.ns, b2.ns]
    for scen in report.SCENARIOS:
        results.setdefault(scen, {})
    snat = {r: 0 for r in SNAT_REASONS}
    wl_reps = {wl: max(prof.get("wl_reps", {}).get(wl, reps), reps) for wl in workloads}  # never fewer
    progs = LV.live_programs(s) if stats else {}
    with LV.BpfStats() if stats else contextlib.nullcontext():
        datapath_runs(sk, scenarios, groups, workloads, wl_reps, prof, conntrack_nodes, snat, progs, results)
    seen_after = check_masquerade(ext, ext_setups, expect, pods)
    nat = sk.nat_entries(0)
    log(f"pod -> external: skiff SNAT counters over the runs {snat}; {nat} masquerade entries on node-1; "
        f"seen after the runs: {seen_after}")
    return {"placement": f"servers on CPU {W.SERVER_CPU}, clients on CPU {W.CLIENT_CPU}",
            "pods": {"bridge": {"client": bc.ip, "server": bs1.ip, "remote server": bs2.ip, "svc client": bcv.ip},
                     "skiff": {"client": sc.ip, "server": ss1.ip, "remote server": ss2.ip, "svc client": scv.ip}},
            "external": {"ips": ext.ips, "seen": seen, "seen_after": seen_after, "no_route_to": ", ".join(pods),
                         "skiff_counters": snat, "skiff_nat_entries": nat},
            "backends": {"bridge": bs1, "skiff": ss1}}


def datapath_runs(sk, scenarios, groups, workloads, wl_reps, prof, conntrack_nodes, snat, progs, results):
    """The datapath measurements, interleaved (see datapath_bench)."""
    for rep in range(max(wl_reps.values(), default=0)):
        for group in groups:
            for wl in workloads:
                n = wl_reps[wl]
                if rep >= n:
                    continue
                for scen in group:
                    setups = scenarios[scen]
                    for name in W.rotate(list(setups), rep):
                        client, ip = setups[name]
                        if wl == "crr":
                            for ns in conntrack_nodes:
                                T.conntrack_flush(ns)
                        ext_run = scen == report.EXT and name == "skiff"
                        if name == "skiff":
                            drops0 = sk.drops()
                            snat0 = snat_counters(sk) if ext_run else None
                        out = LV.measure_live(progs, name, lambda: W.measure(wl, client, ip, prof["seconds"],
                                                                             svc="ClusterIP" in scen))
                        if name == "skiff":
                            drops1 = sk.drops()
                            out["drops"] = {r: v - drops0.get(r, 0) for r, v in drops1.items() if v > drops0.get(r, 0)}
                        if ext_run:
                            snat1 = snat_counters(sk)
                            for r in SNAT_REASONS:
                                snat[r] += snat1[r] - snat0[r]
                            if snat1["snat-egress"] <= snat0["snat-egress"]:
                                raise RuntimeError(f"skiff pod -> external {wl}: no packet went through skiff's "
                                                   f"SNAT ({snat0} -> {snat1})")
                        results[scen].setdefault(wl, {}).setdefault(name, []).append(out)
                        log(f"rep {rep + 1}/{n} {scen:26} {wl:8} {name:7} {W.short(out)}")


FULL_SYNC_MAX_S = 60  # re-measure a full kube-proxy sync only when the install took less than this


def iptables_one_change(b1, services):
    """One service's endpoints change (its third endpoint replaced, as
    bench/service_scale.py does for skiff), applied the way kube-proxy v1.28+
    does: a partial sync. Then the same state written as a full sync, unless
    the install already took FULL_SYNC_MAX_S (a full sync writes the same
    input as the install)."""
    svc = dict(services[0])
    svc["backends"] = svc["backends"][:-1] + ["10.31.0.1"]
    new = [svc] + services[1:]
    large = T.large_cluster_mode(new)
    stale = [c for c in T.kube_chains(services[0]) if c not in T.kube_chains(svc)]
    # Below 1000 endpoints kube-proxy deletes stale chains in the same restore;
    # in largeClusterMode it leaves them for a later cleanup.
    t_partial, n_partial = T.kube_proxy_sync(b1, new, only={svc["name"]}, delete=() if large else stale)
    out = {"partial_s": t_partial, "partial_rules": n_partial, "large": large, "changed": svc["name"]}
    chain = T.kube_chains(svc)[0]
    added = [c for c in T.kube_chains(svc) if c not in T.kube_chains(services[0])]
    listing = T.in_ns(b1.ns, "iptables", "-w", "-t", "nat", "-S", chain, timeout=600).stdout
    if added[0] not in listing:
        raise RuntimeError(f"the partial sync did not change {chain}: {listing[-500:]}")
    return out, new


def svc_client(c):
    """A new client pod, tuned, once it reaches the service under test."""
    W.tune_client(c.ns)
    T.wait_for(lambda: c.run("curl", "-s", "-m", "2", f"http://{T.VIP}:80/", check=False).stdout.strip() == "ok",
               f"{c.label} -> {T.VIP}:80", timeout=15)
    return c


def scale_bench(s, ctx, sizes, seconds, reps, results):
    """pod -> ClusterIP with N other services programmed. The one under test
    comes last in KUBE-SERVICES (iptables evaluates the chain in order; with
    kube-proxy the position is arbitrary, so this is the worst case and the
    average is about half of it). After the measurements at each size: the
    time of one change for iptables (partial and full kube-proxy sync)."""
    b1 = s["bridge_nodes"][0]
    sk = s["skiff"]
    res = results.setdefault("scale", {})
    for n in sizes:
        fill = T.filler_services(max(0, n - 1))
        T.flush_kube_services(b1)
        services = fill + [W.web_service(ctx["backends"]["bridge"].ip)]
        t0 = time.monotonic()
        nrules = T.install_kube_proxy(b1, services)
        t_ipt = time.monotonic() - t0
        t0 = time.monotonic()
        sk.publish(fill + [W.web_service(ctx["backends"]["skiff"].ip)])
        t_sk = time.monotonic() - t0
        log(f"scale {n}: {nrules} iptables rules restored in {t_ipt:.1f}s; skiff programmed in {t_sk:.1f}s")
        entry = res.setdefault(str(n), {"iptables_rules": nrules, "program_s": {"bridge": t_ipt, "skiff": t_sk}})
        for rep in range(reps):
            # A fresh client pod per run: no client 4-tuple is ever reused
            # across runs (see the skiff closing-entry caveat; it would
            # otherwise swamp the effect of N).
            clients = {"bridge": svc_client(b1.add_pod()), "skiff": svc_client(sk.add_pod(0))}
            for wl in ("crr", "rr"):
                for name in W.rotate(["bridge", "skiff"], rep):
                    if wl == "crr":
                        T.conntrack_flush(b1.ns)
                    if name == "skiff":
                        drops0 = sk.drops()
                    out = W.measure(wl, clients[name], T.VIP, seconds, svc=True)
                    if name == "skiff":
                        drops1 = sk.drops()
                        out["drops"] = {r: v - drops0.get(r, 0) for r, v in drops1.items() if v > drops0.get(r, 0)}
                    entry.setdefault(wl, {}).setdefault(name, []).append(out)
                    log(f"rep {rep + 1}/{reps} scale {n:6} {wl:4} {name:7} {W.short(out)}")
        sync, new = iptables_one_change(b1, services)
        if t_ipt < FULL_SYNC_MAX_S:
            sync["full_s"], sync["full_rules"] = T.kube_proxy_sync(b1, new)
        else:
            sync["full_s"] = None
            sync["full_note"] = f"not re-measured (the install took {t_ipt:.0f} s; same input)"
        entry["iptables_sync"] = sync
        full = "not re-measured" if sync["full_s"] is None else f"{sync['full_s']:.3f}s"
        log(f"scale {n}: iptables one change: partial sync {sync['partial_s']:.3f}s ({sync['partial_rules']} rules"
            f"{', largeClusterMode' if sync['large'] else ''}), full sync {full}")


def scale_self_pairs(s, ctx, largest, seconds, reps, results):
    """skiff at 1 and at `largest` services, back to back within each
    repetition (order rotated): the sweep measures the sizes minutes apart,
    with iptables installs in between, and the machine drifts by more than
    the 5% the "flat with N" target is about. skiff reprograms either size
    in about a second, so here the pair is seconds apart."""
    sk = s["skiff"]
    fill = T.filler_services(largest - 1)
    web = W.web_service(ctx["backends"]["skiff"].ip)
    runs = results.setdefault("scale_self", {"sizes": [1, largest], "crr": {"1": [], str(largest): []}})
    for rep in range(reps):
        for n in W.rotate([1, largest], rep):
            sk.publish((fill if n > 1 else []) + [web])
            c = svc_client(sk.add_pod(0))  # a fresh client: no 4-tuple reused across runs
            time.sleep(1)  # settle: both nodes' agents have just reprogrammed every service
            gc0 = sk.gc_seconds()
            out = W.measure("crr", c, T.VIP, seconds, svc=True)
            gc1 = sk.gc_seconds()
            # GC busy time (both nodes) during the run; None if unknown (or an agent restarted).
            out["agent_gc_s"] = gc1 - gc0 if gc0 is not None and gc1 is not None and gc1 >= gc0 else None
            runs["crr"][str(n)].append(out)
            log(f"rep {rep + 1}/{reps} scale-self {n:6} crr skiff {W.short(out)}")


def kernel_netkit():
    """'y'/'m' when the running kernel's config has netkit, 'n' when it says
    not set, 'absent' when the option is not there at all, None when
    /proc/config.gz is not there. Read-only."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_NETKIT="):
                    return line.strip().split("=", 1)[1]
                if line.startswith("# CONFIG_NETKIT is not set"):
                    return "n"
    except OSError:
        return None
    return "absent"  # a kernel older than netkit (6.7)


def caveats(meta, results=None):
    c = []
    if meta.get("netkit") in ("n", "absent"):
        why = "CONFIG_NETKIT is not set" if meta["netkit"] == "n" else "it predates the option"
        c.append(f"This kernel is built without netkit ({why}), the device pair whose "
                 "BPF program runs in the pod's own transmit path, without the veth's backlog hop on the "
                 "sending node. Every veth-based datapath pays that hop: where the run measured the veth floor, "
                 "floor / limit shows what it costs here.")
    if meta["br_netfilter"] == "available":
        c.append("br_netfilter is built into this kernel (/proc/sys/net/bridge exists; no module to load). "
                 "bridge-nf-call-iptables was set to 1 only inside the bridge node namespaces; the root "
                 "namespace was not touched.")
    else:
        c.append("br_netfilter is NOT available on this kernel: the bridge baseline runs without it, so "
                 "bridged pod -> pod traffic skips iptables/conntrack and service replies between pods of one "
                 "bridge are not un-DNATed by the bridge path (the baseline is faster than a real kube-proxy "
                 "node).")
    c += [
        f"{meta['cpus']} CPUs, a VM: clients and servers share the machine with the kernel work of both "
        "sides, so absolute numbers are low and p99 is noisy; compare ratios from the same repetition.",
        "iperf3 3.12 is single-threaded: 4 flows share one client and one server thread (one core each), "
        "so 4 flows measure per-packet cost under more concurrency, not more cores.",
        f"iptables is the nf_tables backend ({meta['iptables']}); kube-proxy on iptables-legacy "
        "walks its chains linearly, the nft backend's iptables-compat rules are walked linearly too.",
        "Connection rate: the bridge node namespaces' conntrack tables are flushed (ctnetlink) before each "
        "wrk run so a run never starts with the previous one's TIME_WAIT entries.",
        "The bridge plugin's ipMasq also masquerades pod -> pod traffic across nodes (conntrack + SNAT on "
        "both nodes); skiff routes pod IPs natively. That is how the reference plugin behaves with ipMasq. "
        "The same holds for pod -> ClusterIP with the backend on the other node: the bridge node DNATs "
        "(kube-proxy chain) and then masquerades (ipMasq rule), so the remote backend sees node-1's address; "
        "skiff only DNATs, and the backend sees the client pod.",
        "pod -> external: the three setups' clients reach the same server processes on one external host "
        "(one leg per underlay). skiff's masquerade entries are never flushed between runs (the bridge "
        "side's conntrack is); skiff keeps a pod's source port whenever its reply tuple is free (as MASQUERADE "
        "does), so a connection-rate run reuses the entries of earlier runs: a SYN on a closed flow's entry "
        "revives it. Its NAT table holds 65,536 flows; idle entries go after the conntrack timeouts (10 s "
        "after a FIN). The node's own flows to outside destinations are tracked in the same table by the "
        "uplink's egress program.",
        "Service scale: every run gets a fresh client pod (bridge and skiff alike), so no client 4-tuple is "
        "reused across sizes. (Earlier versions of skiff needed it: a client reusing its 4-tuples about 10 s "
        "after they closed lost connections while the agent's conntrack GC deleted entries it had listed "
        "expired just before they came back to life; the GC now re-reads entries before deleting them.)",
        "Service scale, iptables: the install and full-sync times grow faster than linearly with the nf_tables "
        "backend (on this VM: 1,000 services 0.5 s; 5,000 services 16-27 s in a probe; 10,000 services 164 s "
        "in full runs, 219 s install and 265 s full sync in a probe with the machine loaded; the time is "
        "iptables-restore's own CPU). A full sync is re-measured only when the install took less than "
        f"{FULL_SYNC_MAX_S} s; otherwise it is reported as not re-measured (it writes the same input as the "
        "install). The one-change time (partial sync) still rewrites KUBE-SERVICES, so it grows with N too.",
        "Per-program cost: BPF_PROG_TEST_RUN times the program on one skb; paths that rewrite addresses run "
        "once per call (a repeat would run on the rewritten packet and take another path), routed paths 200 "
        "times per call; compare each with the empty-program baseline of the same runs per call.",
        "Not measured here: UDP, skiff's time for one change at N services (bench/service_scale.py measures it).",
    ]
    for n, entry in sorted(((results or {}).get("scale") or {}).items(), key=lambda kv: int(kv[0])):
        t = entry["program_s"]["bridge"]
        if t >= FULL_SYNC_MAX_S:
            c.append(f"At {int(n):,} services iptables-restore of kube-proxy's rules ({entry['iptables_rules']:,} "
                     f"rules) took {t:.0f} s in this run: a node at that size cannot apply a full sync in under "
                     "a minute. The full sync was not re-measured at that size.")
    return c


def placement_args(args, split):
    """The placement study's placements, scenarios and workloads from the
    command line (exits on unknown names)."""
    pls = split(args.placements) or list(P.PLACEMENTS)
    scens = [sc for sc in P.SETUPS if not args.scenarios or any(w in sc for w in split(args.scenarios))]
    wls = split(args.workloads) or list(P.WORKLOADS)
    if set(pls) - set(P.PLACEMENTS) or not scens or set(wls) - set(WORKLOADS):
        sys.exit(f"placement study: placements are {','.join(P.PLACEMENTS)}, scenarios same,across, workloads "
                 f"{','.join(WORKLOADS)} (got {pls}, {args.scenarios!r}, {wls})")
    return {"placements": pls, "scenarios": scens, "workloads": wls}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (~5 min)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3), for every workload unless --wl-reps")
    ap.add_argument("--wl-reps", help="repetitions of single datapath workloads, e.g. rr=9,stream1=9 (the full "
                    "profile's default; --quick: none)")
    ap.add_argument("--seconds", type=float, help="seconds per measurement")
    ap.add_argument("--no-scale", action="store_true", help="skip the service-scale sweep")
    ap.add_argument("--scale", help="comma-separated service counts for the sweep")
    ap.add_argument("--out", help="output directory (default bench/results; a placement study alone: "
                    "bench/results/placement)")
    ap.add_argument("--bin-dir", help="where skiff and skiff-agent are (default build/bin)")
    ap.add_argument("--pairs", type=int, help="back-to-back pairs of skiff at 1 and at the largest service "
                    "count (full profile: 9)")
    ap.add_argument("--only", help="comma-separated sections to run: datapath,cni,scale,pairs,prog,placement (a "
                    "probe: results.json then holds only those; scale includes the pairs)")
    ap.add_argument("--placements", help="the placement study (bench/placement.py), any of unpinned,split,same; "
                    "alone, only the study runs; --scenarios (same, across), --workloads (default rr,stream1,crr) "
                    "and --seconds (default 2, --quick 1) apply")
    ap.add_argument("--rounds", type=int, help="placement study: interleaved rounds (default 15, --quick 3)")
    ap.add_argument("--scenarios", help="datapath scenarios whose name contains one of these words, e.g. "
                    "external,across")
    ap.add_argument("--workloads", help="datapath workloads, e.g. crr,rr (stream1,stream4,rr,crr)")
    ap.add_argument("--overlay", action="store_true", help="only the overlay comparison across nodes "
                    "(bench/overlay.py): node -> node (bare and over a kernel VXLAN device), skiff native, skiff "
                    "vxlan, a flannel-style VXLAN + bridge plugin baseline; --rounds (default 9, --quick 3), "
                    "--seconds (default 3, --quick 1), --workloads and --no-live-stats apply; writes "
                    "bench/results/overlay/")
    ap.add_argument("--flannel-masq", choices=OV.MASQ_MODES, default="flannel", help="--overlay: the flannel-style "
                    "baseline's masquerade: flanneld's --ip-masq chains (pod -> pod keeps its address; default) or "
                    "the bridge plugin's ipMasq (as the bridge baseline; pod -> remote pod masqueraded)")
    ap.add_argument("--report-only", action="store_true", help="regenerate results.md and plots from results.json")
    ap.add_argument("--no-live-stats", action="store_true", help="datapath runs without bpf_stats (no live ns per "
                    "packet per program)")
    ap.add_argument("--live", metavar="SCENARIO:WORKLOAD", help="quick live probe of one workload, e.g. same:rr "
                    f"(scenarios {', '.join(LV.PROBES)}): only the setups it needs, bpf_stats on, under a minute; "
                    "--reps (default 3) and --seconds (default 2) apply; writes <out>/live.json")
    ap.add_argument("--live-prog", action="store_true", help="with --live: also run skiff-prog-bench --quick for "
                    "the BPF_PROG_TEST_RUN figures (about 1 min more)")
    args = ap.parse_args()
    placement_only = bool(args.placements) and not args.only
    args.out = args.out or os.path.join(HERE, "results", *(["placement"] if placement_only else []),
                                        *(["overlay"] if args.overlay else []))
    if args.report_only and args.overlay:
        with open(os.path.join(args.out, "results.json")) as f:
            OV.write(json.load(f), args.out)
        return
    if args.report_only:
        with open(os.path.join(args.out, "results.json")) as f:
            doc = json.load(f)
        doc["summary"] = report.summarize(doc["results"])
        load = [c for c in doc["meta"].get("caveats", []) if c.startswith("The machine was not idle")]
        doc["meta"]["caveats"] = load + caveats(doc["meta"], doc["results"])
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(doc, f, indent=2)
        report.write_markdown(doc, os.path.join(args.out, "results.md"))
        PL.plot(doc, args.out)
        return
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, BPF)")
    if args.live:
        LV.live_probe(args.live, args.reps or 3, args.seconds or 2, args.out, args.live_prog)
        return
    prof = dict(PROFILES["quick" if args.quick else "full"])
    if args.reps:
        prof["reps"] = max(1, args.reps)
        prof["wl_reps"] = {}
    if args.wl_reps:
        try:
            prof["wl_reps"] = {k: max(1, int(v)) for k, v in (x.split("=") for x in args.wl_reps.split(",") if x)}
        except ValueError:
            sys.exit(f"--wl-reps {args.wl_reps!r}: want WORKLOAD=N[,...]")
        if set(prof["wl_reps"]) - set(WORKLOADS):
            sys.exit(f"--wl-reps: unknown workload in {args.wl_reps!r} (known: {', '.join(WORKLOADS)})")
    # As run (and recorded in meta): never fewer than --reps.
    prof["wl_reps"] = {k: v for k, v in prof["wl_reps"].items() if v > prof["reps"]}
    if args.pairs:
        prof["pairs"] = max(1, args.pairs)
    if args.seconds:
        prof["seconds"] = prof["scale_seconds"] = prof["placement_seconds"] = args.seconds
    if args.rounds:
        prof["rounds"] = max(1, args.rounds)
    if args.scale:
        prof["scale"] = [int(x) for x in args.scale.split(",")]
    if args.no_scale:
        prof["scale"] = []
    for tool in ("iperf3", "sockperf", "wrk", "nginx", "taskset", T.BRIDGE, T.SKIFF_BIN, T.SKIFF_FLOOR):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            sys.exit(f"missing: {tool}")
    started = time.monotonic()
    results = {}
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "kernel": platform.release(),
            "cpus": os.cpu_count(), "profile": "quick" if args.quick else "full", **prof,
            "br_netfilter": T.br_netfilter_state(), "netkit": kernel_netkit(), "skiff_bin": T.SKIFF_BIN,
            "repo_commit": subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                                          text=True).stdout.strip(),
            "iptables": subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.strip()}
    meta["loadavg_start"] = W.loadavg()
    if args.overlay:
        if subprocess.run(["sh", "-c", "command -v tcpdump"], capture_output=True).returncode != 0:
            log("tcpdump not installed: the overlay report will have no frame lengths (hop counters only)")
        split = lambda v: [x for x in v.split(",") if x] if v else None  # noqa: E731
        wls = split(args.workloads) or list(OV.WORKLOADS)
        if set(wls) - set(OV.WORKLOADS):
            sys.exit(f"--overlay --workloads: {','.join(OV.WORKLOADS)} (got {args.workloads})")
        for k in ("wl_reps", "reps", "seconds", "cni_pods", "scale", "scale_seconds", "pairs", "rounds",
                  "placement_seconds"):
            meta.pop(k, None)
        doc = OV.run(args.out, args.rounds or prof["overlay_rounds"], args.seconds or prof["overlay_seconds"], wls,
                     args.flannel_masq, meta, stats_on=not args.no_live_stats)
        print(json.dumps(doc["summary"], indent=2))
        return
    meta["caveats"] = caveats(meta)
    only = set(args.only.split(",")) if args.only else {"placement"} if placement_only else \
        {"datapath", "cni", "scale", "prog"}
    if "scale" in only:
        only.add("pairs")
    if only - {"datapath", "cni", "scale", "pairs", "prog", "placement"}:
        sys.exit(f"--only {args.only!r}: sections are datapath,cni,scale,pairs,prog,placement")
    split = lambda v: [x for x in v.split(",") if x] if v else None  # noqa: E731
    if "placement" in only:
        study = placement_args(args, split)
        meta["placement_study"] = {"rounds": prof["rounds"], "seconds": prof["placement_seconds"], **study}
    topo, s = T.build_all(only=P.needs(study["scenarios"]) if only == {"placement"} else None)
    try:
        if only & {"datapath", "scale", "pairs"}:
            ctx = datapath_bench(s, prof, prof["reps"], results.setdefault("datapath", {}),
                                 split(args.scenarios), split(args.workloads) if "datapath" in only else [],
                                 stats=not args.no_live_stats)
            meta["placement"] = ctx["placement"]
            meta["pods"] = ctx["pods"]
            meta["external"] = ctx["external"]
        if "cni" in only:
            CB.cni_bench(s, prof["cni_pods"], prof["reps"], results)
        if prof["scale"] and "scale" in only:
            scale_bench(s, ctx, prof["scale"], prof["scale_seconds"], prof["reps"], results)
        if prof["scale"] and max(prof["scale"]) > 1 and "pairs" in only:
            scale_self_pairs(s, ctx, max(prof["scale"]), prof["scale_seconds"], prof["pairs"], results)
        if "prog" in only:
            results["prog_cost"] = LV.prog_cost(args.quick)
        if "placement" in only:
            results["placement"] = P.study(s, study["placements"], prof["rounds"], prof["placement_seconds"],
                                           study["scenarios"], study["workloads"], stats_on=not args.no_live_stats)
    finally:
        log("tearing down")
        topo.close()
    meta["duration_s"] = time.monotonic() - started
    meta["loadavg_end"] = W.loadavg()
    meta["caveats"] = caveats(meta, results)
    busy = max(meta["loadavg_start"][0], meta["loadavg_end"][0])
    if busy > 0.5:
        meta["caveats"].insert(0, f"The machine was not idle: 1-minute load average {meta['loadavg_start'][0]:.2f} "
                                  f"at start, {meta['loadavg_end'][0]:.2f} at end (other processes compete for "
                                  "the 2 CPUs; results are noisier than on an idle machine).")
    os.makedirs(args.out, exist_ok=True)
    # The raw results first: a failing summary or plot must not lose a run
    # (--report-only regenerates the rest from this file).
    doc = {"meta": meta, "results": results, "summary": None}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    doc["summary"] = report.summarize(results)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    report.write_markdown(doc, os.path.join(args.out, "results.md"))
    pngs = PL.plot(doc, args.out)
    log(f"wrote {args.out}/results.json, results.md, {', '.join(os.path.basename(p) for p in pngs)} "
        f"in {meta['duration_s']:.0f}s")
    print(json.dumps(doc["summary"], indent=2))


if __name__ == "__main__":
    main()
