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
"""
import ctypes
import json
import os
import platform
import subprocess

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
