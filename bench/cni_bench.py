"""CNI ADD/DEL latency and pods per second, skiff against the reference
bridge plugin (run.py's "cni" section)."""
import os
import re
import subprocess
import time
from datetime import datetime

import topo as T
import workloads as W
from topo import log


def cni_bench(s, n, reps, results):
    """Sequential ADD then DEL of n pods, per plugin, interleaved pod by pod.
    skiff's DEL returns with the host veth down and deletes it in a detached
    process, so for skiff also: the time from each DEL's start until the
    kernel announced its veth's deletion (`ip -ts monitor link`)."""
    topo = s["topo"]
    sk = s["skiff"]
    skn = sk.nodes[0]
    skconf = sk.cluster.plugin_conf(skn)
    skconf.pop("logFile", None)  # like a runtime's conflist: no debug log
    b1 = s["bridge_nodes"][0]

    def skiff(cmd, ns):
        rc, out, err = skn.cni(cmd, container_id=f"c-{ns}", netns=f"/run/netns/{ns}", conf=skconf)
        if rc != 0:
            raise RuntimeError(f"skiff {cmd} failed: {out} {err}")
        return out

    def bridge(cmd, ns):
        b1.cni(cmd, f"c-{ns}", f"/run/netns/{ns}")

    plugins = {"skiff": skiff, "bridge": bridge}
    res = results.setdefault("cni", {})
    for rep in range(reps):
        pods = {name: [topo.pod_ns(T.unique("bcn")) for _ in range(n)] for name in plugins}
        order = W.rotate(list(plugins), rep)
        times = {name: {"ADD": [], "DEL": []} for name in plugins}
        veths, del_start = {}, {}  # skiff: pod ns -> host veth, host veth -> DEL start (wall clock)
        mon_path = os.path.join(topo.tmp, f"cni-links-{rep}.txt")
        with open(mon_path, "w") as f:
            mon = subprocess.Popen(["ip", "-n", skn.ns, "-ts", "-o", "monitor", "link"], stdout=f)
        try:
            for cmd in ("ADD", "DEL"):
                for i in range(n):
                    for name in (order if i % 2 == 0 else order[::-1]):
                        ns = pods[name][i]
                        if name == "skiff" and cmd == "DEL":
                            del_start[veths[ns]] = time.time()
                        dt, out = W.timed(plugins[name], cmd, ns)
                        if name == "skiff" and cmd == "ADD":
                            veths[ns] = out["interfaces"][0]["name"]
                        times[name][cmd].append(dt)
            T.wait_for(lambda: len(veth_deletions(mon_path, del_start)) == n, "skiff's host veths to be deleted",
                       timeout=60)
        finally:
            mon.terminate()
            mon.wait()
            for lst in pods.values():
                for ns in lst:
                    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                    topo.namespaces.remove(ns)
        gone = [(t - del_start[v]) for v, t in veth_deletions(mon_path, del_start).items()]
        for name in plugins:
            add, dele = times[name]["ADD"], times[name]["DEL"]
            out = {"add_p50_ms": pct(add, 50) * 1e3, "add_p99_ms": pct(add, 99) * 1e3,
                   "del_p50_ms": pct(dele, 50) * 1e3, "del_p99_ms": pct(dele, 99) * 1e3,
                   "add_pods_per_s": n / sum(add), "add_del_pods_per_s": n / (sum(add) + sum(dele))}
            if name == "skiff":
                out.update({"veth_gone_p50_ms": pct(gone, 50) * 1e3, "veth_gone_p99_ms": pct(gone, 99) * 1e3})
            res.setdefault(name, []).append(out)
            log(f"rep {rep + 1}/{reps} cni {name:7} {W.short(out)}")


def veth_deletions(path, names):
    """{veth: wall-clock time} of the RTM_DELLINKs for names in an `ip -ts -o monitor link` log."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\[([^\]]+)\] Deleted \d+: ([^@:\s]+)", line)
            if m and m.group(2) in names:
                out.setdefault(m.group(2), datetime.fromisoformat(m.group(1)).timestamp())
    return out


def pct(v, p):
    v = sorted(v)
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)
