"""Overlay benchmark (run.py --overlay): pod -> pod across nodes, five
setups built side by side, each on its own L2 underlay (a bridge in an
underlay namespace), client pod on node 1, server pod on node 2:

  wire     node -> node on the bare underlay (bench/topo.py's wire nodes):
           the limit, no pods, no encapsulation, MTU 1500;
  wire_vxlan  node -> node through a kernel VXLAN device on each node (VNI
           1, UDP 8472, nolearning, an all-zero FDB entry toward the peer,
           MTU 1450), the nodes talking over its addresses: what the
           kernel's VXLAN costs by itself, with no pod, veth or BPF;
  native   skiff with routingMode native: pod addresses routed as they are,
           pods' MTU 1500;
  vxlan    skiff with routingMode vxlan: the agent's flow-based VXLAN
           device skiff_vxlan (external, UDP 8472), from_pod sets the tunnel
           key and redirects into it, from_tunnel delivers; pods' MTU 1450;
  flannel  the flannel-style baseline (flannel's vxlan backend, built by
           hand): on each node a kernel VXLAN device flannel.1 (VNI 1, UDP
           8472, nolearning, MTU 1450, the node's subnet's .0/32 on it), per
           peer a permanent FDB entry (peer's flannel.1 MAC -> peer's node
           address), a permanent neighbour entry (peer's .0 -> that MAC) and
           a route to the peer's PodCIDR via its .0 onlink; pods attached by
           the reference `bridge` plugin + `host-local` (cni0, MTU 1450,
           default gateway) as flannel's CNI plugin delegates it;
           br_netfilter on; kube-proxy-format chains for one ClusterIP on
           both nodes. Masquerade (--flannel-masq): `flannel` (default),
           the bridge plugin with ipMasq off and flanneld's --ip-masq
           chains (FLANNEL-POSTRTG: pod -> pod keeps its address,
           pod -> outside is masqueraded; FLANNEL-FWD accepts the cluster
           CIDR), as kube-flannel.yml runs it; `ipmasq`, the bridge plugin's
           own ipMasq as bench/topo.py's bridge baseline (pod -> remote pod
           masqueraded too).

Workloads (bench/workloads.py, clients on CPU 0, servers on CPU 1): one
and four TCP streams (iperf3), request/response (sockperf ping-pong, 64 B)
and connections/s (wrk, one request per connection). Rounds: each round
runs every workload on every setup once, the order of the setups rotated
per round; ratios are per round (runs seconds apart), summarised as median
(min-max).

GSO/GRO through the tunnel: around every stream run the packet and byte
counters of each hop (`ip -s link`: the client pod's eth0 tx, node 1's
tunnel device tx and uplink tx, node 2's uplink rx and tunnel device rx)
give the mean bytes per packet on that hop; a hop that segmented in
software would show at most an MTU-sized packet (1,450 inner, 1,500 outer).
Once per setup, outside the measured runs, a short tcpdump on node 2's
uplink during a 2 s stream records the frame lengths of the data direction;
then the same with the underlay made to behave like NICs (segmentation on
the underlay's port toward node 2, GRO on node 2's uplink: see
segmented_check) shows whether GRO re-aggregates the encapsulated flow on
receive and the aggregates stay whole through decapsulation.

In-path BPF time: bpf_stats (bench/live.py) for skiff's programs on both
nodes around every skiff run (--no-live-stats: off).

Everything lives in one tests/integration Topology (namespaces, pin dirs,
processes), closed in `finally`.
"""
import contextlib
import json
import os
import re
import shutil
import subprocess
import time

import live as LV
import report
import topo as T
import workloads as W
from cluster_topo import Cluster, node_object
from report import cell, fmt, rcell, stats
from topo import in_ns, log

SETUPS = ("wire", "wire_vxlan", "native", "vxlan", "flannel")
LABEL = {"wire": "node→node", "wire_vxlan": "node→node over VXLAN", "native": "skiff native",
         "vxlan": "skiff vxlan", "flannel": "flannel-style"}
WORKLOADS = ("stream1", "stream4", "rr", "crr")
RATE = {"stream1": ("gbps", "Gbit/s"), "stream4": ("gbps", "Gbit/s"), "rr": ("tps", "transactions/s"),
        "crr": ("cps", "connections/s")}
PAIRS = [("vxlan", "native"), ("vxlan", "flannel"), ("vxlan", "wire_vxlan"), ("native", "wire"),
         ("wire_vxlan", "wire"), ("vxlan", "wire"), ("flannel", "wire")]
# (workload, numerator, denominator) -> (comparison, bound): the targets.
TARGETS = {**{(wl, "vxlan", "flannel"): (">", 1.0) for wl in WORKLOADS},
           ("stream1", "vxlan", "native"): (">=", 0.9), ("rr", "vxlan", "native"): (">=", 0.95),
           ("crr", "vxlan", "native"): (">=", 0.95)}
FLANNEL_CIDR = "10.26.0.0/16"
FLANNEL_DEV = "flannel.1"
TUNNEL_DEV = {"wire_vxlan": "vx0", "vxlan": "skiff_vxlan", "flannel": FLANNEL_DEV}
VXLAN_PORT = 8472
TUNNEL_MTU = 1450
MASQ_MODES = ("flannel", "ipmasq")


# ------------------------------------------------------------- setups -----

class FlannelNode(T.BridgeNode):
    """A node of the flannel-style baseline: flannel.1 plus bridge-plugin pods."""

    def __init__(self, topo, node, index, masq):
        super().__init__(topo, node, index)  # ip_forward, bridge-nf-call-iptables, the host-local dir
        self.subnet = f"10.26.{index}.0/24"
        self.vtep_ip = f"10.26.{index}.0"
        self.masq = masq
        ns = self.ns
        in_ns(ns, "ip", "link", "add", FLANNEL_DEV, "type", "vxlan", "id", "1", "local", node.ip, "dev", "up0",
              "dstport", str(VXLAN_PORT), "nolearning")
        in_ns(ns, "ip", "link", "set", FLANNEL_DEV, "mtu", str(TUNNEL_MTU), "up")
        in_ns(ns, "ip", "addr", "add", f"{self.vtep_ip}/32", "dev", FLANNEL_DEV)
        self.mac = json.loads(in_ns(ns, "ip", "-j", "link", "show", FLANNEL_DEV).stdout)[0]["address"]
        if masq == "flannel":
            in_ns(ns, "iptables-restore", "--noflush", "-w", input=flannel_rules(self.subnet, FLANNEL_CIDR))

    def conf(self):
        c = super().conf()
        c.update({"name": "cbr0", "mtu": TUNNEL_MTU, "isDefaultGateway": True, "ipMasq": self.masq == "ipmasq"})
        c["ipam"]["routes"] = [{"dst": FLANNEL_CIDR}]  # as flannel's plugin delegates; the default comes with it
        return c

    def add_peer(self, peer):
        """What flanneld's vxlan backend programs for one remote lease."""
        in_ns(self.ns, "bridge", "fdb", "append", peer.mac, "dev", FLANNEL_DEV, "dst", peer.node.ip, "self",
              "permanent")
        in_ns(self.ns, "ip", "neigh", "replace", peer.vtep_ip, "lladdr", peer.mac, "dev", FLANNEL_DEV, "nud",
              "permanent")
        in_ns(self.ns, "ip", "route", "replace", peer.subnet, "via", peer.vtep_ip, "dev", FLANNEL_DEV, "onlink")


def flannel_rules(subnet, cluster):
    """flanneld --ip-masq (iptables): its POSTROUTING and FORWARD chains."""
    c = '-m comment --comment "flanneld masq"'
    f = '-m comment --comment "flanneld forward"'
    return "\n".join([
        "*nat", ":FLANNEL-POSTRTG - [0:0]",
        f"-A POSTROUTING {c} -j FLANNEL-POSTRTG",
        f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {c} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {subnet} -d {cluster} {c} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {cluster} -d {subnet} {c} -j RETURN",
        f"-A FLANNEL-POSTRTG ! -s {cluster} -d {subnet} {c} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {cluster} ! -d 224.0.0.0/4 {c} -j MASQUERADE --random-fully",
        f"-A FLANNEL-POSTRTG ! -s {cluster} -d {cluster} {c} -j MASQUERADE --random-fully",
        "COMMIT", "*filter", ":FLANNEL-FWD - [0:0]",
        f"-A FORWARD {f} -j FLANNEL-FWD",
        f"-A FLANNEL-FWD -s {cluster} {f} -j ACCEPT",
        f"-A FLANNEL-FWD -d {cluster} {f} -j ACCEPT",
        "COMMIT", ""])


def flannel_cluster(topo, masq):
    u = T.switch_underlay(topo)
    nodes = [FlannelNode(topo, topo.node(ip=f"192.168.6.{10 + i}", pod_cidr=f"10.26.{i}.0/24", underlay=u), i,
                         masq) for i in (1, 2)]
    for a in nodes:
        for b in nodes:
            if a is not b:
                a.add_peer(b)
    return u, nodes


def wire_vxlan(topo):
    """Two bare nodes (192.168.7.11/.12) joined by kernel VXLAN devices vx0
    (10.27.0.1/.2, MTU 1450); ARP crosses the tunnel to the peer."""
    u = T.switch_underlay(topo)
    nodes = [topo.node(ip=f"192.168.7.{10 + i}", pod_cidr=f"10.27.{i}.0/24", underlay=u) for i in (1, 2)]
    for i, nd in enumerate(nodes, 1):
        in_ns(nd.ns, "ip", "link", "add", "vx0", "type", "vxlan", "id", "1", "local", nd.ip, "dev", "up0",
              "dstport", str(VXLAN_PORT), "nolearning")
        in_ns(nd.ns, "ip", "link", "set", "vx0", "mtu", str(TUNNEL_MTU), "up")
        in_ns(nd.ns, "ip", "addr", "add", f"10.27.0.{i}/24", "dev", "vx0")
        in_ns(nd.ns, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", nodes[2 - i].ip)
    a, b = (T.Endpoint(nd.ns, f"10.27.0.{i}", f"vxlan-node-{i}") for i, nd in enumerate(nodes, 1))
    return {"client": a, "server": b, "node_ns": (a.ns, b.ns), "underlay": u}


class SkiffCluster(T.SkiffSetup):
    """Two skiff nodes with agents (like bench/topo.py's SkiffSetup) in one routing mode."""

    def __init__(self, topo, mode):
        self.mode = mode
        self.cluster = Cluster(topo, n=2)
        # Two clusters share one Topology: each watches its own source file.
        self.cluster.source = os.path.join(topo.tmp, f"cluster-{mode}.json")
        self.cluster.agent_extra = {"resyncSeconds": 3600, "routingMode": mode}  # no periodic resyncs
        self.nodes = self.cluster.nodes
        T.quiet_underlay(self.cluster.underlay)
        self.base = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in self.nodes]
        self.cluster.write_source(self.base)
        self.cluster.start()

    def counter(self, i, reason):
        return sum(v for (r, _), v in self.stats(i).items() if r == reason)


def mtu(ns, dev="eth0"):
    return json.loads(in_ns(ns, "ip", "-j", "link", "show", dev).stdout)[0]["mtu"]


def build(topo, masq):
    """The five setups; returns {name: {"client", "server", "hops", ...}}."""
    t0 = time.monotonic()
    log("overlay: building node -> node (wire)")
    wu = T.switch_underlay(topo)
    wa, wb = T.wire_nodes(topo, wu)
    s = {"wire": {"client": wa, "server": wb, "node_ns": (wa.ns, wb.ns), "underlay": wu}}
    log("overlay: building node -> node over VXLAN")
    s["wire_vxlan"] = wire_vxlan(topo)
    for mode, name in (("native", "native"), ("vxlan", "vxlan")):
        log(f"overlay: building skiff nodes with agents, routingMode {mode}")
        sk = SkiffCluster(topo, mode)
        s[name] = {"skiff": sk, "client": sk.add_pod(0), "server": sk.add_pod(1),
                   "node_ns": tuple(nd.ns for nd in sk.nodes), "underlay": sk.cluster.underlay}
    log(f"overlay: building the flannel-style nodes (flannel.1, bridge plugin, masquerade: {masq})")
    fu, fl = flannel_cluster(topo, masq)
    s["flannel"] = {"nodes": fl, "client": fl[0].add_pod(), "server": fl[1].add_pod(),
                    "node_ns": (fl[0].ns, fl[1].ns), "underlay": fu}
    for name, st in s.items():
        n1, n2 = st["node_ns"]
        hops = [] if name.startswith("wire") else [("pod eth0 tx", st["client"].ns, "eth0", "tx")]
        if name in TUNNEL_DEV:
            hops.append((f"node-1 {TUNNEL_DEV[name]} tx", n1, TUNNEL_DEV[name], "tx"))
        hops += [("node-1 up0 tx", n1, "up0", "tx"), ("node-2 up0 rx", n2, "up0", "rx")]
        if name in TUNNEL_DEV:
            hops.append((f"node-2 {TUNNEL_DEV[name]} rx", n2, TUNNEL_DEV[name], "rx"))
        st["hops"] = hops
    log(f"overlay: setups built in {time.monotonic() - t0:.1f}s")
    return s


# ------------------------------------------------------------- checks -----

def link_counters(ns, dev):
    st = json.loads(in_ns(ns, "ip", "-j", "-s", "link", "show", "dev", dev).stdout)[0]["stats64"]
    return {d: (st[d]["packets"], st[d]["bytes"]) for d in ("rx", "tx")}


def hop_counters(hops):
    return {label: link_counters(ns, dev)[d] for label, ns, dev, d in hops}


def hop_delta(before, after):
    out = {}
    for k, (p0, b0) in before.items():
        p, b = after[k][0] - p0, after[k][1] - b0
        out[k] = {"packets": p, "bytes": b, "bytes_per_packet": b / p if p else None}
    return out


def prepare(topo, s, masq):
    """Servers, services, and the checks that each setup takes the path it
    is meant to: answers, pods' MTUs, the skiff node maps' encap flags, the
    client address the server sees. Returns the facts for the report."""
    for st in s.values():
        W.start_servers(topo, st["server"])
        W.tune_client(st["client"].ns)
    # One ClusterIP per setup (backend: its server pod), as a cluster has:
    # kube-proxy chains on both flannel-style nodes, Service objects for skiff.
    svc = [W.web_service(s["flannel"]["server"].ip)]
    for nd in s["flannel"]["nodes"]:
        in_ns(nd.ns, "iptables-restore", "--noflush", "-w", input=T.kube_proxy_rules(svc, cluster_cidr=FLANNEL_CIDR))
    for name in ("native", "vxlan"):
        s[name]["skiff"].publish([W.web_service(s[name]["server"].ip)])
    for name, st in s.items():
        c, ip = st["client"], st["server"].ip
        T.wait_for(lambda c=c, ip=ip: c.run("curl", "-s", "-m", "2", f"http://{ip}:{W.HTTP_PORT}/",
                                            check=False).stdout.strip() == "ok", f"{name}: {c.label} -> {ip}",
                   timeout=15)
    facts = {"mtu": {}, "seen": {}, "node_flags": {}, "tunnel_dev": {}}
    for name, st in s.items():
        dev = {"wire": "up0", "wire_vxlan": "vx0"}.get(name, "eth0")
        facts["mtu"][name] = {"client": mtu(st["client"].ns, dev), "server": mtu(st["server"].ns, dev)}
        facts["seen"][name] = W.client_address(st["client"], st["server"].ip)
    want_mtu = {"wire": 1500, "wire_vxlan": TUNNEL_MTU, "native": 1500, "vxlan": TUNNEL_MTU, "flannel": TUNNEL_MTU}
    for name, m in facts["mtu"].items():
        if set(m.values()) != {want_mtu[name]}:
            raise RuntimeError(f"overlay {name}: MTUs {m}, expected {want_mtu[name]}")
    want_seen = dict((n, s[n]["client"].ip) for n in SETUPS)
    if masq == "ipmasq":
        want_seen["flannel"] = s["flannel"]["nodes"][0].vtep_ip  # the bridge plugin's ipMasq: flannel.1's address
    if facts["seen"] != want_seen:
        raise RuntimeError(f"overlay: the servers see clients {facts['seen']}, expected {want_seen}")
    for name in ("native", "vxlan"):
        sk = s[name]["skiff"]
        nm = sk.cluster.node_map(sk.nodes[0])
        flags = nm.get(sk.nodes[1].pod_cidr, (None, None))[1]
        facts["node_flags"][name] = {k: v[1] for k, v in nm.items()}
        encap = bool(flags is not None and flags & 2)
        if encap != (name == "vxlan"):
            raise RuntimeError(f"overlay {name}: node-1's entry for {sk.nodes[1].pod_cidr} has flags {flags}")
    for name, dev in TUNNEL_DEV.items():
        n1 = s[name]["node_ns"][0]
        link = json.loads(in_ns(n1, "ip", "-d", "-j", "link", "show", dev).stdout)[0]
        info = link["linkinfo"]["info_data"]
        facts["tunnel_dev"][name] = {"mtu": link["mtu"], "port": info.get("port"), "external": info.get("external"),
                                     "id": info.get("id"), "learning": info.get("learning"),
                                     "gso_max_size": link.get("gso_max_size"), "gro_max_size": link.get("gro_max_size")}
    log(f"overlay: MTUs {facts['mtu']}; servers see {facts['seen']}")
    return facts


def tcpdump_lengths(name, st, seconds=2):
    """Frame lengths of the data direction (inbound) on node 2's uplink
    during a short stream (not a measured run)."""
    flt = f"udp dst port {VXLAN_PORT}" if name in TUNNEL_DEV else f"tcp dst port {W.IPERF_PORT}"
    if not shutil.which("tcpdump"):  # the hop counters still tell; scripts/setup.sh does not install it
        W.stream(st["client"], st["server"].ip, 1, seconds)
        return {"filter": flt, "frames": 0, "note": "tcpdump not installed"}
    p = subprocess.Popen(["nsenter", f"--net=/run/netns/{st['node_ns'][1]}", "--", "timeout", str(seconds + 4),
                          "tcpdump", "-i", "up0", "-Q", "in", "-nn", "-e", "-s", "128", "-c", "4000", flt],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1)
        W.stream(st["client"], st["server"].ip, 1, seconds)
        out, _ = p.communicate(timeout=seconds + 10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # Outer frames only: tcpdump prints a VXLAN packet's inner frame on a line of its own, without a timestamp.
    lens = [int(m.group(1)) for m in (re.match(r"\d+:\d+:\d+\.\d+ .*?ethertype IPv4 \(0x0800\), length (\d+):", ln)
                                      for ln in out.splitlines()) if m]
    if not lens:
        return {"filter": flt, "frames": 0}
    lens.sort()
    return {"filter": flt, "frames": len(lens), "median": lens[len(lens) // 2], "max": lens[-1],
            "over_1514": sum(1 for x in lens if x > 1514) / len(lens)}


ETHTOOL = r"""
import array, fcntl, socket, struct, sys
dev, cmd, val = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
ev = array.array("I", [cmd, val])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fcntl.ioctl(s.fileno(), 0x8946, struct.pack("16sP", dev.encode(), ev.buffer_info()[0]))  # SIOCETHTOOL
print(ev[1])
"""
ETHTOOL_GTSO, ETHTOOL_STSO, ETHTOOL_GGRO, ETHTOOL_SGRO = 0x1E, 0x1F, 0x2B, 0x2C


def feature(ns, dev, get, set_, on=None):
    """A device feature through the legacy ethtool ioctl (no ethtool binary
    needed): set first when on is given; returns whether it is on."""
    if on is not None:
        in_ns(ns, "/usr/bin/python3", "-c", ETHTOOL, dev, str(set_), str(int(on)))
    return in_ns(ns, "/usr/bin/python3", "-c", ETHTOOL, dev, str(get), "0").stdout.strip() == "1"


def peer_port(st):
    """The name of the underlay bridge's port whose veth peer is node 2's uplink."""
    idx = json.loads(in_ns(st["node_ns"][1], "ip", "-j", "link", "show", "up0").stdout)[0]["link_index"]
    for ln in json.loads(in_ns(st["underlay"], "ip", "-j", "link", "show").stdout):
        if ln["ifindex"] == idx:
            return ln["ifname"]
    raise RuntimeError(f"no underlay port with ifindex {idx}")


def segmented_check(name, st, seconds=2):
    """The underlay as a link with NICs would carry it: the underlay's port
    toward node 2 has TSO off, so the stack segments every GSO packet
    (encapsulated ones included) into MTU-sized frames before that veth,
    and node 2's uplink runs GRO (NAPI, as a NIC driver does; a veth only
    takes that path for segments). A 2 s stream (not a measured run) with
    the hops' counters and tcpdump on node 2's uplink, which taps after
    GRO: whether the receive side re-aggregates the flow, and whether the
    aggregates stay whole through the tunnel device. Restored afterwards."""
    u, n2 = st["underlay"], st["node_ns"][1]
    port = peer_port(st)
    tso_was, gro_was = feature(u, port, ETHTOOL_GTSO, None), feature(n2, "up0", ETHTOOL_GGRO, None)
    try:
        tso = feature(u, port, ETHTOOL_GTSO, ETHTOOL_STSO, False)
        gro_on = feature(n2, "up0", ETHTOOL_GGRO, ETHTOOL_SGRO, True)
        if tso or not gro_on:
            raise RuntimeError(f"overlay {name}: TSO on the underlay port {tso}, GRO on node-2's uplink {gro_on}")
        c0 = hop_counters(st["hops"])
        out = tcpdump_lengths(name, st, seconds)
        out["hops"] = hop_delta(c0, hop_counters(st["hops"]))
    finally:
        feature(u, port, ETHTOOL_GTSO, ETHTOOL_STSO, tso_was)
        feature(n2, "up0", ETHTOOL_GGRO, ETHTOOL_SGRO, gro_was)
    return out


# --------------------------------------------------------------- runs -----

def ops(wl, out):
    """The run's operations: transactions, connections, or MB received."""
    if wl == "rr":
        return out.get("transactions")
    if wl == "crr":
        return out.get("requests")
    return out["bytes"] / 1e6 if out.get("bytes") else None


def run_rounds(s, rounds, seconds, workloads, round_load, stats_on=True):
    """{workload: {setup: [run]}}, each run with its round."""
    runs = {wl: {n: [] for n in SETUPS} for wl in workloads}
    progs = {n: LV.Programs({f"node-{i + 1}": ns for i, ns in enumerate(s[n]["node_ns"])})
             for n in ("native", "vxlan")} if stats_on else {}
    with LV.BpfStats() if stats_on else contextlib.nullcontext():
        _rounds(s, rounds, seconds, workloads, round_load, progs, runs)
    return runs


def _rounds(s, rounds, seconds, workloads, round_load, progs, runs):
    for r in range(rounds):
        round_load.append(W.loadavg()[0])
        for wl in workloads:
            for name in W.rotate(list(SETUPS), r):
                st = s[name]
                if wl == "crr" and name == "flannel":
                    for nd in st["nodes"]:
                        T.conntrack_flush(nd.ns)
                sk = st.get("skiff")
                hops = st["hops"] if wl.startswith("stream") else []
                c0 = hop_counters(hops)
                drops0 = sk.drops() if sk else None
                tun0 = sk.counter(0, "fwd-tunnel") if sk else None
                out = LV.measure_live(progs, name, lambda: W.measure(wl, st["client"], st["server"].ip, seconds))
                if out.get("bpf") and ops(wl, out):
                    out["bpf_ns_per_op"] = sum(v["ns"] * v["runs"] for v in out["bpf"].values()) / ops(wl, out)
                if hops:
                    out["hops"] = hop_delta(c0, hop_counters(hops))
                    if name in TUNNEL_DEV:  # the stream's bytes went through the tunnel device
                        tx = out["hops"][f"node-1 {TUNNEL_DEV[name]} tx"]["bytes"]
                        if out.get("bytes") and tx < 0.9 * out["bytes"]:
                            raise RuntimeError(f"overlay {name} {wl}: {tx} bytes through {TUNNEL_DEV[name]} for "
                                               f"{out['bytes']} received")
                if sk:
                    d1 = sk.drops()
                    out["drops"] = {k: v - drops0.get(k, 0) for k, v in d1.items() if v > drops0.get(k, 0)}
                    out["fwd_tunnel"] = sk.counter(0, "fwd-tunnel") - tun0
                    if (out["fwd_tunnel"] > 0) != (name == "vxlan"):
                        raise RuntimeError(f"overlay {name} {wl}: node-1 fwd-tunnel moved by {out['fwd_tunnel']}")
                out["round"] = r
                runs[wl][name].append(out)
                extra = ""
                if hops:
                    extra = " B/pkt " + ", ".join(f"{k.split()[1]}:{fmt(v['bytes_per_packet'])}"
                                                  for k, v in out["hops"].items() if v["bytes_per_packet"])
                if out.get("bpf_ns_per_op"):
                    extra += f" bpf ns/op={fmt(out['bpf_ns_per_op'])}"
                log(f"overlay round {r + 1}/{rounds} {wl:10} {name:7} {RATE[wl][0]}={out[RATE[wl][0]]:.4g}"
                    + (f" p50={out['p50_us']:.1f}us" if wl == "rr" else "") + extra)


def bench(rounds, seconds, workloads, masq, meta, stats_on=True):
    """Build, check, measure, tear down; returns results (see summarize)."""
    topo = T.Topology()
    try:
        s = build(topo, masq)
        facts = prepare(topo, s, masq)
        log("overlay: frame lengths on node-2's uplink during a 2 s stream (tcpdump), per setup")
        facts["tcpdump"] = {name: tcpdump_lengths(name, s[name]) for name in SETUPS}
        log(f"overlay: tcpdump {facts['tcpdump']}")
        log("overlay: the same with the underlay segmenting (TSO off on its port to node-2) and GRO on node-2's uplink")
        facts["segmented"] = {name: segmented_check(name, s[name]) for name in SETUPS}
        log("overlay: segmented underlay: " + "; ".join(
            f"{n}: frames {v['frames']} median {v.get('median')} B, " + ", ".join(
                f"{h} {fmt(d['bytes_per_packet'])} B/pkt" for h, d in v["hops"].items())
            for n, v in facts["segmented"].items()))
        started = time.monotonic()
        meta["round_loadavg"] = []
        meta["bpf_stats"] = stats_on
        runs = run_rounds(s, rounds, seconds, workloads, meta["round_loadavg"], stats_on)
        meta["overlay_duration_s"] = time.monotonic() - started
        facts["pods"] = {n: {"client": s[n]["client"].ip, "server": s[n]["server"].ip} for n in SETUPS}
        return {"facts": facts, "runs": runs}
    finally:
        log("overlay: tearing down")
        topo.close()


# ------------------------------------------------------------ summary -----

def _paired(a, b, key):
    rb = {r["round"]: r for r in b}
    return [x[key] / rb[x["round"]][key] for x in a if x["round"] in rb and rb[x["round"]].get(key)]


def _hold(op, bound, v):
    return v > bound if op == ">" else v >= bound


def summarize(res):
    summ = {}
    for wl, setups in res["runs"].items():
        metric = RATE[wl][0]
        keys = [metric] + (["p50_us", "p99_us"] if wl == "rr" else []) + (["retransmits"] if wl[:6] == "stream" else [])
        e = summ.setdefault(wl, {"setups": {}, "pairs": {}, "hops": {}})
        for name, lst in setups.items():
            e["setups"][name] = {k: stats([r.get(k) for r in lst]) for k in keys + ["bpf_ns_per_op"]}
            progs = sorted({p for r in lst for p in r.get("bpf", {})})
            if progs:
                had = {p: [r for r in lst if p in r.get("bpf", {})] for p in progs}
                e.setdefault("bpf", {})[name] = {
                    p: {"ns": stats([r["bpf"][p]["ns"] for r in had[p]]),
                        "runs_per_op": stats([r["bpf"][p]["runs"] / ops(wl, r) for r in had[p] if ops(wl, r)])}
                    for p in progs}
            if lst and lst[0].get("hops"):
                e["hops"][name] = {h: stats([r["hops"][h]["bytes_per_packet"] for r in lst])
                                   for h in lst[0]["hops"]}
        for a, b in PAIRS:
            vals = _paired(setups.get(a, []), setups.get(b, []), metric)
            p = {"ratio": stats(vals)}
            t = TARGETS.get((wl, a, b))
            if t and vals:
                p["target"] = f"{t[0]} {t[1]}"
                p["met"] = _hold(t[0], t[1], round(p["ratio"]["median"], 2) if t[0] == ">=" else p["ratio"]["median"])
                p["rounds_wrong_side"] = sum(1 for v in vals if not _hold(t[0], t[1], v))
            e["pairs"][f"{a}/{b}"] = p
            if wl == "rr":  # the median round trip, which the machine's stalls move less than the mean rate
                e.setdefault("p50_pairs", {})[f"{a}/{b}"] = stats(_paired(setups.get(a, []), setups.get(b, []),
                                                                          "p50_us"))
    # GSO kept through the tunnel: every hop of every stream run above a full-size frame.
    for name in TUNNEL_DEV:
        bpp = [h["bytes_per_packet"] for wl, setups in res["runs"].items() if wl.startswith("stream")
               for r in setups.get(name, []) for h in r.get("hops", {}).values()]
        if bpp:
            low = min(x or 0 for x in bpp)
            summ.setdefault("gso", {})[name] = {"min_bytes_per_packet": low, "kept": low > 1514}
    # GRO kept through the tunnel: with the underlay delivering MTU-sized frames, decapsulation hands on aggregates.
    for name, t in res.get("facts", {}).get("segmented", {}).items():
        if name in TUNNEL_DEV and t.get("hops"):
            frame = t["hops"]["node-2 up0 rx"]["bytes_per_packet"]
            tun = t["hops"][f"node-2 {TUNNEL_DEV[name]} rx"]["bytes_per_packet"]
            if frame and tun:
                summ.setdefault("gro", {})[name] = {"frame": frame, "tunnel": tun, "kept": frame <= 1514 < tun}
    return summ


def markdown(doc):
    m, res, summ = doc["meta"], doc["results"]["overlay"], doc["summary"]["overlay"]
    f = res["facts"]
    L = ["# skiff overlay benchmark", "",
         f"{m['date']}, kernel {m['kernel']}, {m['cpus']} CPUs, skiff binaries `{m.get('skiff_bin', '')}` "
         f"(repository at {m.get('repo_commit', '?')}, uncommitted changes possible); 1-minute load average "
         f"{m['loadavg_start'][0]:.2f} at the start, {m.get('loadavg_end', [0])[0]:.2f} at the end; "
         f"{m['overlay_rounds']} rounds x {m['overlay_seconds']} s per run; run time {m.get('duration_s', 0):.0f} s.",
         "",
         "pod → pod across nodes. Setups: **node→node** (the limit: two namespaces on one bridge, MTU 1500); "
         "**node→node over VXLAN** (the same nodes talking through a kernel VXLAN device each, MTU 1450: the "
         "tunnel's own cost, no pod, veth or BPF); "
         "**skiff native** (routingMode native, pods' MTU 1500); **skiff vxlan** (routingMode vxlan: skiff_vxlan, "
         "flow-based, UDP 8472; pods' MTU 1450); **flannel-style** (flannel.1: VNI 1, UDP 8472, nolearning, "
         "static FDB + neighbour entries and an onlink route per peer; pods by the reference bridge plugin + "
         f"host-local, MTU 1450, br_netfilter on, kube-proxy chains for one service; masquerade: "
         f"`{m['flannel_masq']}`). Every setup on its own veth/bridge underlay; client on CPU 0, server on CPU 1. "
         "Ratios per round (the two runs seconds apart), median (min-max); verdicts on the median.", "",
         f"Checks before measuring: pods' MTUs {json.dumps(f['mtu'])}; client address the server sees "
         f"{json.dumps(f['seen'])}; skiff node-1 node-map flags {json.dumps(f['node_flags'])} (2 = encap, "
         f"4 = host); tunnel devices {json.dumps(f['tunnel_dev'])}. During every skiff run node-1's "
         "`fwd-tunnel` counter moved for vxlan and stayed for native.", "",
         "| workload | pair | ratio, median (min-max) | target | verdict | rounds on the wrong side |",
         "|---|---|---|---|---|---|"]
    wls = [wl for wl in summ if wl in RATE]
    for wl in wls:
        for pair, p in summ[wl]["pairs"].items():
            a, b = pair.split("/")
            L.append(f"| {report.WL_NAME[wl]} | {LABEL[a]} / {LABEL[b]} ({RATE[wl][1]}) | {rcell(p['ratio'])} | "
                     f"{p.get('target', '-')} | "
                     f"{('met' if p['met'] else '**not met**') if 'met' in p else '-'} | "
                     f"{p['rounds_wrong_side'] if 'met' in p else '-'} |")
    if "rr" in summ:
        L += ["", "Request/response, the round trip's p50 per round, first / second (lower is better: 1.05 means "
              "the first setup's median round trip is 5% longer): " + "; ".join(
                  f"{LABEL[k.split('/')[0]]} / {LABEL[k.split('/')[1]]} {rcell(v)}"
                  for k, v in summ["rr"].get("p50_pairs", {}).items()) + "."]
    L += ["", "| workload | setup | rate, median (min-max) | RTT p50 / p99 us | retransmits |", "|---|---|---|---|---|"]
    for wl in wls:
        for name in SETUPS:
            st = summ[wl]["setups"].get(name)
            if not st or not st[RATE[wl][0]]:
                continue
            lat = f"{cell(st['p50_us'])} / {cell(st['p99_us'])}" if "p50_us" in st else "-"
            L.append(f"| {report.WL_NAME[wl]} | {LABEL[name]} | {cell(st[RATE[wl][0]])} {RATE[wl][1]} | {lat} | "
                     f"{cell(st.get('retransmits'))} |")
    if any(summ[wl].get("bpf") for wl in wls):
        unit = {"rr": "transaction", "crr": "connection", "stream1": "MB", "stream4": "MB"}
        L += ["", "In-path BPF time of skiff's programs (bpf_stats: run time per run, including its two clock reads; "
              "programs with fewer than 100 runs in a window left out), per program and in total per operation "
              "(transaction, connection, MB received).", "",
              "| workload | setup | program | ns per run | runs per operation | all programs, ns per operation |",
              "|---|---|---|---|---|---|"]
        for wl in wls:
            for name, progs in summ[wl].get("bpf", {}).items():
                tot = summ[wl]["setups"][name].get("bpf_ns_per_op")
                for i, (p, v) in enumerate(progs.items()):
                    L.append(f"| {report.WL_NAME[wl]} | {LABEL[name]} | {p} | {cell(v['ns'])} | "
                             f"{cell(v['runs_per_op'])} | " + (f"{cell(tot)} per {unit[wl]}" if i == 0 else "") + " |")
    L += ["", "GSO/GRO through the tunnel: mean bytes per packet on each hop of the data direction over the stream "
          "runs (`ip -s link` deltas), median (min-max). A hop that segmented in software would show at most "
          "1,450 (inner) or 1,500 (outer).", "",
          "| workload | setup | hop | bytes per packet |", "|---|---|---|---|"]
    for wl in wls:
        for name in SETUPS:
            for hop, v in summ[wl]["hops"].get(name, {}).items():
                L.append(f"| {report.WL_NAME[wl]} | {LABEL[name]} | {hop} | {cell(v)} |")
    for name, g in summ.get("gso", {}).items():
        L.append("")
        L.append(f"{LABEL[name]}: the smallest mean over all hops and stream runs is {fmt(g['min_bytes_per_packet'])} "
                 f"bytes per packet: GSO packets " + ("kept through the tunnel (no hop segmented)." if g["kept"] else
                                                     "**segmented** on some hop."))
    L += ["", "tcpdump on node-2's uplink, data direction, during a 2 s stream (outside the measured runs):", "",
          "| setup | filter | frames | median length | max length | share > 1,514 B |", "|---|---|---|---|---|---|"]
    for name, t in f["tcpdump"].items():
        L.append(f"| {LABEL[name]} | `{t['filter']}` | {t['frames']} | {t.get('median', '-')} | {t.get('max', '-')} | "
                 + (f"{t['over_1514']:.2f}" if t.get("frames") else "-") + " |")
    seg = f.get("segmented")
    if seg:
        L += ["", "The same 2 s stream with the underlay segmenting and node-2 aggregating, as NICs would: TSO off on "
              "the underlay bridge's port toward node-2 (the stack cuts every GSO packet, encapsulated ones "
              "included, into MTU-sized frames before that veth) and GRO on node-2's uplink (the veth then "
              "receives through NAPI and GRO, as a NIC driver does). node-2's uplink rx counter counts the frames "
              "as delivered, before GRO; tcpdump there taps after GRO; the tunnel device counts what "
              "decapsulation handed on.", "",
              "| setup | node-2 up0 rx, bytes per frame (before GRO) | node-2 tunnel device rx, bytes per packet | "
              "tcpdump after GRO: frames, median / max length, share > 1,514 B |", "|---|---|---|---|"]
        for name, t in seg.items():
            h = t.get("hops", {})
            up = h.get("node-2 up0 rx", {}).get("bytes_per_packet")
            tun = h.get(f"node-2 {TUNNEL_DEV[name]} rx", {}).get("bytes_per_packet") if name in TUNNEL_DEV else None
            dump = (f"{t['frames']}, {t['median']} / {t['max']}, {t['over_1514']:.2f}" if t.get("frames") else "-")
            L.append(f"| {LABEL[name]} | {fmt(up)} | {fmt(tun) if tun else '-'} | {dump} |")
        for name in TUNNEL_DEV:
            g = summ.get("gro", {}).get(name)
            if g:
                L += ["", f"{LABEL[name]}: GRO on receive " + ("**kept** through the tunnel" if g["kept"] else
                                                              "**lost** in the tunnel")
                      + f" ({fmt(g['frame'])} bytes per frame on the underlay, {fmt(g['tunnel'])} per packet "
                      "out of decapsulation)."]
    drops = [(wl, n, r["drops"]) for wl, st in res["runs"].items() for n, lst in st.items() for r in lst
             if r.get("drops")]
    L += ["", "skiff drop counters over the runs: " + ("; ".join(f"{LABEL[n]} {wl}: {d}" for wl, n, d in drops)
                                                       or "none") + "."]
    return L


def write(doc, out_dir):
    doc["summary"] = {"overlay": summarize(doc["results"]["overlay"])}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(markdown(doc)) + "\n")


def run(out_dir, rounds, seconds, workloads, masq, meta, stats_on=True):
    """run.py --overlay: the measurements, then <out_dir>/results.json and
    results.md (the raw results are written before the summary)."""
    started = time.monotonic()
    meta.update({"overlay_rounds": rounds, "overlay_seconds": seconds, "overlay_workloads": list(workloads),
                 "flannel_masq": masq})
    results = {"overlay": bench(rounds, seconds, workloads, masq, meta, stats_on)}
    meta["duration_s"] = time.monotonic() - started
    meta["loadavg_end"] = W.loadavg()
    os.makedirs(out_dir, exist_ok=True)
    doc = {"meta": meta, "results": results, "summary": None}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    write(doc, out_dir)
    log(f"overlay: wrote {out_dir}/results.json, results.md in {meta['duration_s']:.0f}s")
    return doc
