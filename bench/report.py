"""Summaries (medians, min-max, per-repetition ratios), the markdown report
and the gnuplot plots of a benchmark run."""
import os
import statistics
import subprocess

REF = ("veth", "wire")  # the physical limit, whichever the scenario has
SETUP_ORDER = ["veth", "wire", "bridge", "skiff"]
METRICS = {"stream1": [("gbps", "Gbit/s", "up")], "stream4": [("gbps", "Gbit/s", "up")],
           "rr": [("tps", "transactions/s", "up"), ("p50_us", "RTT p50 us", "down"),
                  ("p99_us", "RTT p99 us", "down")],
           "crr": [("cps", "connections/s", "up")]}
WL_NAME = {"stream1": "TCP stream, 1 flow", "stream4": "TCP stream, 4 flows",
           "rr": "TCP RR (sockperf ping-pong, 64 B)", "crr": "TCP connect/request/close (wrk)"}
CNI_METRICS = [("add_p50_ms", "ADD p50 ms"), ("add_p99_ms", "ADD p99 ms"), ("del_p50_ms", "DEL p50 ms"),
               ("del_p99_ms", "DEL p99 ms"), ("add_pods_per_s", "ADD pods/s"),
               ("add_del_pods_per_s", "ADD+DEL pods/s")]


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
    return stats([x[metric] / y[metric] for x, y in zip(a, b) if y[metric]])


def _pairs(setups):
    out = [(f"skiff/{r}", "skiff", r) for r in REF if r in setups]
    if "bridge" in setups:
        out.append(("skiff/bridge", "skiff", "bridge"))
    return out


def summarize(results):
    summ = {}
    for scen, wls in results.get("datapath", {}).items():
        for wl, runs in wls.items():
            for metric, _, _ in METRICS[wl]:
                e = summ.setdefault("datapath", {}).setdefault(scen, {}).setdefault(wl, {}).setdefault(metric, {})
                for setup, vals in runs.items():
                    e[setup] = stats([r[metric] for r in vals])
                for label, num, den in _pairs(runs):
                    e[label] = ratios(runs, metric, num, den)
    if "cni" in results:
        for metric, _ in CNI_METRICS:
            e = summ.setdefault("cni", {}).setdefault(metric, {})
            for setup, vals in results["cni"].items():
                e[setup] = stats([r[metric] for r in vals])
            e["skiff/bridge"] = ratios(results["cni"], metric, "skiff", "bridge")
    for n, entry in results.get("scale", {}).items():
        se = summ.setdefault("scale", {}).setdefault(n, {"iptables_rules": entry["iptables_rules"],
                                                         "program_s": entry["program_s"]})
        for wl in ("crr", "rr"):
            for metric, _, _ in METRICS[wl]:
                e = se.setdefault(wl, {}).setdefault(metric, {})
                for setup, vals in entry.get(wl, {}).items():
                    e[setup] = stats([r[metric] for r in vals])
                e["skiff/bridge"] = ratios(entry.get(wl, {}), metric, "skiff", "bridge")
    return summ


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


def write_markdown(doc, path):
    m, summ = doc["meta"], doc["summary"]
    L = ["# skiff benchmark results", "",
         f"{m['date']}, kernel {m['kernel']}, {m['cpus']} CPUs, profile `{m['profile']}`: {m['reps']} "
         f"repetitions, {m['seconds']} s per measurement, setups interleaved (order rotated each repetition). "
         f"Run time {m.get('duration_s', 0):.0f} s.", "",
         "Cells: median (min-max) over repetitions. Ratios are computed per repetition from the same "
         "repetition's pair, then summarized; for rates > 1 means skiff is faster, for latencies < 1 means "
         "skiff is faster.", "",
         "Setups:", "",
         "- **veth**: a direct veth pair between two namespaces (same-node physical limit).",
         "- **wire**: two namespaces on one L2 bridge (no netfilter): node -> node, the cross-node limit.",
         "- **bridge**: reference `bridge` CNI plugin + `host-local` + `ipMasq: true`, br_netfilter "
         f"({m['br_netfilter']}; bridge-nf-call-iptables=1 in the node namespaces), kube-proxy-format "
         f"iptables chains for the service ({m['iptables']}); nodes route each other's pod subnet. Across "
         "nodes the plugin's ipMasq masquerades pod -> remote pod traffic (its rule only exempts the "
         "node's own subnet).",
         "- **skiff**: skiff-agent per node, pods attached by `build/bin/skiff`.", "",
         f"Placement: {m.get('placement', '')}. Underlay bridges have bridge-nf-call-* = 0. "
         "The ClusterIP scenario uses its own client pod (no 4-tuple shared with the direct pod -> pod runs).",
         "", f"skiff binaries: `{m.get('skiff_bin', '')}` (repository at {m.get('repo_commit', '?')}).", ""]
    L += ["## Datapath", "",
          "| scenario | workload | metric | physical limit | bridge | skiff | skiff / limit | skiff / bridge |",
          "|---|---|---|---|---|---|---|---|"]
    for scen, wls in summ.get("datapath", {}).items():
        for wl, metrics in wls.items():
            for metric, label, _ in METRICS[wl]:
                e = metrics.get(metric, {})
                ref = next((r for r in REF if r in e), None)
                L.append(f"| {scen} | {WL_NAME[wl]} | {label} | "
                         f"{(ref + ': ' + cell(e[ref])) if ref else '-'} | {cell(e.get('bridge'))} | "
                         f"{cell(e.get('skiff'))} | {rcell(e.get('skiff/' + ref)) if ref else '-'} | "
                         f"{rcell(e.get('skiff/bridge'))} |")
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
    if "scale" in summ:
        L += ["", "## Service scale: pod -> ClusterIP with N services programmed", "",
              "The service under test comes last in KUBE-SERVICES (chain walked in order: the worst case; "
              "kube-proxy's order is arbitrary). Each other service has 3 endpoints. `program` is the wall "
              "time to install all N (iptables-restore of the whole ruleset vs the agent reading the source "
              "and writing maps).", "",
              "| services | iptables rules | program bridge s | program skiff s | metric | bridge | skiff | "
              "skiff / bridge |", "|---|---|---|---|---|---|---|---|"]
        for n, se in sorted(summ["scale"].items(), key=lambda kv: int(kv[0])):
            first = True
            for wl in ("crr", "rr"):
                for metric, label, _ in METRICS[wl]:
                    e = se.get(wl, {}).get(metric, {})
                    head = (f"| {n} | {se['iptables_rules']} | {se['program_s']['bridge']:.2f} | "
                            f"{se['program_s']['skiff']:.2f} |") if first else "| | | | |"
                    first = False
                    L.append(f"{head} {label} | {cell(e.get('bridge'))} | {cell(e.get('skiff'))} | "
                             f"{rcell(e.get('skiff/bridge'))} |")
    L += ["", "## Caveats", ""] + [f"- {c}" for c in doc["meta"].get("caveats", [])]
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


# ------------------------------------------------------------- plots -----

COLORS = {"limit": "#7f7f7f", "bridge": "#d62728", "skiff": "#1f77b4"}


def _bar_rows(summ, groups):
    """groups: [(label, scen, wl, metric)] -> data rows: label, then
    median min max for limit, bridge, skiff (NaN if absent)."""
    rows = []
    for label, scen, wl, metric in groups:
        e = summ.get("datapath", {}).get(scen, {}).get(wl, {}).get(metric, {})
        ref = next((r for r in REF if r in e), None)
        cols = []
        for s in (e.get(ref) if ref else None, e.get("bridge"), e.get("skiff")):
            cols += [s["median"], s["min"], s["max"]] if s else ["NaN"] * 3
        rows.append([f'"{label}"'] + [str(c) for c in cols])
    return rows


def _histogram(out, name, title, ylabel, rows, series=("physical limit", "bridge + iptables", "skiff"),
               colors=("limit", "bridge", "skiff"), logscale=False):
    dat = os.path.join(out, f"{name}.dat")
    with open(dat, "w") as f:
        for r in rows:
            f.write(" ".join(r) + "\n")
    png = os.path.join(out, f"{name}.png")
    plots = []
    for i, (s, c) in enumerate(zip(series, colors)):
        col = 2 + 3 * i
        xt = ":xtic(1)" if i == 0 else ""
        plots.append(f"'{dat}' using {col}:{col + 1}:{col + 2}{xt} title '{s}' lc rgb '{COLORS[c]}'")
    gp = "\n".join([
        "set terminal pngcairo size 1100,520 font 'sans,10'", f"set output '{png}'",
        f"set title '{title}'", f"set ylabel '{ylabel}'", "set datafile missing 'NaN'",
        "set style data histograms", "set style histogram errorbars gap 1 lw 1",
        "set style fill solid 0.85 border -1", "set boxwidth 0.9", "set key top right", "set grid ytics",
        "set yrange [0:*]" if not logscale else "set logscale y", "set xtics noenhanced font 'sans,9'",
        "plot " + ", ".join(plots), ""])
    with open(os.path.join(out, f"{name}.gp"), "w") as f:
        f.write(gp)
    subprocess.run(["gnuplot", os.path.join(out, f"{name}.gp")], check=True, capture_output=True)
    return png


def plot(doc, out):
    summ = doc["summary"]
    pngs = []
    scens = list(summ.get("datapath", {}))
    short = {"pod-pod same node": "same node", "pod-pod across nodes": "across nodes",
             "pod-ClusterIP same node": "ClusterIP"}
    if scens:
        g = [(f"{short.get(s, s)}, {n} flow{'s' if n > 1 else ''}", s, f"stream{n}", "gbps")
             for s in scens for n in (1, 4)]
        pngs.append(_histogram(out, "throughput", "TCP stream (iperf3), median with min-max", "Gbit/s",
                               _bar_rows(summ, g)))
        g = [(f"{short.get(s, s)} {p}", s, "rr", f"{p}_us") for s in scens for p in ("p50", "p99")]
        pngs.append(_histogram(out, "latency", "TCP request/response round trip (sockperf ping-pong, 64 B), "
                               "log scale", "microseconds", _bar_rows(summ, g), logscale=True))
        g = [(f"{short.get(s, s)} RR", s, "rr", "tps") for s in scens] + \
            [(f"{short.get(s, s)} conn", s, "crr", "cps") for s in scens]
        pngs.append(_histogram(out, "rates", "Request/response rate (1 in flight) and connection rate (wrk)",
                               "per second", _bar_rows(summ, g)))
    if "cni" in summ:
        rows = []
        for metric, label in CNI_METRICS[:4]:
            e = summ["cni"][metric]
            cols = []
            for s in (e.get("bridge"), e.get("skiff")):
                cols += [s["median"], s["min"], s["max"]] if s else ["NaN"] * 3
            rows.append([f'"{label}"'] + [str(c) for c in cols])
        pngs.append(_histogram(out, "cni", "CNI plugin call latency (fork+exec included)", "milliseconds",
                               rows, series=("bridge + host-local", "skiff"), colors=("bridge", "skiff")))
    if "scale" in summ:
        pngs.append(_scale_plot(summ["scale"], out))
    return pngs


def _scale_plot(scale, out):
    dat = os.path.join(out, "scale.dat")
    with open(dat, "w") as f:
        for n in sorted(scale, key=int):
            se = scale[n]
            row = [n]
            for wl, metric in (("crr", "cps"), ("rr", "p99_us"), ("rr", "p50_us")):
                for setup in ("bridge", "skiff"):
                    s = se.get(wl, {}).get(metric, {}).get(setup)
                    row += [s["median"], s["min"], s["max"]] if s else ["NaN"] * 3
            f.write(" ".join(str(x) for x in row) + "\n")
    png = os.path.join(out, "scale.png")
    b, s = COLORS["bridge"], COLORS["skiff"]
    sizes = [int(n) for n in scale]
    xmin, xmax = min(sizes) / 1.5, max(sizes) * 1.5
    gp = f"""set terminal pngcairo size 1100,480 font 'sans,10'
set output '{png}'
set datafile missing 'NaN'
set multiplot layout 1,2 title 'pod -> ClusterIP with N services programmed (target last in KUBE-SERVICES)'
set logscale x
set xrange [{xmin}:{xmax}]
set grid
set xlabel 'services'
set key bottom left
set ylabel 'connections/s'
set yrange [0:*]
plot '{dat}' using 1:2:3:4 with yerrorlines lc rgb '{b}' lw 2 title 'bridge + iptables', \\
     '{dat}' using 1:5:6:7 with yerrorlines lc rgb '{s}' lw 2 title 'skiff'
set ylabel 'RTT microseconds (log scale)'
set logscale y
set yrange [*:*]
set key top left
plot '{dat}' using 1:8:9:10 with yerrorlines lc rgb '{b}' lw 2 title 'bridge p99', \\
     '{dat}' using 1:11:12:13 with yerrorlines lc rgb '{s}' lw 2 title 'skiff p99', \\
     '{dat}' using 1:14:15:16 with yerrorlines lc rgb '{b}' lw 1 dt 2 title 'bridge p50', \\
     '{dat}' using 1:17:18:19 with yerrorlines lc rgb '{s}' lw 1 dt 2 title 'skiff p50'
unset multiplot
"""
    with open(os.path.join(out, "scale.gp"), "w") as f:
        f.write(gp)
    subprocess.run(["gnuplot", os.path.join(out, "scale.gp")], check=True, capture_output=True)
    return png
