"""Summaries (medians, min-max, per-repetition ratios) and the markdown
report of a benchmark run (the gnuplot plots: bench/plots.py)."""
import statistics

REF = ("veth", "wire")  # the physical limit, whichever the scenario has
SETUP_ORDER = ["veth", "wire", "floor", "bridge", "skiff"]
FLOOR = "floor"  # the veth floor (bench/floor/veth_floor.c across nodes, veth_floor_local.c on one node)
# Datapath scenarios (results.json keys), in report order.
SAME, CROSS = "pod-pod same node", "pod-pod across nodes"
SVC, SVC_REMOTE = "pod-ClusterIP same node", "pod-ClusterIP across nodes"
EXT = "pod-external (masquerade)"
SCENARIOS = [SAME, CROSS, SVC, SVC_REMOTE, EXT]
SHORT = {SAME: "same node", CROSS: "across nodes", SVC: "ClusterIP local", SVC_REMOTE: "ClusterIP remote",
         EXT: "external"}
# ClusterIP vs direct to the same backend pod: (service scenario, direct scenario, backend placement).
SVC_PAIRS = [(SVC, SAME, "same node"), (SVC_REMOTE, CROSS, "other node")]
SVC_TARGET = 0.95      # pod -> ClusterIP RR / pod -> pod RR, skiff
SCALE_FLAT = 0.95      # skiff conn/s at N services / at 1 service ("within 5%")
SCALE_VS_IPT = 3.0     # skiff conn/s / iptables conn/s at N services
METRICS = {"stream1": [("gbps", "Gbit/s", "up")], "stream4": [("gbps", "Gbit/s", "up")],
           "rr": [("tps", "transactions/s", "up"), ("p50_us", "RTT p50 us", "down"),
                  ("p99_us", "RTT p99 us", "down")],
           "crr": [("cps", "connections/s", "up")]}
WL_NAME = {"stream1": "TCP stream, 1 flow", "stream4": "TCP stream, 4 flows",
           "rr": "TCP RR (sockperf ping-pong, 64 B)", "crr": "TCP connect/request/close (wrk)"}
CNI_METRICS = [("add_p50_ms", "ADD p50 ms"), ("add_p99_ms", "ADD p99 ms"), ("del_p50_ms", "DEL p50 ms"),
               ("del_p99_ms", "DEL p99 ms"), ("add_pods_per_s", "ADD pods/s"),
               ("add_del_pods_per_s", "ADD+DEL pods/s"),
               ("veth_gone_p50_ms", "host veth gone after DEL's start, p50 ms (skiff deletes it after DEL returned)"),
               ("veth_gone_p99_ms", "host veth gone, p99 ms")]


def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def ratios(runs, metric, num, den):
    """Ratio num/den computed pair by pair from the same repetition."""
    a, b = runs.get(num), runs.get(den)
    if not a or not b:
        return None
    return stats([x[metric] / y[metric] for x, y in zip(a, b) if x.get(metric) is not None and y.get(metric)])


def ratios_across(a, b, metric):
    """a[i][metric] / b[i][metric] for the runs of one setup in two scenarios
    (or two sizes), paired by repetition."""
    if not a or not b:
        return None
    return stats([x[metric] / y[metric] for x, y in zip(a, b) if y[metric]])


def ordered(d):
    """A scenario dict's keys in report order (unknown ones last)."""
    return sorted(d, key=lambda k: SCENARIOS.index(k) if k in SCENARIOS else len(SCENARIOS))


def _pairs(setups):
    out = [(f"skiff/{r}", "skiff", r) for r in REF if r in setups]
    if FLOOR in setups:
        out += [(f"skiff/{FLOOR}", "skiff", FLOOR)] + [(f"{FLOOR}/{r}", FLOOR, r) for r in REF if r in setups]
    if "bridge" in setups:
        out.append(("skiff/bridge", "skiff", "bridge"))
    return out


def _drops(summ, scenario, wl, runs):
    """Sum the skiff drop counters recorded around each run, if any moved."""
    hit = [r["drops"] for r in runs if r.get("drops")]
    if not hit:
        return
    reasons = {}
    for d in hit:
        for reason, v in d.items():
            reasons[reason] = reasons.get(reason, 0) + v
    summ.setdefault("skiff_drops", []).append({"scenario": scenario, "workload": wl, "runs": len(hit),
                                               "of": len(runs), "reasons": reasons})


def summarize(results):
    summ = {}
    dp = results.get("datapath", {})
    for scen in ordered(dp):
        for wl, runs in dp[scen].items():
            for metric, _, _ in METRICS[wl]:
                e = summ.setdefault("datapath", {}).setdefault(scen, {}).setdefault(wl, {}).setdefault(metric, {})
                for setup, vals in runs.items():
                    e[setup] = stats([r.get(metric) for r in vals])
                for label, num, den in _pairs(runs):
                    e[label] = ratios(runs, metric, num, den)
    for svc, direct, where in SVC_PAIRS:
        if svc not in dp or direct not in dp:
            continue
        e = summ.setdefault("svc_vs_direct", {}).setdefault(where, {"service": svc, "direct": direct})
        for wl, metric in (("rr", "tps"), ("rr", "p50_us"), ("crr", "cps")):
            for setup in ("bridge", "skiff"):
                e.setdefault(f"{wl}_{metric}", {})[setup] = ratios_across(
                    dp[svc].get(wl, {}).get(setup), dp[direct].get(wl, {}).get(setup), metric)
    for scen in ordered(dp):
        for wl, runs in dp[scen].items():
            _drops(summ, scen, wl, runs.get("skiff", []))
    for n in sorted(results.get("scale", {}), key=int):
        for wl in ("crr", "rr"):
            _drops(summ, f"scale {n} services", wl, results["scale"][n].get(wl, {}).get("skiff", []))
    if "placement" in results:
        import placement  # noqa: E402 (it imports this module)
        summ["placement"] = placement.summarize(results["placement"])
    if "cni" in results:
        for metric, _ in CNI_METRICS:
            e = summ.setdefault("cni", {}).setdefault(metric, {})
            for setup, vals in results["cni"].items():
                e[setup] = stats([r.get(metric) for r in vals])
            e["skiff/bridge"] = ratios(results["cni"], metric, "skiff", "bridge")
    scale = results.get("scale", {})
    base = min(scale, key=int) if scale else None
    for n, entry in scale.items():
        se = summ.setdefault("scale", {}).setdefault(n, {"iptables_rules": entry["iptables_rules"],
                                                         "program_s": entry["program_s"],
                                                         "iptables_sync": entry.get("iptables_sync"),
                                                         "base": base})
        for wl in ("crr", "rr"):
            for metric, _, _ in METRICS[wl]:
                e = se.setdefault(wl, {}).setdefault(metric, {})
                for setup, vals in entry.get(wl, {}).items():
                    e[setup] = stats([r.get(metric) for r in vals])
                e["skiff/bridge"] = ratios(entry.get(wl, {}), metric, "skiff", "bridge")
                for setup in ("bridge", "skiff"):
                    e[f"{setup}/base"] = ratios_across(entry.get(wl, {}).get(setup),
                                                       scale[base].get(wl, {}).get(setup), metric)
    pairs = results.get("scale_self")
    if pairs:
        lo, hi = (str(x) for x in pairs["sizes"])
        summ["scale_self"] = {"sizes": pairs["sizes"], "cps": {n: stats([r["cps"] for r in pairs["crr"][n]])
                                                              for n in (lo, hi)},
                              "ratio": ratios_across(pairs["crr"][hi], pairs["crr"][lo], "cps"),
                              "agent_gc_s": _gc_split(pairs["crr"], (lo, hi))}
    return summ


# Live (bpf_stats) programs -> the BPF_PROG_TEST_RUN paths of skiff-prog-bench
# timing the same packets, per scenario. (scenario, program) -> [path names].
TEST_RUN_PATHS = {
    (SAME, "from_pod"): ["pod_to_pod_same_node"],
    (SAME, "floor_local"): ["floor_pod_to_pod_same_node"],
    (CROSS, "from_pod"): ["pod_to_pod_other_node"],
    (CROSS, "from_uplink"): ["uplink_remote_pod_to_local_pod"],
    (CROSS, "to_uplink"): ["to_uplink_forwarded"],
    (CROSS, "floor_out"): ["floor_pod_to_pod_other_node"],
    (CROSS, "floor_in"): ["floor_uplink_remote_pod_to_local_pod"],
    (SVC, "from_pod"): ["clusterip_established", "clusterip_reply"],
    (SVC_REMOTE, "from_pod"): ["clusterip_established", "pod_to_pod_other_node"],
    (SVC_REMOTE, "from_uplink"): ["uplink_remote_pod_to_local_pod"],
    (SVC_REMOTE, "to_uplink"): ["to_uplink_forwarded"],
    (EXT, "from_pod"): ["masquerade_established"],
    (EXT, "from_uplink"): ["uplink_masquerade_reply"],
    (EXT, "to_uplink"): ["to_uplink_forwarded"],
}


def live_summary(runs):
    """{setup: {program label: {"ns": stats, "runs": stats}}} from the runs'
    bpf_stats deltas."""
    out = {}
    for setup, lst in runs.items():
        labels = sorted({k for r in lst for k in (r.get("bpf") or {})})
        for label in labels:
            vals = [r["bpf"][label] for r in lst if label in (r.get("bpf") or {})]
            out.setdefault(setup, {})[label] = {"ns": stats([v["ns"] for v in vals]),
                                                "runs": stats([v["runs"] for v in vals])}
    return out


def _test_run(prog_cost, scen, label):
    if not prog_cost:
        return ""
    by = {p["name"]: p for p in prog_cost.get("paths", [])}
    out = []
    for name in TEST_RUN_PATHS.get((scen, label.split("/")[-1]), []):
        p = by.get(name)
        if p and p.get("ns_over_baseline_median") is not None:
            st = p.get("bpf_stats_ns_median")
            out.append(f"{p['ns_over_baseline_median']:.0f}" + (f" / {st:.0f}" if st else "") + f" ({name})")
    return ", ".join(out)


def live_table(results):
    """The markdown rows: live ns per packet per program, per scenario and
    workload, next to the BPF_PROG_TEST_RUN figure of the same path."""
    L = ["| scenario | workload | setup | program (node/program) | live ns per packet, median (min-max) | "
         "runs per measurement | BPF_PROG_TEST_RUN: ns over baseline / bpf_stats ns (path) |", "|---|---|---|---|---|---|---|"]
    dp = results.get("datapath", {})
    pc = results.get("prog_cost")
    rows = 0
    for scen in ordered(dp):
        for wl, runs in dp[scen].items():
            for setup, progs in live_summary(runs).items():
                for label, e in progs.items():
                    L.append(f"| {SHORT.get(scen, scen)} | {wl} | {setup} | {label} | {cell(e['ns'])} | "
                             f"{fmt(e['runs']['median'])} | {_test_run(pc, scen, label)} |")
                    rows += 1
    return L if rows else []


def live_lines(results, meta):
    L = [f"# Live in-path cost (bpf_stats), {meta.get('scenario')} {meta.get('workload')}", "",
         f"{meta.get('reps')} repetitions x {meta.get('seconds')} s, setups interleaved; load average "
         f"{meta['loadavg_start'][0]:.2f} at the start, {meta['loadavg_end'][0]:.2f} at the end; "
         f"{meta.get('duration_s', 0):.0f} s.", ""]
    L += live_table(results)
    dp = results.get("datapath", {})
    for scen in dp:
        for wl, runs in dp[scen].items():
            for setup, lst in runs.items():
                for metric, label, _ in METRICS[wl]:
                    L.append(f"- {setup} {label}: {cell(stats([r.get(metric) for r in lst]))}")
            sk, fl = runs.get("skiff", []), runs.get("floor", [])
            main = {SAME: [("node-1/from_pod", "local/floor_local")],
                    CROSS: [("node-1/from_pod", "node-1/floor_out"), ("node-2/from_uplink", "node-2/floor_in"),
                            ("node-2/from_pod", "node-2/floor_out"), ("node-1/from_uplink", "node-1/floor_in")],
                    SVC: [("node-1/from_pod", "local/floor_local")],
                    SVC_REMOTE: [("node-1/from_pod", "node-1/floor_out"), ("node-1/from_uplink", "node-1/floor_in")]}
            for a, b in (main.get(scen, []) if sk and fl else []):
                r = stats([x["bpf"][a]["ns"] / y["bpf"][b]["ns"] for x, y in zip(sk, fl)
                           if a in x.get("bpf", {}) and b in y.get("bpf", {}) and y["bpf"][b]["ns"]])
                if r:
                    L.append(f"- skiff {a} / floor {b}, live ns per packet, pair by pair: {rcell(r)}")
    return L


def fmt(x):
    if x is None:
        return ""
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(s):
    if not s:
        return "-"
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def rcell(s):
    if not s:
        return "-"
    return f"**{s['median']:.2f}** ({s['min']:.2f}-{s['max']:.2f})"


def verdict(s, target):
    if not s:
        return "-"
    return "met" if round(s["median"], 2) >= target else "**not met**"  # as displayed


def secs(x):
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def wl_reps_note(m):
    """' (9 for rr, stream1)': the workloads run more often than the others."""
    by = {}
    for wl, n in sorted(m.get("wl_reps", {}).items()):
        by.setdefault(n, []).append(wl)
    return " (" + "; ".join(f"{n} for {', '.join(w)}" for n, w in sorted(by.items())) + ")" if by else ""


def _gc_split(runs, sizes):
    """GC busy time per size, and the runs of both sizes split by whether a
    GC pass (>= 0.1 s of it) ran during them. None when any run lacks it."""
    if any(r.get("agent_gc_s") is None for n in sizes for r in runs[n]):
        return None
    split = {k: stats([r["cps"] for n in sizes for r in runs[n] if (r["agent_gc_s"] >= 0.1) == (k == "gc")])
             for k in ("gc", "no_gc")}
    return {"total": {n: sum(r["agent_gc_s"] for r in runs[n]) for n in sizes}, "cps": split}


def _pairs_lines(pairs):
    """The scale_self table: skiff at 1 and at N services, back to back."""
    if not pairs:
        return []
    L = []
    lo, hi = (str(x) for x in pairs["sizes"])
    L += ["", f"skiff alone at {lo} and {hi} services, back to back in each repetition (order rotated; "
              "each size reprogrammed by the agent, a fresh client pod per run), so the pair is seconds "
              "apart instead of the sweep's minutes:", "",
          f"| skiff conn/s at {lo} | at {hi} | {hi} / {lo} | target |", "|---|---|---|---|",
          f"| {cell(pairs['cps'][lo])} | {cell(pairs['cps'][hi])} | {rcell(pairs['ratio'])} | "
          f"{verdict(pairs['ratio'], SCALE_FLAT)} |"]
    gc = pairs.get("agent_gc_s")
    if gc:
        tot, by = gc["total"], gc["cps"]
        L += ["", f"The agents' GC was busy for {tot[lo]:.2f} s during the runs at {lo} and {tot[hi]:.2f} s "
                  f"during those at {hi}, on the same 2 CPUs: every connection leaves two conntrack entries, "
                  "and a pass judges and deletes the closed ones a few syscalls each."]
        if by["gc"] and by["no_gc"]:
            L[-1] += (f" Runs of either size with at least 0.1 s of GC in them: {cell(by['gc'])} conn/s "
                      f"({by['gc']['n']} runs); the others: {cell(by['no_gc'])} ({by['no_gc']['n']} runs).")
    return L


def write_markdown(doc, path):
    import placement  # noqa: E402 (it imports this module)
    if set(doc["results"]) == {"placement"}:
        with open(path, "w") as f:
            f.write("\n".join(placement.markdown_doc(doc)) + "\n")
        return
    m, summ = doc["meta"], doc["summary"]
    ext = m.get("external", {})
    L = ["# skiff benchmark results", "",
         f"{m['date']}, kernel {m['kernel']}, {m['cpus']} CPUs, profile `{m['profile']}`: {m['reps']} "
         f"repetitions{wl_reps_note(m)}, {m['seconds']} s per measurement, setups interleaved (order rotated each repetition). "
         f"Run time {m.get('duration_s', 0):.0f} s.", "",
         "Cells: median (min-max) over repetitions. Ratios are computed per repetition from the same "
         "repetition's pair, then summarized; for rates > 1 means skiff is faster, for latencies < 1 means "
         "skiff is faster.", "",
         "Setups:", "",
         "- **veth**: a direct veth pair between two namespaces (same-node physical limit).",
         "- **wire**: two namespaces on one L2 bridge (no netfilter): node -> node, the cross-node limit; "
         "and node -> external host over the same kind of underlay, the limit for pod -> external.",
         "- **veth floor**: across nodes, two nodes like the wire's, each with one pod on a veth pair and "
         "`bench/floor/veth_floor.c` attached by `build/bin/skiff-floor`: a FIB lookup and redirect out of "
         "the host veth's tc ingress, a redirect_peer into the pod from the uplink's; no TTL, policy, "
         "conntrack, NAT or counters: a minimal veth-based eBPF datapath, so floor / limit shows what the veth "
         "hop costs such a design and skiff / floor what skiff's own work costs on top. On one node: two pods "
         "on veth pairs with `bench/floor/veth_floor_local.c` on both host veths (one hash lookup of the "
         "destination, the MACs, redirect_peer).",
         "- **bridge**: reference `bridge` CNI plugin + `host-local` + `ipMasq: true`, br_netfilter "
         f"({m['br_netfilter']}; bridge-nf-call-iptables=1 in the node namespaces), kube-proxy-format "
         f"iptables chains for the services ({m['iptables']}); nodes route each other's pod subnet. Across "
         "nodes the plugin's ipMasq masquerades pod -> remote pod traffic (its rule only exempts the "
         "node's own subnet); pod -> external is masqueraded by the same rule (iptables MASQUERADE).",
         "- **skiff**: skiff-agent per node, pods attached by `build/bin/skiff`; pod -> external is "
         "masqueraded by skiff's eBPF SNAT (no iptables rule).",
         "- **external host**: one namespace outside the clusters with a leg on each underlay "
         f"({', '.join(f'{k} {v}' for k, v in ext.get('ips', {}).items())}) and only those connected /24 "
         "routes: it reaches node addresses, not pod subnets, so an untranslated pod source gets no reply.", "",
         f"Placement: {m.get('placement', '')}. Underlay bridges have bridge-nf-call-* = 0. "
         "The ClusterIP scenarios use their own client pod (no 4-tuple shared with the direct pod -> pod runs), "
         "and the services map port 80 to a second nginx port (8081) of the backend pod, so ClusterIP and "
         "direct connection-rate runs never meet the other's TIME_WAIT sockets on the server, even where both "
         "are masqueraded to the node address (bridge across nodes). pod -> external uses the direct "
         "scenarios' client pod. A repetition measures, per workload, the direct and the ClusterIP scenario of "
         "one placement back to back.",
         "", f"skiff binaries: `{m.get('skiff_bin', '')}` (repository at {m.get('repo_commit', '?')}).", ""]
    if ext:
        L += ["Masquerade check (the run stops if it fails): the external server's nginx reports the client "
              "address it sees (`/ip`); before and after the measurements every client was seen as its node: "
              + ", ".join(f"{k} -> {v}" for k, v in ext.get("seen", {}).items())
              + f". The external host has no route to the pod addresses ({ext.get('no_route_to', '')})."
              + (" skiff node-1 packet counters over the pod -> external runs: "
                 + ", ".join(f"{k} {v:,}" for k, v in ext["skiff_counters"].items())
                 + "; masquerade entries (`skiffctl nat list`) afterwards: "
                 + ", ".join(f"{v:,} {k}" for k, v in (ext.get("skiff_nat_entries") or {}).items()) + "."
                 if ext.get("skiff_counters") else ""), ""]
    L += ["## Datapath", "",
          "| scenario | workload | metric | physical limit | veth floor | bridge | skiff | skiff / limit | "
          "skiff / floor | skiff / bridge |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    dps = summ.get("datapath", {})
    for scen in ordered(dps):
        for wl, metrics in dps[scen].items():
            for metric, label, _ in METRICS[wl]:
                e = metrics.get(metric, {})
                ref = next((r for r in REF if r in e), None)
                L.append(f"| {scen} | {WL_NAME[wl]} | {label} | "
                         f"{(ref + ': ' + cell(e[ref])) if ref else '-'} | {cell(e.get(FLOOR))} | "
                         f"{cell(e.get('bridge'))} | {cell(e.get('skiff'))} | "
                         f"{rcell(e.get('skiff/' + ref)) if ref else '-'} | {rcell(e.get('skiff/' + FLOOR))} | "
                         f"{rcell(e.get('skiff/bridge'))} |")
    floor = [(scen, wl, metric, label, e) for scen in ordered(dps) for wl, metrics in dps[scen].items()
             for metric, label, _ in METRICS[wl] for e in [metrics.get(metric, {})] if e.get(FLOOR)]
    if floor:
        L += ["", "The veth floor against the physical limit (what the veth hop costs a minimal datapath) and "
                  "skiff against the floor (what skiff's own work costs on top), paired by repetition:", "",
              "| scenario | workload | metric | floor / limit | skiff / floor |", "|---|---|---|---|---|"]
        for scen, wl, metric, label, e in floor:
            ref = next((r for r in REF if r in e), None)
            L.append(f"| {scen} | {WL_NAME[wl]} | {label} | {rcell(e.get(FLOOR + '/' + ref)) if ref else '-'} | "
                     f"{rcell(e.get('skiff/' + FLOOR))} |")
    if any("drops" in r for wls in doc["results"].get("datapath", {}).values() for runs in wls.values()
           for r in runs.get("skiff", [])):
        drops = [d for d in summ.get("skiff_drops", []) if not d["scenario"].startswith("scale")]
        L += ["", "skiff datapath drops during the runs (`skiffctl stats`, both nodes, read around each skiff "
                  "measurement): " + ("; ".join(
                      f"{d['scenario']} {WL_NAME[d['workload']]}: "
                      + ", ".join(f"{r} {v:,}" for r, v in d["reasons"].items())
                      + f" (in {d['runs']} of {d['of']} runs)" for d in drops) or "none") + "."]
    if "svc_vs_direct" in summ:
        L += ["", "## ClusterIP vs direct: pod -> ClusterIP / pod -> pod, same backend pod", "",
              "Per setup, the ClusterIP run divided by the direct run to the same backend pod from the same "
              "node (the ClusterIP client is a second pod on that node), paired within a repetition. "
              f"Target for skiff: RR rate >= {SVC_TARGET} of direct.", "",
              "| backend | metric | bridge | skiff | target (skiff) | skiff vs target |", "|---|---|---|---|---|---|"]
        for where, e in summ["svc_vs_direct"].items():
            for key, label, target in (("rr_tps", "RR transactions/s", SVC_TARGET), ("rr_p50_us", "RTT p50", None),
                                       ("crr_cps", "connections/s", None)):
                r = e.get(key, {})
                L.append(f"| {where} | {label} | {rcell(r.get('bridge'))} | {rcell(r.get('skiff'))} | "
                         f"{'>= ' + str(target) if target else '-'} | "
                         f"{verdict(r.get('skiff'), target) if target else '-'} |")
    if "cni" in summ:
        L += ["", f"## CNI ADD/DEL ({m['cni_pods']} pods per plugin per repetition, sequential, interleaved "
                  "pod by pod)", "",
              "Each call is timed like libcni makes it: fork+exec of the plugin in the node namespace, config "
              "on stdin. The skiff node has its agent running (`requireAgent`).", "",
              "| metric | bridge | skiff | skiff / bridge |", "|---|---|---|---|"]
        for metric, label in CNI_METRICS:
            e = summ["cni"][metric]
            L.append(f"| {label} | {cell(e.get('bridge'))} | {cell(e.get('skiff'))} | "
                     f"{rcell(e.get('skiff/bridge'))} |")
    if "scale" not in summ and summ.get("scale_self"):
        L += ["", "## Service scale"] + _pairs_lines(summ["scale_self"])
    if "scale" in summ:
        sizes = sorted(summ["scale"].items(), key=lambda kv: int(kv[0]))
        base = sizes[0][1].get("base") or sizes[0][0]
        L += ["", "## Service scale: pod -> ClusterIP with N services programmed", "",
              "The service under test comes last in KUBE-SERVICES (chain walked in order: the worst case; "
              "kube-proxy's order is arbitrary). Each other service has 3 endpoints. Every run (size, repetition) "
              "uses a fresh client pod on node-1 for each setup, so no client 4-tuple is reused across runs.", "",
              "| services | metric | bridge | skiff | skiff / bridge |", "|---|---|---|---|---|"]
        for n, se in sizes:
            first = True
            for wl in ("crr", "rr"):
                for metric, label, _ in METRICS[wl]:
                    e = se.get(wl, {}).get(metric, {})
                    L.append(f"| {n if first else ''} | {label} | {cell(e.get('bridge'))} | "
                             f"{cell(e.get('skiff'))} | {rcell(e.get('skiff/bridge'))} |")
                    first = False
        if any("drops" in r for e in doc["results"]["scale"].values() for wl in ("crr", "rr")
               for r in e.get(wl, {}).get("skiff", [])):
            drops = [d for d in summ.get("skiff_drops", []) if d["scenario"].startswith("scale")]
            L += ["", "skiff datapath drops during these runs: " + ("; ".join(
                f"{d['scenario']} {WL_NAME[d['workload']]}: " + ", ".join(f"{r} {v:,}" for r, v in d["reasons"].items())
                + f" (in {d['runs']} of {d['of']} runs)" for d in drops) or "none") + "."]
        L += ["", f"Connection rate targets: skiff's rate at N services relative to its own rate at {base} "
                  f"service{'s' if int(base) != 1 else ''} (paired by repetition; target >= {SCALE_FLAT}, i.e. "
                  f"within 5%), and relative to iptables at N (target >= {SCALE_VS_IPT:g}x; a target for large "
                  "N: with one service both datapaths do one lookup).", "",
              "| services | skiff conn/s | skiff / skiff at base | target | iptables conn/s | iptables / "
              "iptables at base | skiff / iptables | target |", "|---|---|---|---|---|---|---|---|"]
        for n, se in sizes:
            e = se.get("crr", {}).get("cps", {})
            is_base = n == base
            L.append(f"| {n} | {cell(e.get('skiff'))} | {'(base)' if is_base else rcell(e.get('skiff/base'))} | "
                     f"{'-' if is_base else verdict(e.get('skiff/base'), SCALE_FLAT)} | {cell(e.get('bridge'))} | "
                     f"{'(base)' if is_base else rcell(e.get('bridge/base'))} | {rcell(e.get('skiff/bridge'))} | "
                     f"{verdict(e.get('skiff/bridge'), SCALE_VS_IPT)} |")
        L += _pairs_lines(summ.get("scale_self"))
        L += ["", "Programming time (one measurement per size, wall clock):", "",
              "- **iptables install**: flush of the previous size's KUBE-* chains excluded; one "
              "`iptables-restore --noflush` of every chain, as kube-proxy's first sync.",
              "- **iptables one change**: one service's endpoints change (its third endpoint replaced), applied "
              "the way kube-proxy v1.28+ does it (MinimizeIPTablesRestore, GA in 1.28): a *partial sync*, "
              "`iptables-restore -w --noflush --counters` with the filter chains, the whole KUBE-SERVICES "
              "chain (one rule per service port, so it still grows with N), and only the changed service's "
              "KUBE-SVC/KUBE-SEP chains; below 1000 endpoints (largeClusterMode off) the stale KUBE-SEP chain "
              "is deleted in the same restore (kube-proxy finds it with an `iptables-save -t nat`, not timed "
              "here). The time is the restore alone.",
              "- **iptables full sync**: the same change written as a full sync (every chain), which kube-proxy "
              "before 1.27 did on every change and later versions still do at start-up, after a failed "
              "restore, and when the canary chain disappears.",
              "- **skiff program**: writing the source file to the agents having programmed every frontend "
              "(both nodes). skiff's one-change time at N is measured by `bench/service_scale.py` (agent "
              "reconcile time and wall time for one service's endpoints changing), not by this suite.", "",
              "| services | iptables rules | iptables install s | iptables one change (partial sync) s | "
              "rules written | iptables full sync s | skiff program s |", "|---|---|---|---|---|---|---|"]
        for n, se in sizes:
            sy = se.get("iptables_sync") or {}
            full = secs(sy.get("full_s")) if sy.get("full_s") is not None else (sy.get("full_note") or "-")
            written = f"{sy['partial_rules']:,}" if sy.get("partial_rules") is not None else "-"
            L.append(f"| {n} | {se['iptables_rules']:,} | {secs(se['program_s']['bridge'])} | "
                     f"{secs(sy.get('partial_s'))} | {written}"
                     f"{' (largeClusterMode)' if sy.get('large') else ''} | {full} | "
                     f"{secs(se['program_s']['skiff'])} |")
    live = live_table(doc["results"])
    if live:
        L += ["", "## Live in-path cost of each program (bpf_stats)", "",
              "Every attached program's run time per packet while the workload ran: the kernel's bpf_stats "
              "(run_time_ns / run_cnt deltas per program id over each measured window), switched on with "
              "BPF_ENABLE_STATS for the datapath runs only. One program may run on several devices (skiff's "
              "from_pod on every pod's host veth), so a figure covers every packet of the workload through "
              "that program on that node, both directions (e.g. ClusterIP: the established forward packets and "
              "the replies). Each includes bpf_stats' own two sched_clock() reads (about 24 ns per run on the 2-core VM the bench was written on: an empty program's figure). The "
              "BPF_PROG_TEST_RUN column times the same kind of packet with warm caches (next section).", ""]
        L += live
    pc = doc["results"].get("prog_cost")
    if pc:
        L += ["", "## Per-packet cost of each program path (BPF_PROG_TEST_RUN)", "",
              f"`build/bin/skiff-prog-bench`: {pc.get('method', '').rstrip('.')}. "
              f"{pc['trials']} trials; ns per packet, median (min-max), and over the empty-program baseline "
              "that matches its runs per call.", "",
              "| path | program | verdict | ns | ns over baseline |", "|---|---|---|---|---|"]
        for p in pc["paths"]:
            over = p.get("ns_over_baseline_median")
            L.append(f"| {p['name']} | {p['program']} | {p['verdict']} | {p['ns_median']:.1f} "
                     f"({p['ns_min']:.1f}-{p['ns_max']:.1f}) | {'-' if over is None else f'{over:.1f}'} |")
    if "placement" in doc["results"]:
        L += placement.markdown_lines(doc["results"]["placement"], summ.get("placement", {}))
    L += ["", "## Caveats", ""] + [f"- {c}" for c in doc["meta"].get("caveats", [])]
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
