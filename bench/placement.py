"""Placement study (run.py --placements): skiff against the physical limit
(the veth pair on one node, node -> node across nodes) and the veth floor,
with the client and server processes placed three ways:

  unpinned  neither is pinned: the scheduler places them, and may move them
            (the bench's own CPU affinity, normally every CPU);
  split     server on CPU 1, client on CPU 0 (run.py's usual placement);
  same      both on CPU 1.

Workloads: TCP request/response (sockperf ping-pong), one TCP stream
(iperf3) and connections/s (wrk, one request per connection).

Rounds: each round measures every placement, workload, scenario and setup
once, the order of the placements and of the setups rotated per round, so
that drift of this shared machine hits skiff and its references alike.
Ratios are taken per round (skiff / limit, skiff / floor, floor / limit,
from runs seconds apart) and summarised as median (min-max), each next to
the absolute difference of the time per operation: the mean round trip
(1e6 / transactions per s) for request/response, the time per connection
(1e6 / connections per s, wrk keeping 16 in flight) for connections/s, and
the time per MB received for the stream.

Wake-up IPIs: the "Rescheduling interrupts" (RES) and "Function call
interrupts" (CAL) rows of /proc/interrupts, read right before and after
each run; a remote wake-up is a RES IPI, or a CAL one when the scheduler
queues the wake-up on the target CPU. Divided by the run's operations (round
trips, connections, MB), they show per run whether the pair ran on one CPU
(about none) or on two (about one per wake-up). /proc/interrupts counts the
whole machine, so other processes' wake-ups are in it too.

The servers are moved between placements with sched_setaffinity on every
thread of the iperf3, sockperf and nginx processes in the server
namespaces; they go back to run.py's CPU when the study ends.
"""
import contextlib
import os
import time

import live as LV
import report
import topo as T
import workloads as W
from report import CROSS, SAME, cell, fmt, rcell, stats
from topo import log

PLACEMENTS = ("unpinned", "split", "same")
WORKLOADS = ("rr", "stream1", "crr")  # stream4 may be asked for too
SETUPS = {SAME: ("veth", "floor", "skiff"), CROSS: ("wire", "floor", "skiff")}
LIMIT = {SAME: "veth", CROSS: "wire"}
NEEDS = {SAME: {"veth", "floor_local", "skiff"}, CROSS: {"wire", "floor", "skiff"}}
SERVER_PROCS = ("iperf3", "sockperf", "nginx")
RATE = {"rr": ("tps", "transactions/s"), "crr": ("cps", "connections/s"), "stream1": ("gbps", "Gbit/s"),
        "stream4": ("gbps", "Gbit/s")}
OP = {"rr": "round trip", "crr": "connection", "stream1": "MB", "stream4": "MB"}
WL = {"rr": "request/response", "crr": "connections/s", "stream1": "stream, 1 flow", "stream4": "stream, 4 flows"}
# (workload, scenario, pair) -> minimum ratio (the issue's targets).
TARGETS = {("rr", SAME, "skiff/veth"): 0.95, ("rr", CROSS, "skiff/wire"): 0.95,
           ("crr", SAME, "skiff/veth"): 0.95, ("crr", CROSS, "skiff/floor"): 0.95}
INPATH_MAX = 1.5  # skiff's BPF ns per operation / the floor's, same round
IPIS = ("RES", "CAL")


def needs(scenarios):
    """The topo.build_all setups the study's scenarios need."""
    return set().union(*(NEEDS[s] for s in scenarios))


def cpu_sets(placement):
    """(server CPUs, client taskset list or None) of a placement."""
    if placement == "unpinned":
        return set(os.sched_getaffinity(0)), None
    if placement == "split":
        return {int(W.SERVER_CPU)}, W.CLIENT_CPU
    if placement == "same":
        return {int(W.SERVER_CPU)}, W.SERVER_CPU
    raise ValueError(placement)


def describe(placement):
    srv, cli = cpu_sets(placement)
    if cli is None:
        return f"not pinned (CPUs {','.join(map(str, sorted(srv)))})"
    return f"server on CPU {','.join(map(str, sorted(srv)))}, client on CPU {cli}"


# ----------------------------------------------------- servers and IPIs -----

def server_pids(ns):
    """[pid] of the benchmark servers running in network namespace ns."""
    st = os.stat(f"/run/netns/{ns}")
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            pst = os.stat(f"/proc/{pid}/ns/net")
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino) and comm in SERVER_PROCS:
            out.append(int(pid))
    return out


def pin_servers(namespaces, cpus):
    """Every thread of the servers in these namespaces onto cpus; checks
    that each namespace has its three servers and that they took it."""
    for ns in namespaces:
        pids = server_pids(ns)
        if len(pids) < len(SERVER_PROCS):
            raise RuntimeError(f"{ns}: found servers {pids}, expected {', '.join(SERVER_PROCS)}")
        for pid in pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(int(tid), cpus)
            if os.sched_getaffinity(pid) != cpus:
                raise RuntimeError(f"{ns}: server {pid} is on {os.sched_getaffinity(pid)}, not {cpus}")


def ipis():
    """{"RES": [per CPU], "CAL": [per CPU]} from /proc/interrupts."""
    out = {}
    with open("/proc/interrupts") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() in IPIS:
                vals = []
                for x in rest.split():
                    if not x.isdigit():
                        break
                    vals.append(int(x))
                out[name.strip()] = vals
    return out


def ops(wl, out):
    """The run's operations: round trips, connections or MB received."""
    if wl == "rr":
        return out.get("transactions")
    if wl == "crr":
        return out.get("requests") or out["cps"] * out.get("seconds", 0) or None
    return out["bytes"] / 1e6 if out.get("bytes") else None


def us_per_op(wl, out):
    rate = out.get(RATE[wl][0])
    if not rate:
        return None
    return 8000.0 / rate if wl.startswith("stream") else 1e6 / rate


def measured(wl, client, ip, seconds, cpu):
    """One run with its wake-up IPIs: RES/CAL per CPU over the run, and per
    operation and per second."""
    before, t0 = ipis(), time.monotonic()
    out = W.measure(wl, client, ip, seconds, cpu=cpu)
    after, dt = ipis(), time.monotonic() - t0
    delta = {k: [a - b for a, b in zip(after[k], before[k])] for k in IPIS if k in after and k in before}
    total = sum(sum(v) for v in delta.values())
    n = ops(wl, out)
    out.update({"ipi": delta, "ops": n, "ipi_per_op": total / n if n else None, "ipi_per_s": total / dt,
                "us_per_op": us_per_op(wl, out)})
    return out


# Every packet meets exactly one of these: the program on its sender's host
# veth (skiff's from_pod, the floor's floor_out or floor_local).
FIRST_HOP = ("from_pod", "floor_out", "floor_local")


def bpf_cost(out):
    """Every attached program's run time over the run (bpf_stats), per
    operation and per packet (the packets: first-hop program runs)."""
    b = out.get("bpf")
    if not b:
        return None, None
    total = sum(v["ns"] * v["runs"] for v in b.values())
    packets = sum(v["runs"] for k, v in b.items() if k.split("/")[-1] in FIRST_HOP)
    return (total / out["ops"] if out.get("ops") else None), (total / packets if packets else None)


# ---------------------------------------------------------------- study -----

def one_run(sk, progs, name, wl, setup, seconds, cpu):
    """One measured run of one setup: the workload's figures, wake-up IPIs,
    bpf_stats deltas of the setup's programs, skiff's drop counters."""
    client, ip = setup
    drops0 = sk.drops() if name == "skiff" else None
    out = LV.measure_live(progs, name, lambda: measured(wl, client, ip, seconds, cpu))
    out["bpf_ns_per_op"], out["bpf_ns_per_packet"] = bpf_cost(out)
    if drops0 is not None:
        d1 = sk.drops()
        out["drops"] = {k: v - drops0.get(k, 0) for k, v in d1.items() if v > drops0.get(k, 0)}
    return out


def study(s, placements, rounds, seconds, scenarios, workloads, stats_on=True):
    """The measurements; returns {"meta", "runs": {placement: {scenario:
    {workload: {setup: [run]}}}}}, each run with its round."""
    topo, sk = s["topo"], s["skiff"]
    if len(os.sched_getaffinity(0)) < 2 and ("split" in placements or "unpinned" in placements):
        raise RuntimeError("the placement study needs two CPUs (split: client and server on different ones)")
    setups, servers, floors = {}, [], []
    log("placement study: attaching skiff pods, starting servers")
    # scenario: its reference setup (and the key of its pair in s), its
    # floor's pair, the skiff server's node (the client is on node 0).
    for scenario, ref, ref_key, floor_key, srv_node in ((SAME, "veth", "veth", "floor_local_pods", 0),
                                                        (CROSS, "wire", "wire_nodes", "floor_pods", 1)):
        if scenario not in scenarios:
            continue
        (ra, rb), (fa, fb) = s[ref_key], s[floor_key]
        c, srv = sk.add_pod(0), sk.add_pod(srv_node)
        setups[scenario] = {ref: (ra, rb.ip), "floor": (fa, fb.ip), "skiff": (c, srv.ip)}
        servers += [rb, fb, srv]
        floors.append((fa, fb))
    for ep in servers:
        if not W.listening(ep.ns, W.SOCKPERF_PORT):  # run.py's datapath section may have started them
            W.start_servers(topo, ep)
    for st in setups.values():
        for client, ip in st.values():
            W.tune_client(client.ns)
            T.wait_for(lambda c=client, ip=ip: c.run("curl", "-s", "-m", "2", f"http://{ip}:{W.HTTP_PORT}/",
                                                      check=False).stdout.strip() == "ok",
                       f"{client.label} -> {ip}", timeout=15)
    for a, b in floors:
        if not (T.floor_forwards(a, b) and T.floor_forwards(b, a)):
            raise RuntimeError("the veth floor does not carry its pods' traffic (echo reply TTL is not 64)")
    progs = LV.live_programs(s) if stats_on else {}
    runs = {pl: {} for pl in placements}
    meta = {"placements": {pl: describe(pl) for pl in placements}, "rounds": rounds, "seconds": seconds,
            "scenarios": list(setups), "workloads": list(workloads), "bpf_stats": stats_on,
            "affinity": sorted(os.sched_getaffinity(0)), "round_loadavg": []}
    started = time.monotonic()
    try:
        with LV.BpfStats() if stats_on else contextlib.nullcontext():
            for r in range(rounds):
                meta["round_loadavg"].append(W.loadavg()[0])
                for pl in W.rotate(list(placements), r):
                    srv_cpus, cli = cpu_sets(pl)
                    pin_servers([ep.ns for ep in servers], srv_cpus)
                    for wl in workloads:
                        for scen, st in setups.items():
                            for name in W.rotate(list(st), r):
                                out = one_run(sk, progs, name, wl, st[name], seconds, cli)
                                out["round"] = r
                                runs[pl].setdefault(scen, {}).setdefault(wl, {}).setdefault(name, []).append(out)
                                log(f"round {r + 1}/{rounds} {pl:8} {report.SHORT[scen]:12} {wl:7} {name:5} "
                                    f"{RATE[wl][0]}={out[RATE[wl][0]]:.4g} us/op={fmt(out['us_per_op'])} "
                                    f"ipi/op={fmt(out['ipi_per_op'])}"
                                    + (f" bpf ns/packet={fmt(out['bpf_ns_per_packet'])}"
                                       if out["bpf_ns_per_packet"] else ""))
    finally:
        with contextlib.suppress(Exception):
            pin_servers([ep.ns for ep in servers], {int(W.SERVER_CPU)})
    meta["duration_s"] = time.monotonic() - started
    return {"meta": meta, "runs": runs}


# -------------------------------------------------------------- summary -----

def _by_round(lst):
    return {r["round"]: r for r in lst}


def _paired(a, b, fn):
    """fn(x, y) over the rounds both lists have, None results dropped."""
    ra, rb = _by_round(a), _by_round(b)
    out = [fn(ra[k], rb[k]) for k in sorted(ra) if k in rb]
    return [v for v in out if v is not None]


def _ratio(key):
    return lambda x, y: x[key] / y[key] if x.get(key) is not None and y.get(key) else None


def _diff(key):
    return lambda x, y: x[key] - y[key] if x.get(key) is not None and y.get(key) is not None else None


def pairs(scen, setups):
    lim = LIMIT.get(scen)
    out = [(f"skiff/{lim}", "skiff", lim), ("skiff/floor", "skiff", "floor"), (f"floor/{lim}", "floor", lim)]
    return [(label, a, b) for label, a, b in out if a in setups and b in setups]


def colocation_refs(summ, scen, wl, setup):
    """(threshold, together ref, apart ref) of IPIs per operation for one
    setup and workload, from the pinned placements' medians; None when they
    did not both run or do not tell the two apart (apart < 2x together)."""
    try:
        apart = summ["split"][scen][wl]["setups"][setup]["ipi_per_op"]["median"]
        together = summ["same"][scen][wl]["setups"][setup]["ipi_per_op"]["median"]
    except (KeyError, TypeError):
        return None
    if apart is None or together is None or apart < 2 * together or apart - together < 0.01:
        return None
    return (apart + together) / 2, together, apart


def summarize(res):
    """Per placement, scenario and workload: each setup's figures, the
    pairs' ratios and differences, skiff's in-path cost against the
    floor's. Marks each run "together" (co-located) where the pinned
    placements tell it."""
    summ = {}
    for r in (r for scens in res["runs"].values() for wls in scens.values() for setups in wls.values()
              for lst in setups.values() for r in lst):
        if r.get("bpf"):
            r["bpf_ns_per_op"], r["bpf_ns_per_packet"] = bpf_cost(r)
    for pl, scens in res["runs"].items():
        for scen, wls in scens.items():
            for wl, setups in wls.items():
                metric = RATE[wl][0]
                e = summ.setdefault(pl, {}).setdefault(scen, {}).setdefault(wl, {})
                e["setups"] = {name: {k: stats([r.get(k) for r in lst])
                                      for k in (metric, "us_per_op", "ipi_per_op", "ipi_per_s", "bpf_ns_per_op",
                                                "bpf_ns_per_packet")}
                               for name, lst in setups.items()}
                e["pairs"] = {label: {"ratio": stats(_paired(setups[a], setups[b], _ratio(metric))),
                                      "diff_us": stats(_paired(setups[a], setups[b], _diff("us_per_op")))}
                              for label, a, b in pairs(scen, setups)}
                if "skiff" in setups and "floor" in setups:
                    sf = setups["skiff"], setups["floor"]
                    e["inpath"] = {"ratio": stats(_paired(*sf, _ratio("bpf_ns_per_packet"))),
                                   "diff_ns": stats(_paired(*sf, _diff("bpf_ns_per_packet"))),
                                   "ratio_per_op": stats(_paired(*sf, _ratio("bpf_ns_per_op")))}
    for pl, scens in res["runs"].items():
        for scen, wls in scens.items():
            for wl, setups in wls.items():
                for name, lst in setups.items():
                    refs = colocation_refs(summ, scen, wl, name)
                    entry = summ[pl][scen][wl]["setups"][name]
                    if refs is None:
                        entry["together"] = None
                        continue
                    for r in lst:
                        if r.get("ipi_per_op") is not None:
                            r["together"] = r["ipi_per_op"] < refs[0]
                    flags = [r["together"] for r in lst if "together" in r]
                    entry["together"] = {"runs": sum(flags), "of": len(flags), "threshold": refs[0]}
                for label, a, b in pairs(scen, setups):
                    rounds = _paired(setups[a], setups[b], lambda x, y: (x, y))
                    known = [(x, y) for x, y in rounds if "together" in x and "together" in y]
                    alike = [(x, y) for x, y in known if x["together"] == y["together"]]
                    metric = RATE[wl][0]
                    summ[pl][scen][wl]["pairs"][label]["alike"] = {
                        "runs": len(alike), "of": len(known),
                        "ratio": stats([x[metric] / y[metric] for x, y in alike if y.get(metric)])}
    return summ


# ------------------------------------------------------------- markdown -----

def _target(wl, scen, label, ratio):
    t = TARGETS.get((wl, scen, label))
    if t is None:
        return "-", "-"
    if not ratio:
        return f">= {t}", "-"
    return f">= {t}", "met" if round(ratio["median"], 2) >= t else "**not met**"


def _alike(a):
    if not a or not a["of"]:
        return "-"
    return f"{a['runs']} of {a['of']}" + (f" ({rcell(a['ratio'])})" if a["runs"] and a["runs"] < a["of"] else "")


def _rounds_below(runs_a, runs_b, metric, t):
    vals = _paired(runs_a, runs_b, _ratio(metric))
    return sum(1 for v in vals if v < t), len(vals)


def _signed(x, scale=1.0):
    x = x / scale
    return ("+" if x >= 0 else "") + fmt(x)


def _diff_cell(x, unit, scale=1.0):
    if not x:
        return "-"
    return (f"{_signed(x['median'], scale)} {unit} ({_signed(x['min'], scale)} to "
            f"{_signed(x['max'], scale)})")


def placement_table(pl, summ_pl, runs_pl):
    L = ["| scenario | workload | pair | ratio, median (min-max) | difference per operation, median (min to "
         "max) | target | verdict | rounds below target | rounds both runs placed alike (their ratio) |",
         "|---|---|---|---|---|---|---|---|---|"]
    for scen in report.ordered(summ_pl):
        for wl, e in summ_pl[scen].items():
            metric = RATE[wl][0]
            for label, p in e["pairs"].items():
                tgt, verdict = _target(wl, scen, label, p["ratio"])
                below = "-"
                if tgt != "-":
                    a, b = label.split("/")
                    k, n = _rounds_below(runs_pl[scen][wl][a], runs_pl[scen][wl][b], metric, TARGETS[(wl, scen, label)])
                    below = f"{k} of {n}"
                L.append(f"| {report.SHORT[scen]} | {WL[wl]} | {label} ({RATE[wl][1]}) | {rcell(p['ratio'])} | "
                         f"{_diff_cell(p['diff_us'], 'us per ' + OP[wl])} | {tgt} | {verdict} | {below} | "
                         f"{_alike(p.get('alike'))} |")
            ip = e.get("inpath")
            if ip and ip["ratio"]:
                vals = _paired(runs_pl[scen][wl]["skiff"], runs_pl[scen][wl]["floor"], _ratio("bpf_ns_per_packet"))
                ok = "met" if round(ip["ratio"]["median"], 2) <= INPATH_MAX else "**not met**"
                L.append(f"| {report.SHORT[scen]} | {WL[wl]} | skiff/floor, in-path BPF ns per packet (bpf_stats) | "
                         f"{rcell(ip['ratio'])} | {_diff_cell(ip['diff_ns'], 'ns per packet')} | "
                         f"<= {INPATH_MAX} | {ok} | {sum(1 for v in vals if v > INPATH_MAX)} of {len(vals)} above | "
                         f"per {OP[wl]}: {rcell(ip.get('ratio_per_op'))} |")
    L += ["", "| scenario | workload | setup | rate, median (min-max) | us per operation | wake-up IPIs per "
              "operation | wake-up IPIs per s | BPF ns per packet | BPF ns per operation | runs classed co-located |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for scen in report.ordered(summ_pl):
        for wl, e in summ_pl[scen].items():
            metric = RATE[wl][0]
            for name in SETUPS[scen]:
                st = e["setups"].get(name)
                if not st:
                    continue
                tg = st.get("together")
                col = f"{tg['runs']} of {tg['of']}" if tg else "-"
                L.append(f"| {report.SHORT[scen]} | {WL[wl]} | {name} | {cell(st[metric])} {RATE[wl][1]} | "
                         f"{cell(st['us_per_op'])} per {OP[wl]} | {cell(st['ipi_per_op'])} | {cell(st['ipi_per_s'])} | "
                         f"{cell(st['bpf_ns_per_packet'])} | {cell(st['bpf_ns_per_op'])} | {col} |")
    return L


def per_run_table(res, summ):
    L = ["| placement | scenario | workload | setup | wake-up IPIs per operation, round by round "
         "(* = classed co-located) |", "|---|---|---|---|---|"]
    for pl, scens in res["runs"].items():
        for scen in report.ordered(scens):
            for wl, setups in scens[scen].items():
                for name in SETUPS[scen]:
                    lst = setups.get(name)
                    if not lst:
                        continue
                    tg = summ[pl][scen][wl]["setups"][name].get("together")
                    cells = []
                    for r in lst:
                        v = r.get("ipi_per_op")
                        mark = "*" if tg and v is not None and v < tg["threshold"] else ""
                        cells.append(f"{fmt(v)}{mark}" if v is not None else "-")
                    L.append(f"| {pl} | {report.SHORT[scen]} | {WL[wl]} | {name} | {' '.join(cells)} |")
    return L


def markdown_lines(res, summ, level="##"):
    m = res["meta"]
    L = ["", f"{level} Placements", "",
         f"{m['rounds']} rounds x {m['seconds']} s per run; each round runs every placement (order rotated), "
         "workload, scenario and setup (order rotated), so the runs of a pair are seconds apart. Ratios are "
         "per round (rate of the first setup / rate of the second), then median (min-max). The difference is "
         "the first setup's time per operation minus the second's (positive: the first is slower): mean round "
         "trip (1e6 / transactions per s) for request/response, time per connection (1e6 / connections per s; "
         "wrk keeps 16 in flight) for connections/s, time per MB received for the stream. Wake-up IPIs: "
         "Rescheduling + Function call interrupts (/proc/interrupts, whole machine, so other processes' "
         "wake-ups count too) over the run, per operation. A run is classed co-located when its IPIs per "
         "operation are below the midpoint of the same setup's medians pinned to two CPUs (split) and to one "
         "(same), where those differ by at least 2x; a pair's two runs are placed alike when both are classed "
         "the same way. In-path cost: every attached program's bpf_stats run time over the run (each run "
         "includes bpf_stats' two clock reads), per packet (packets: the runs of the program on the sender's "
         "host veth, skiff's from_pod or the floor's, which every packet meets once; across nodes skiff's "
         "figure also holds its uplink programs, as the floor's holds its own) and per operation"
         + ("" if m.get("bpf_stats") else " (bpf_stats were off in this run)") + ".", "",
         f"Placements: {'; '.join(f'**{k}**: {v}' for k, v in m['placements'].items())}. 1-minute load average "
         f"at the start of each round: {', '.join(f'{x:.2f}' for x in m.get('round_loadavg', []))}. "
         f"Study time {m.get('duration_s', 0):.0f} s.", "",
         "Targets: request/response >= 0.95 of the physical limit (the veth pair on one node, node -> node "
         "across nodes) in every placement; connections/s >= 0.95 of the veth pair on one node and of the veth "
         f"floor across nodes; skiff's BPF time per operation <= {INPATH_MAX}x the floor's in the same round. "
         "Verdicts are on the median; the last column counts the rounds on the wrong side."]
    for pl in res["runs"]:
        if pl not in summ:
            continue
        L += ["", f"{level}# {pl}: {m['placements'].get(pl, '')}", ""]
        L += placement_table(pl, summ[pl], res["runs"][pl])
    drops = [(pl, scen, wl, r["drops"]) for pl, scens in res["runs"].items() for scen, wls in scens.items()
             for wl, setups in wls.items() for r in setups.get("skiff", []) if r.get("drops")]
    L += ["", "skiff drop counters over the skiff runs: " + ("; ".join(
        f"{pl} {report.SHORT[scen]} {wl}: " + ", ".join(f"{k} {v:,}" for k, v in d.items())
        for pl, scen, wl, d in drops) or "none") + "."]
    L += ["", f"{level}# Wake-up IPIs per run", ""] + per_run_table(res, summ)
    return L


def markdown_doc(doc):
    """results.md of a run that measured only the placement study."""
    m = doc["meta"]
    res = doc["results"]["placement"]
    L = ["# skiff placement study", "",
         f"{m['date']}, kernel {m['kernel']}, {m['cpus']} CPUs, skiff binaries `{m.get('skiff_bin', '')}` "
         f"(repository at {m.get('repo_commit', '?')}); 1-minute load average {m['loadavg_start'][0]:.2f} at "
         f"the start, {m.get('loadavg_end', [0])[0]:.2f} at the end; run time {m.get('duration_s', 0):.0f} s.", "",
         "Setups: **veth**, a direct veth pair (the same-node limit); **wire**, two namespaces on one L2 bridge "
         "(node -> node, the cross-node limit); **floor**, the veth floor (`bench/floor/`: one lookup and "
         "`bpf_redirect_peer` on one node; FIB lookup and redirect across nodes); **skiff** with its agents."]
    L += markdown_lines(res, doc["summary"].get("placement", {}))
    return L
