"""The gnuplot plots of a benchmark run (run.py writes them next to
results.md)."""
import os
import subprocess

from report import CNI_METRICS, FLOOR, REF, SHORT, ordered

COLORS = {"limit": "#7f7f7f", "floor": "#2ca02c", "bridge": "#d62728", "skiff": "#1f77b4"}


def _bar_rows(summ, groups):
    """groups: [(label, scen, wl, metric)] -> data rows: label, then
    median min max for limit, veth floor, bridge, skiff (NaN if absent)."""
    rows = []
    for label, scen, wl, metric in groups:
        e = summ.get("datapath", {}).get(scen, {}).get(wl, {}).get(metric, {})
        ref = next((r for r in REF if r in e), None)
        cols = []
        for s in (e.get(ref) if ref else None, e.get(FLOOR), e.get("bridge"), e.get("skiff")):
            cols += [s["median"], s["min"], s["max"]] if s else ["NaN"] * 3
        rows.append([f'"{label}"'] + [str(c) for c in cols])
    return rows


def _histogram(out, name, title, ylabel, rows,
               series=("physical limit", "veth floor", "bridge + iptables", "skiff"),
               colors=("limit", "floor", "bridge", "skiff"), logscale=False, width=1100):
    if all(c == "NaN" for r in rows for c in r[1:]):
        return None  # a probe run (run.py --only/--workloads) that measured none of it
    dat = os.path.join(out, f"{name}.dat")
    with open(dat, "w") as f:
        for r in rows:
            f.write(" ".join(r) + "\n")
    png = os.path.join(out, f"{name}.png")
    plots = []
    for i, (s, c) in enumerate(zip(series, colors)):
        col = 2 + 3 * i
        if all(r[col - 1] == "NaN" for r in rows):
            continue  # a setup none of these groups has (the floor outside "across nodes")
        xt = ":xtic(1)" if not plots else ""
        plots.append(f"'{dat}' using {col}:{col + 1}:{col + 2}{xt} title '{s}' lc rgb '{COLORS[c]}'")
    gp = "\n".join([
        f"set terminal pngcairo size {width},520 font 'sans,10'", f"set output '{png}'",
        f"set title '{title}'", f"set ylabel '{ylabel}'", "set datafile missing 'NaN'",
        "set style data histograms", "set style histogram errorbars gap 1 lw 1",
        "set style fill solid 0.85 border -1", "set boxwidth 0.9", "set key outside top center horizontal", "set grid ytics",
        "set yrange [0:*]" if not logscale else "set logscale y", "set xtics noenhanced font 'sans,9'",
        "plot " + ", ".join(plots), ""])
    with open(os.path.join(out, f"{name}.gp"), "w") as f:
        f.write(gp)
    subprocess.run(["gnuplot", os.path.join(out, f"{name}.gp")], check=True, capture_output=True)
    return png


def plot(doc, out):
    summ = doc["summary"]
    pngs = []
    scens = ordered(summ.get("datapath", {}))
    short = SHORT
    width = max(1100, 150 * 2 * len(scens) + 100)  # 2 groups per scenario, room for their labels
    if scens:
        g = [(f"{short.get(s, s)}, {n} flow{'s' if n > 1 else ''}", s, f"stream{n}", "gbps")
             for s in scens for n in (1, 4)]
        pngs.append(_histogram(out, "throughput", "TCP stream (iperf3), median with min-max", "Gbit/s",
                               _bar_rows(summ, g), width=width))
        g = [(f"{short.get(s, s)} {p}", s, "rr", f"{p}_us") for s in scens for p in ("p50", "p99")]
        pngs.append(_histogram(out, "latency", "TCP request/response round trip (sockperf ping-pong, 64 B), "
                               "log scale", "microseconds", _bar_rows(summ, g), logscale=True, width=width))
        g = [(f"{short.get(s, s)} RR", s, "rr", "tps") for s in scens] + \
            [(f"{short.get(s, s)} conn", s, "crr", "cps") for s in scens]
        pngs.append(_histogram(out, "rates", "Request/response rate (1 in flight) and connection rate (wrk)",
                               "per second", _bar_rows(summ, g), width=width))
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
    return [p for p in pngs if p]


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
            sy = se.get("iptables_sync") or {}
            # columns 20-23: iptables install, one change (partial), full sync; skiff program
            for x in (se["program_s"].get("bridge"), sy.get("partial_s"), sy.get("full_s"),
                      se["program_s"].get("skiff")):
                row.append(x if x is not None else "NaN")
            f.write(" ".join(str(x) for x in row) + "\n")
    png = os.path.join(out, "scale.png")
    b, s = COLORS["bridge"], COLORS["skiff"]
    sizes = [int(n) for n in scale]
    xmin, xmax = min(sizes) / 1.5, max(sizes) * 1.5
    gp = f"""set terminal pngcairo size 1600,480 font 'sans,10'
set output '{png}'
set datafile missing 'NaN'
set multiplot layout 1,3 title 'pod -> ClusterIP with N services programmed (target last in KUBE-SERVICES)'
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
set ylabel 'seconds (log scale)'
set title 'time to program'
plot '{dat}' using 1:20 with linespoints lc rgb '{b}' lw 2 pt 7 title 'iptables install', \\
     '{dat}' using 1:21 with linespoints lc rgb '{b}' lw 1 dt 2 pt 5 title 'iptables one change (partial sync)', \\
     '{dat}' using 1:22 with linespoints lc rgb '{b}' lw 1 dt 3 pt 4 title 'iptables full sync', \\
     '{dat}' using 1:23 with linespoints lc rgb '{s}' lw 2 pt 7 title 'skiff program (wall)'
unset multiplot
"""
    with open(os.path.join(out, "scale.gp"), "w") as f:
        f.write(gp)
    subprocess.run(["gnuplot", os.path.join(out, "scale.gp")], check=True, capture_output=True)
    return png
