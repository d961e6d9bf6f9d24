"""The setups the benchmark compares, built side by side in namespaces.

  wire    the physical limit: a direct veth pair between two namespaces
          (same node), and two namespaces on one L2 underlay bridge (the
          node -> node reference across nodes);
  floor   the veth floor across nodes: two nodes like the wire's, each with
          one pod on a veth pair and bench/floor/veth_floor.c attached by
          build/bin/skiff-floor (FIB lookup + redirect out, redirect_peer
          in, nothing else): a minimal veth-based eBPF datapath;
  bridge  the reference `bridge` CNI plugin with `host-local` IPAM and
          `ipMasq: true`, br_netfilter on (bridge-nf-call-iptables=1 in the
          node namespaces), plus kube-proxy-format iptables chains for the
          services under test; two nodes with routes to each other's subnet;
  skiff   two node namespaces with a skiff-agent each, pods attached by
          build/bin/skiff (tests/harness/cluster_topo.py's Cluster);
  external  one host outside the clusters with a leg on each underlay and
          routes to those /24s only (node addresses, no pod subnet): the
          destination of the pod -> external (masquerade) scenario.

Everything is created through one tests/integration Topology, whose close()
kills the processes and deletes the namespaces and pin dirs; iptables rules
and conntrack state live in node namespaces and disappear with them.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))

from cluster_topo import Cluster, node_object, wait_for  # noqa: E402,F401
import skiff_topo  # noqa: E402
from skiff_topo import BIN_DIR, SKIFFCTL, Topology, in_ns, unique  # noqa: E402

SKIFF_BIN = skiff_topo.SKIFF  # the plugin, for the bench modules' checks
REF_CNI_DIR = "/usr/lib/cni"
BRIDGE = os.path.join(REF_CNI_DIR, "bridge")
CLUSTER_CIDR = "10.244.0.0/16"   # skiff
BRIDGE_CIDR = "10.22.0.0/16"     # baseline pods: node i gets 10.22.i.0/24
VIP = "10.96.0.10"               # the ClusterIP under test, on both datapaths (backend on the client's node)
VIP_REMOTE = "10.96.0.11"        # the same, with the backend on the other node
# The external host's address on each underlay (wire 192.168.3/24, bridge
# 192.168.2/24, skiff 192.168.1/24; the nodes are .11 and .12).
SKIFF_FLOOR = os.path.join(BIN_DIR, "skiff-floor")
EXTERNAL_IPS = {"wire": "192.168.3.100", "bridge": "192.168.2.100", "skiff": "192.168.1.100"}


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def sysctl(ns, key, value):
    path = "/proc/sys/" + key.replace(".", "/")
    in_ns(ns, "sh", "-c", f"echo {value} > {path}")


def br_netfilter_state():
    """br_netfilter: built in / module loaded / absent. Read-only look at the machine."""
    if os.path.isdir("/proc/sys/net/bridge"):
        return "available"
    return "absent"


class Endpoint:
    """Something that runs commands in a namespace and has an address."""

    def __init__(self, ns, ip, label):
        self.ns, self.ip, self.label = ns, ip, label

    def run(self, *cmd, **kw):
        return in_ns(self.ns, *cmd, **kw)


# ---------------------------------------------------------------- wire -----

def veth_pair(topo):
    """Two namespaces joined by one veth pair: the same-node physical limit."""
    a, b = topo.pod_ns(unique("bwa")), topo.pod_ns(unique("bwb"))
    in_ns(a, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
    for ns, ip in ((a, "10.99.0.1"), (b, "10.99.0.2")):
        in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        in_ns(ns, "ip", "link", "set", "eth0", "up")
    return Endpoint(a, "10.99.0.1", "veth-a"), Endpoint(b, "10.99.0.2", "veth-b")


def quiet_underlay(ns):
    """An underlay stands for a physical switch: no netfilter on its bridge."""
    for k in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"):
        if os.path.exists(f"/proc/sys/net/bridge/{k}"):
            sysctl(ns, f"net.bridge.{k}", 0)


def switch_underlay(topo):
    """A new underlay that stands for a physical switch."""
    u = topo.underlay()
    quiet_underlay(u)
    return u


def wire_nodes(topo, u):
    """Two bare namespaces on their own underlay bridge: node -> node reference."""
    a = topo.node(ip="192.168.3.11", pod_cidr="10.23.1.0/24", underlay=u)
    b = topo.node(ip="192.168.3.12", pod_cidr="10.23.2.0/24", underlay=u)
    return Endpoint(a.ns, a.ip, "node-a"), Endpoint(b.ns, b.ip, "node-b")


def veth_pod(topo, nd, prefix, dev, ip):
    """A pod netns (named unique(prefix)) on a veth pair with node nd: host
    side dev (routed to ip, scope link), pod side eth0 with ip/32, routing
    through 169.254.1.1 at the host side's MAC. Returns (pod, its eth0 MAC)."""
    pod = topo.pod_ns(unique(prefix))
    in_ns(nd.ns, "ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", pod)
    in_ns(nd.ns, "ip", "link", "set", dev, "up")
    in_ns(nd.ns, "ip", "route", "add", ip, "dev", dev, "scope", "link")
    host_mac = json.loads(in_ns(nd.ns, "ip", "-j", "link", "show", dev).stdout)[0]["address"]
    in_ns(pod, "ip", "addr", "add", f"{ip}/32", "dev", "eth0")
    in_ns(pod, "ip", "link", "set", "eth0", "up")
    in_ns(pod, "ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    in_ns(pod, "ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
    in_ns(pod, "ip", "neigh", "add", "169.254.1.1", "lladdr", host_mac, "dev", "eth0", "nud", "permanent")
    return pod, json.loads(in_ns(pod, "ip", "-j", "link", "show", "eth0").stdout)[0]["address"]


def floor_nodes(topo, u):
    """Two nodes (192.168.4.11/.12) on their own underlay, one pod each
    (10.24.{1,2}.2) on a veth pair with the veth floor attached; each node
    routes the other's pod /24 via the other node. Returns the two pods."""
    nodes = [topo.node(ip=f"192.168.4.{10 + i}", pod_cidr=f"10.24.{i}.0/24", underlay=u) for i in (1, 2)]
    pods = []
    for i, nd in enumerate(nodes, 1):
        other = nodes[2 - i]
        sysctl(nd.ns, "net.ipv4.conf.all.forwarding", 1)  # bpf_fib_lookup() asks for it
        in_ns(nd.ns, "ip", "route", "add", other.pod_cidr, "via", other.ip)
        ip = f"10.24.{i}.2"
        pod, pod_mac = veth_pod(topo, nd, "bfp", "fv0", ip)
        in_ns(nd.ns, SKIFF_FLOOR, "--pod-dev", "fv0", "--pod-ip", ip, "--pod-mac", pod_mac, "--uplink", "up0")
        ep = Endpoint(pod, ip, f"floor-pod-{i}")
        ep.node_ns = nd.ns
        pods.append(ep)
    return pods


def floor_local_pods(topo):
    """The same-node veth floor: one node (no underlay: its uplink is a
    veth whose peer stays in it) with two pods (10.25.1.2 and .3) on veth
    pairs, bench/floor/veth_floor_local.c on both host veths (one hash
    lookup by destination, MACs, bpf_redirect_peer). The node routes both
    pods too, so floor_forwards() (TTL 64, not 63) tells the floor apart.
    Returns the two pods (each with .node_ns)."""
    nd = topo.node(ip="192.168.5.11", pod_cidr="10.25.1.0/24")
    sysctl(nd.ns, "net.ipv4.conf.all.forwarding", 1)
    pods, args = [], []
    for i in (1, 2):
        ip, dev = f"10.25.1.{i + 1}", f"fl{i}"
        pod, pod_mac = veth_pod(topo, nd, "bfl", dev, ip)
        args += ["--local-pod", f"{dev},{ip},{pod_mac}"]
        ep = Endpoint(pod, ip, f"floor-local-pod-{i}")
        ep.node_ns = nd.ns
        pods.append(ep)
    in_ns(nd.ns, SKIFF_FLOOR, *args)
    return pods


# ------------------------------------------------------------ bpf stats -----

def attached_programs(ns):
    """[{dev, hook, id, name}] of the tc BPF programs attached in ns
    (`bpftool net -j`)."""
    out = json.loads(in_ns(ns, "bpftool", "-j", "net", "show").stdout or "[]")
    progs = []
    for entry in out:
        for t in entry.get("tc", []):
            hook = t.get("kind", "")
            progs.append({"dev": t.get("devname"), "hook": "egress" if "egress" in hook else "ingress",
                          "id": t.get("id"), "name": t.get("name")})
    return progs


def floor_forwards(a, b):
    """True when the veth floor, not the nodes' IP stacks, carries b -> a:
    its redirects leave the TTL alone, so b's echo reply reaches a with the
    TTL b sent (64); routed by the two nodes' kernels it would arrive as 62.
    Call it both ways round to check both directions."""
    r = a.run("ping", "-c", "1", "-W", "2", b.ip, check=False)
    return r.returncode == 0 and " ttl=64 " in r.stdout


# -------------------------------------------------------------- bridge -----

class BridgeNode:
    """A node namespace whose pods are attached by the reference bridge plugin."""

    def __init__(self, topo, node, index):
        self.topo, self.node, self.ns, self.index = topo, node, node.ns, index
        self.subnet = f"10.22.{index}.0/24"
        self.ipam_dir = os.path.join(topo.tmp, node.ns, "host-local")
        os.makedirs(self.ipam_dir, exist_ok=True)
        sysctl(self.ns, "net.ipv4.ip_forward", 1)
        if br_netfilter_state() == "available":
            sysctl(self.ns, "net.bridge.bridge-nf-call-iptables", 1)

    def conf(self):
        return {"cniVersion": "1.0.0", "name": "bridgenet", "type": "bridge", "bridge": "cni0",
                "isGateway": True, "ipMasq": True, "hairpinMode": True, "mtu": 1500,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.ipam_dir}}

    def cni(self, command, cid, netns, ifname="eth0"):
        """Like libcni: env vars, config on stdin, plugin run in the node netns."""
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": REF_CNI_DIR}
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.ns}", "--", BRIDGE], input=json.dumps(self.conf()),
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"bridge {command} failed: {r.stdout} {r.stderr}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def add_pod(self, ns=None):
        ns = ns or self.topo.pod_ns()
        out = self.cni("ADD", f"c-{ns}", f"/run/netns/{ns}")
        return Endpoint(ns, out["ips"][0]["address"].split("/")[0], "bridge-pod")


def bridge_cluster(topo, u):
    """Two bridge-plugin nodes on one underlay, each routing the other's pod subnet."""
    nodes = []
    for i in (1, 2):
        nd = topo.node(ip=f"192.168.2.{10 + i}", pod_cidr=f"10.22.{i}.0/24", underlay=u)
        nodes.append(BridgeNode(topo, nd, i))
    for i, nd in enumerate(nodes):
        other = nodes[1 - i]
        in_ns(nd.ns, "ip", "route", "add", other.subnet, "via", other.node.ip)
    return nodes


def _kube_hash(prefix, text):
    """kube-proxy's chain names: prefix + 16 chars of base32(sha256)."""
    return prefix + base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def _kube_service_port(s, port, tport, cluster_cidr, large):
    """One service port the way kube-proxy writes it: its KUBE-SERVICES rule
    and its own chains [(chain, [rules])] (KUBE-SVC-*, then one KUBE-SEP-*
    per endpoint)."""
    vip = s["vip"]
    name = f"bench/{s['name']}:p{port}"
    svc = _kube_hash("KUBE-SVC-", f"{name}/tcp")
    entry = (f'-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment "{name} cluster IP" '
             f"-m tcp --dport {port} -j {svc}")
    svc_rules = [f'-A {svc} ! -s {cluster_cidr} -d {vip}/32 -p tcp -m comment --comment "{name} cluster IP" '
                 f"-m tcp --dport {port} -j KUBE-MARK-MASQ"]
    chains = [(svc, svc_rules)]
    n = len(s["backends"])
    for i, bip in enumerate(s["backends"]):
        sep = _kube_hash("KUBE-SEP-", f"{name}/tcp/{bip}:{tport}")
        # largeClusterMode (> 1000 endpoints): kube-proxy drops these comments.
        c_jump = "" if large else f'-m comment --comment "{name} -> {bip}:{tport}" '
        c_sep = "" if large else f'-m comment --comment "{name}" '
        prob = f"-m statistic --mode random --probability {1.0 / (n - i):.10f} " if i < n - 1 else ""
        svc_rules.append(f"-A {svc} {c_jump}{prob}-j {sep}")
        chains.append((sep, [f"-A {sep} -s {bip}/32 {c_sep}-j KUBE-MARK-MASQ",
                             f"-A {sep} -p tcp {c_sep}-m tcp -j DNAT --to-destination {bip}:{tport}"]))
    return entry, chains


def kube_chains(service, cluster_cidr=BRIDGE_CIDR):
    """Names of the nat chains kube-proxy keeps for one service."""
    return [c for p, t in service["ports"]
            for c, _ in _kube_service_port(service, p, t, cluster_cidr, False)[1]]


def large_cluster_mode(services):
    """kube-proxy's largeClusterMode: more than 1000 endpoints over all service ports."""
    return sum(len(s["backends"]) * len(s["ports"]) for s in services) > 1000


def kube_proxy_rules(services, cluster_cidr=BRIDGE_CIDR, jumps=True, only=None, delete=(), large=None):
    """iptables-restore input in kube-proxy's iptables-mode format (v1.28+,
    pkg/proxy/iptables/proxier.go syncProxyRules): *filter then *nat, chain
    declarations first, then rules.

    services: dicts {name, vip, ports: [(port, targetPort)], backends: [ip]}.
    Only custom chains are declared, so `--noflush` keeps the bridge plugin's
    CNI-* masquerade chains (a declared chain is flushed and refilled).
    jumps:  also append the jumps from the built-in chains (first install
            only; kube-proxy ensures those with separate iptables calls).
    only:   names of the services whose KUBE-SVC/KUBE-SEP chains are written.
            None: all of them (a full sync). Otherwise a partial sync: what
            kube-proxy writes when only these services' endpoints changed; it
            still rewrites the whole KUBE-SERVICES chain (one rule per service
            port) and the filter chains.
    delete: chains to flush and delete (stale KUBE-SEP chains).
    large:  largeClusterMode (None: decide like kube-proxy); drops the
            comments of the KUBE-SVC -> KUBE-SEP jumps and KUBE-SEP rules."""
    if large is None:
        large = large_cluster_mode(services)
    nat = [":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-POSTROUTING - [0:0]",
           ":KUBE-MARK-MASQ - [0:0]"]
    rules = ["-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
             "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
             '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
             "-j MASQUERADE --random-fully",
             "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"]
    if jumps:
        rules += ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                  '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                  '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING']
    for s in services:
        for port, tport in s["ports"]:
            entry, chains = _kube_service_port(s, port, tport, cluster_cidr, large)
            rules.append(entry)
            if only is not None and s["name"] not in only:
                continue
            for chain, crules in chains:
                nat.append(f":{chain} - [0:0]")
                rules += crules
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the '
                 'last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    for chain in delete:
        nat.append(f":{chain} - [0:0]")
        rules.append(f"-X {chain}")
    filt = [":KUBE-SERVICES - [0:0]", ":KUBE-EXTERNAL-SERVICES - [0:0]", ":KUBE-FORWARD - [0:0]",
            ":KUBE-NODEPORTS - [0:0]", ":KUBE-PROXY-FIREWALL - [0:0]", ":KUBE-FIREWALL - [0:0]",
            '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet '
            'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 '
            "-j ACCEPT",
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate '
            "RELATED,ESTABLISHED -j ACCEPT"]
    if jumps:
        filt += ['-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
                 "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
                 "-j KUBE-SERVICES",
                 "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible "
                 "service portals\" -j KUBE-EXTERNAL-SERVICES",
                 "-A INPUT -j KUBE-FIREWALL", "-A OUTPUT -j KUBE-FIREWALL"]
    return "*filter\n" + "\n".join(filt) + "\nCOMMIT\n*nat\n" + "\n".join(nat + rules) + "\nCOMMIT\n"


def filler_services(n):
    """n ClusterIP services (3 endpoints each) that are never hit: the scale
    in front of the one under test."""
    out = []
    for i in range(n):
        bks = [f"10.30.{(i * 3 + k) // 250 % 250}.{(i * 3 + k) % 250 + 1}" for k in range(3)]
        out.append({"name": f"f{i}", "vip": f"10.97.{i // 250}.{i % 250 + 1}", "ports": [(80, 8080)],
                    "backends": bks})
    return out


def install_kube_proxy(node, services):
    """kube-proxy's first sync: every chain, plus the jumps from the built-in chains."""
    rules = kube_proxy_rules(services)
    in_ns(node.ns, "iptables-restore", "--noflush", "-w", input=rules, timeout=1800)
    return rules.count("\n-A ")


def kube_proxy_sync(node, services, only=None, delete=()):
    """One later kube-proxy sync, run the way kube-proxy runs it
    (`iptables-restore -w --noflush --counters`, input on stdin): full
    (only=None) or partial (only the named services' chains, plus the whole
    KUBE-SERVICES chain). Returns (seconds, rules in the input)."""
    rules = kube_proxy_rules(services, jumps=False, only=only, delete=delete)
    t0 = time.monotonic()
    in_ns(node.ns, "iptables-restore", "-w", "--noflush", "--counters", input=rules, timeout=1800)
    return time.monotonic() - t0, rules.count("\n-A ")


def flush_kube_services(node):
    """Reset the KUBE-* chains (drop every service) keeping the CNI chains."""
    out = in_ns(node.ns, "iptables-save", "-t", "nat", timeout=600).stdout
    keep = [ln for ln in out.splitlines() if not ("KUBE-" in ln)]
    in_ns(node.ns, "iptables-restore", "-w", input="\n".join(keep) + "\n", timeout=1800)
    out = in_ns(node.ns, "iptables-save", "-t", "filter", timeout=600).stdout
    keep = [ln for ln in out.splitlines() if not ("KUBE-" in ln)]
    in_ns(node.ns, "iptables-restore", "-w", input="\n".join(keep) + "\n", timeout=1800)


CT_FLUSH = r"""
import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
nfgen = struct.pack("BBH", socket.AF_INET, 0, 0)
hdr = struct.pack("=IHHII", 16 + len(nfgen), (1 << 8) | 2, 1 | 4, 1, 0)  # CTNETLINK, IPCTNL_MSG_CT_DELETE, REQ|ACK
s.send(hdr + nfgen)
s.recv(4096)
"""


def conntrack_flush(ns):
    """Empty the namespace's conntrack table (no conntrack tool needed) so
    connection-rate runs never start with a table full of TIME_WAIT entries."""
    in_ns(ns, "python3", "-c", CT_FLUSH, check=False)


def conntrack_count(ns):
    r = in_ns(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count", check=False)
    return int(r.stdout.strip() or 0)


# ------------------------------------------------------------ external -----

class ExternalHost(Endpoint):
    """A host outside every cluster: one namespace with a leg on each setup's
    underlay (an address in that underlay's /24). Its only routes are those
    connected /24s: it reaches the node addresses and nothing else, so a pod
    whose source address is not translated to its node's gets no reply."""

    def __init__(self, topo, legs):
        """legs: {setup: (underlay ns, address)}."""
        ns = topo.pod_ns(unique("bext"))
        super().__init__(ns, None, "external")
        self.ips = {}
        for i, (setup, (u, ip)) in enumerate(legs.items()):
            port = unique("x")[:15]
            in_ns(ns, "ip", "link", "add", f"eth{i}", "type", "veth", "peer", "name", port, "netns", u)
            in_ns(u, "ip", "link", "set", port, "master", "br0", "up")
            in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", f"eth{i}")
            in_ns(ns, "ip", "link", "set", f"eth{i}", "up")
            self.ips[setup] = ip

    def routes_to(self, ip):
        """Whether this host has a route to ip."""
        return self.run("ip", "route", "get", ip, check=False).returncode == 0


# --------------------------------------------------------------- skiff -----

def k8s_service(name, vip, ports):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "bench"},
            "spec": {"type": "ClusterIP", "clusterIP": vip, "clusterIPs": [vip], "ports": ports}}


def k8s_slice(svc, ips, ports):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{svc}-1", "namespace": "bench", "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}
                          for ip in ips],
            "ports": ports}


def skiff_objects(services):
    """The same service dicts as Kubernetes Service + EndpointSlice objects."""
    items = []
    for s in services:
        items.append(k8s_service(s["name"], s["vip"], [{"name": f"p{p}", "port": p, "targetPort": t,
                                                         "protocol": "TCP"} for p, t in s["ports"]]))
        items.append(k8s_slice(s["name"], s["backends"], [{"name": f"p{p}", "port": t, "protocol": "TCP"}
                                                         for p, t in s["ports"]]))
    return items


class SkiffSetup:
    def __init__(self, topo):
        self.cluster = Cluster(topo, n=2)
        # Measure the datapath, not periodic resyncs.
        orig = self.cluster.agent_config
        self.cluster.agent_config = lambda nd: {**orig(nd), "resyncSeconds": 3600}
        self.nodes = self.cluster.nodes
        quiet_underlay(self.cluster.underlay)
        self.base = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in self.nodes]
        self.cluster.start()

    def add_pod(self, i):
        p = self.cluster.add_pod(self.nodes[i])
        return Endpoint(p.ns, p.ip, "skiff-pod")

    def frontends(self, node):
        v = self.cluster.metric(node, 'skiff_map_entries{map="frontends"}')
        return int(v) if v is not None else -1

    def skiffctl(self, i, *args, timeout=120):
        nd = self.nodes[i]
        return json.loads(in_ns(nd.ns, SKIFFCTL, "--pin-path", nd.pin, "-j", *args, timeout=timeout).stdout)

    def stats(self, i):
        """{(reason, direction): packets} on node i, from `skiffctl stats show`."""
        return {(e["reason"], e["direction"]): e["packets"] for e in self.skiffctl(i, "stats", "show")}

    def drops(self):
        """{reason: packets} of the datapath's drop reasons, summed over both nodes."""
        out = {}
        for i in range(len(self.nodes)):
            for e in self.skiffctl(i, "stats", "show"):
                if e.get("drop"):
                    out[e["reason"]] = out.get(e["reason"], 0) + e["packets"]
        return out

    def nat_entries(self, i):
        """Masquerade entries on node i (`skiffctl nat list`), by direction."""
        out = {}
        for e in self.skiffctl(i, "nat", "list"):
            out[e["direction"]] = out.get(e["direction"], 0) + 1
        return out

    def gc_seconds(self):
        """Busy seconds the agents have spent in conntrack/masquerade GC so
        far, both nodes; None if an agent does not export it."""
        v = [self.cluster.metric(nd, "skiff_agent_gc_duration_seconds_sum") for nd in self.nodes]
        return None if None in v else sum(v)

    def publish(self, services):
        self.cluster.write_source(self.base + skiff_objects(services))
        n = sum(len(s["ports"]) for s in services)
        wait_for(lambda: all(self.frontends(nd) == n for nd in self.nodes), f"{n} frontends programmed",
                 timeout=600, interval=0.05)


SETUPS = ("veth", "wire", "floor", "floor_local", "bridge", "skiff", "external")


def build_all(quick=False, only=None):
    """Every setup (or those in only, a set of SETUPS names; "external"
    needs wire, bridge and skiff), in one Topology. Returns (topo, dict)."""
    want = set(SETUPS if only is None else only)
    if "external" in want:
        want |= {"wire", "bridge", "skiff"}
    topo = Topology()
    try:
        s = {"topo": topo}
        t0 = time.monotonic()
        if "veth" in want or "wire" in want:
            log("building wire (veth pair, node -> node underlay)")
        underlays = {}  # setup: its switch underlay (the external host needs wire's and bridge's)

        def on_underlay(setup, build):
            underlays[setup] = switch_underlay(topo)
            return build(topo, underlays[setup])

        if "veth" in want:
            s["veth"] = veth_pair(topo)
        if "wire" in want:
            s["wire_nodes"] = on_underlay("wire", wire_nodes)
        # Built in this order: setup, what the log says it builds, its key in s, how.
        for setup, what, key, build in (
                ("floor", "the veth floor (two nodes, a pod each, bench/floor/veth_floor.c)", "floor_pods",
                 lambda: on_underlay("floor", floor_nodes)),
                ("floor_local", "the same-node veth floor (one node, two pods, bench/floor/veth_floor_local.c)",
                 "floor_local_pods", lambda: floor_local_pods(topo)),
                ("bridge", "bridge-plugin nodes", "bridge_nodes", lambda: on_underlay("bridge", bridge_cluster)),
                ("skiff", "skiff nodes with agents", "skiff", lambda: SkiffSetup(topo))):
            if setup in want:
                log(f"building {what}")
                s[key] = build()
        if "external" in want:
            log("building the external host (a leg on each underlay)")
            s["external"] = ExternalHost(topo, {"wire": (underlays["wire"], EXTERNAL_IPS["wire"]),
                                                "bridge": (underlays["bridge"], EXTERNAL_IPS["bridge"]),
                                                "skiff": (s["skiff"].cluster.underlay, EXTERNAL_IPS["skiff"])})
        log(f"setups built in {time.monotonic() - t0:.1f}s")
        return topo, s
    except BaseException:
        topo.close()
        raise
