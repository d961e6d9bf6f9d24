"""In-path cost of the attached BPF programs, live: the kernel's own
per-program statistics (run_time_ns and run_cnt, `bpftool prog show`)
read before and after a measured window; their deltas give ns per packet
per program over exactly the packets of that window.

The statistics are switched on with BPF_ENABLE_STATS, which hands back a
file descriptor: they stay on while it is open and the kernel switches them
off when it is closed, also when this process dies. The
kernel.bpf_stats_enabled sysctl is not written. Where that call is not
available the sysctl is set to 1 and its previous value restored in
`finally`.

What bpf_stats measures: the program's run, timed with sched_clock()
around the call (so each figure includes those two clock reads: about 24 ns
per run on the 2-core VM this was written on, the empty program's
bpf_stats figure in skiff-prog-bench), not the redirect itself or the stack
around it.

Also here: run.py --live (live_probe) and the BPF_PROG_TEST_RUN figures
(prog_cost, build/bin/skiff-prog-bench).
"""
import ctypes
import json
import os
import platform
import subprocess
import sys
import time

import report
import topo as T
import workloads as W
from topo import attached_programs, log

BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


class BpfStats:
    """with BpfStats(): run-time statistics on for every BPF program."""

    def __init__(self):
        self.fd = None
        self.prev = None

    def __enter__(self):
        if SYS_BPF is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            attr = (ctypes.c_uint8 * 128)()  # union bpf_attr, enable_stats.type = BPF_STATS_RUN_TIME
            ctypes.c_uint32.from_buffer(attr, 0).value = BPF_STATS_RUN_TIME
            fd = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(BPF_ENABLE_STATS), attr,
                              ctypes.c_uint(ctypes.sizeof(attr)))
            if fd >= 0:
                self.fd = fd
                return self
            log(f"BPF_ENABLE_STATS failed ({os.strerror(ctypes.get_errno())}): setting {SYSCTL}")
        with open(SYSCTL) as f:
            self.prev = f.read().strip()
        try:
            with open(SYSCTL, "w") as f:
                f.write("1")
        except BaseException:
            self._restore()
            raise
        return self

    def _restore(self):
        if self.prev is not None:
            with open(SYSCTL, "w") as f:
                f.write(self.prev)
            self.prev = None

    def __exit__(self, *exc):
        try:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
        finally:
            self._restore()
        return False


def prog_stats(ids):
    """{id: (run_time_ns, run_cnt)} of the programs with these ids."""
    ids = set(ids)
    if not ids:
        return {}
    out = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                                    check=True).stdout or "[]")
    return {p["id"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in out if p["id"] in ids}


class Programs:
    """The programs a setup has attached: {label: [ids]}, a label being
    'node/program' (e.g. 'node-1/from_pod'); one program may be attached to
    many devices (skiff's from_pod on every pod's host veth)."""

    def __init__(self, nodes):
        """nodes: {node label: namespace}."""
        self.labels = {}
        for node, ns in nodes.items():
            for p in attached_programs(ns):
                label = f"{node}/{short_name(p['name'])}"
                self.labels.setdefault(label, set()).add(p["id"])

    def ids(self):
        return {i for ids in self.labels.values() for i in ids}

    def snapshot(self):
        return prog_stats(self.ids())

    def delta(self, before, after):
        """{label: {"ns": ns per run, "runs": runs}} for the labels that ran."""
        out = {}
        for label, ids in sorted(self.labels.items()):
            t = sum(after.get(i, (0, 0))[0] - before.get(i, (0, 0))[0] for i in ids)
            n = sum(after.get(i, (0, 0))[1] - before.get(i, (0, 0))[1] for i in ids)
            if n >= MIN_RUNS:
                out[label] = {"ns": t / n, "runs": n}
        return out


# Fewer runs in a window are stray packets (ARP, the agents' own traffic),
# not the workload's.
MIN_RUNS = 100

NAMES = {"skiff_from_pod": "from_pod", "skiff_uplink": "from_uplink", "skiff_to_uplink": "to_uplink"}


def short_name(name):
    name = (name or "").split(":")[0]  # bpftool net: "skiff_from_pod:[5642]"
    return NAMES.get(name, name)


# ------------------------------------------------- live runs and probe -----

def live_programs(s):
    """{setup: live.Programs} for the setups with BPF programs in s."""
    out = {}
    if "skiff" in s:
        out["skiff"] = Programs({f"node-{i + 1}": nd.ns for i, nd in enumerate(s["skiff"].nodes)})
    nodes = {}
    if "floor_pods" in s:
        nodes.update({f"node-{i + 1}": p.node_ns for i, p in enumerate(s["floor_pods"])})
    if "floor_local_pods" in s:
        nodes["local"] = s["floor_local_pods"][0].node_ns
    if nodes:
        out["floor"] = Programs(nodes)
    return out


def measure_live(progs, name, fn):
    """fn()'s result, with {"bpf": {program: {ns, runs}}} for setups with
    programs: bpf_stats deltas over the window (stats must be on)."""
    p = progs.get(name) if progs else None
    before = p.snapshot() if p else None
    out = fn()
    if p:
        out["bpf"] = p.delta(before, p.snapshot())
    return out


PROBES = {"same": report.SAME, "across": report.CROSS, "clusterip": report.SVC,
          "clusterip-remote": report.SVC_REMOTE}


def live_probe(spec, reps, seconds, out_dir, with_prog):
    """--live SCENARIO:WORKLOAD: one workload of one scenario, only the
    setups it needs (physical limit, veth floor, skiff), bpf_stats on;
    under a minute. Prints the live ns per packet of each program next to
    its BPF_PROG_TEST_RUN figure (with --live-prog) and writes
    <out>/live.json."""
    scen_key, _, wl = spec.partition(":")
    if scen_key not in PROBES or wl not in report.METRICS:
        sys.exit(f"--live {spec!r}: want SCENARIO:WORKLOAD, SCENARIO one of {', '.join(PROBES)}, "
                 f"WORKLOAD one of {', '.join(report.METRICS)}")
    scen = PROBES[scen_key]
    need = {report.SAME: {"veth", "floor_local", "skiff"}, report.CROSS: {"wire", "floor", "skiff"},
            report.SVC: {"floor_local", "skiff"}, report.SVC_REMOTE: {"floor", "skiff"}}[scen]
    started = time.monotonic()
    load0 = W.loadavg()
    topo, s = T.build_all(only=need)
    runs = {}
    try:
        sk = s["skiff"]
        servers, setups = [], {}
        if scen == report.SAME:
            (va, vb), (fa, fb) = s["veth"], s["floor_local_pods"]
            c, srv = sk.add_pod(0), sk.add_pod(0)
            setups = {"veth": (va, vb.ip), "floor": (fa, fb.ip), "skiff": (c, srv.ip)}
            servers = [vb, fb, srv]
        elif scen == report.CROSS:
            (wa, wb), (fa, fb) = s["wire_nodes"], s["floor_pods"]
            c, srv = sk.add_pod(0), sk.add_pod(1)
            setups = {"wire": (wa, wb.ip), "floor": (fa, fb.ip), "skiff": (c, srv.ip)}
            servers = [wb, fb, srv]
        else:
            c, srv = sk.add_pod(0), sk.add_pod(0 if scen == report.SVC else 1)
            vip = T.VIP if scen == report.SVC else T.VIP_REMOTE
            sk.publish([W.web_service(srv.ip, "web", vip)])
            # The veth floor of the same placement: the in-run reference.
            fa, fb = s["floor_local_pods"] if scen == report.SVC else s["floor_pods"]
            setups = {"floor": (fa, fb.ip), "skiff": (c, vip)}
            servers = [fb, srv]
        for ep in servers:
            W.start_servers(topo, ep)
        for client, ip in setups.values():
            W.tune_client(client.ns)
            port = 80 if ip in (T.VIP, T.VIP_REMOTE) else 8080
            T.wait_for(lambda c=client, ip=ip, port=port: c.run("curl", "-s", "-m", "2", f"http://{ip}:{port}/",
                                                                 check=False).stdout.strip() == "ok",
                       f"{client.label} -> {ip}:{port}", timeout=15)
        pair = s.get("floor_local_pods") if scen in (report.SAME, report.SVC) else s.get("floor_pods")
        if pair and not (T.floor_forwards(pair[0], pair[1]) and T.floor_forwards(pair[1], pair[0])):
            raise RuntimeError("the veth floor does not carry its pods' traffic (echo reply TTL is not 64)")
        progs = live_programs(s)
        with BpfStats():
            for rep in range(reps):
                for name in W.rotate(list(setups), rep):
                    client, ip = setups[name]
                    out = measure_live(progs, name, lambda: W.measure(wl, client, ip, seconds,
                                                                      svc=ip in (T.VIP, T.VIP_REMOTE)))
                    runs.setdefault(name, []).append(out)
                    log(f"rep {rep + 1}/{reps} {scen:26} {wl:8} {name:7} {W.short(out)}")
    finally:
        log("tearing down")
        topo.close()
    prog = prog_cost(True) if with_prog else None
    doc = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "kernel": platform.release(),
                    "scenario": scen, "workload": wl, "reps": reps, "seconds": seconds,
                    "loadavg_start": load0, "loadavg_end": W.loadavg(), "duration_s": time.monotonic() - started},
           "results": {"datapath": {scen: {wl: runs}}, "prog_cost": prog}}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "live.json"), "w") as f:
        json.dump(doc, f, indent=2)
    print("\n".join(report.live_lines(doc["results"], doc["meta"])))


def prog_cost(quick):
    """Per-packet cost of each program path: build/bin/skiff-prog-bench
    (BPF_PROG_TEST_RUN in its own netns and pin dir; see bench/prog_cost.cc)."""
    exe = os.path.join(os.path.dirname(T.SKIFF_BIN), "skiff-prog-bench")
    if not os.path.exists(exe):
        log(f"per-program cost: {exe} not built, skipped")
        return None
    log("per-program cost (BPF_PROG_TEST_RUN)")
    cmd = [exe, "--cpu", str(W.SERVER_CPU)] + (["--quick", "--trials", "3"] if quick else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"skiff-prog-bench failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)
