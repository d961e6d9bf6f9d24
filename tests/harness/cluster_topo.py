"""Multi-node clusters: nodes on one L2 underlay (or on subnets behind a
router that has no route to any PodCIDR), a skiff-agent per node, the
cluster described by a kubectl-style List file the agents watch."""
import json
import os
import signal
import subprocess
import time

from skiff_topo import BIN_DIR, in_ns

AGENT = os.path.join(BIN_DIR, "skiff-agent")
CLUSTER_CIDR = "10.244.0.0/16"


def wait_for(pred, what, timeout=20.0, interval=0.05):
    """Poll pred() until true; a bounded wait for readiness, not a speed check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def node_object(name, ip, pod_cidr):
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "spec": {}, "status": {"addresses": []}}
    if pod_cidr is not None:
        obj["spec"]["podCIDR"] = pod_cidr
        obj["spec"]["podCIDRs"] = [pod_cidr]
    if ip is not None:
        obj["status"]["addresses"] = [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]
    return obj


class Etcd:
    """A real etcd (Debian's etcd-server) listening on the underlay only."""

    def __init__(self, topo, ns, ip):
        self.url = f"http://{ip}:2379"
        self.ns = ns
        data = os.path.join(topo.tmp, "etcd")
        in_ns(ns, "ip", "link", "set", "lo", "up")
        log = open(os.path.join(topo.tmp, "etcd.log"), "w")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", "--", "etcd", "--data-dir", data, "--name", "skiff-test",
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
             "--initial-cluster", "skiff-test=http://127.0.0.1:2380"], stdout=log, stderr=log)
        topo.procs.append(self.proc)
        wait_for(lambda: in_ns(ns, "curl", "-s", "-m", "1", f"{self.url}/health", check=False).stdout.count("true"),
                 "etcd healthy")


class Cluster:
    def __init__(self, topo, n=3, etcd=False, lease_ttl=3, subnets=None):
        """subnets: per node, the underlay subnet it sits on (192.168.S.0/24
        on bridge brS); the underlay namespace routes between them, and
        knows nothing of PodCIDRs. None: every node on br0, one segment."""
        self.topo = topo
        self.underlay = topo.underlay()
        self.subnets = subnets
        if subnets:
            in_ns(self.underlay, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            for sn in sorted(set(subnets)):
                br = f"br{sn}"
                if br != "br0":
                    in_ns(self.underlay, "ip", "link", "add", br, "type", "bridge")
                in_ns(self.underlay, "ip", "addr", "add", f"192.168.{sn}.1/24", "dev", br)
                in_ns(self.underlay, "ip", "link", "set", br, "up")
        self.nodes = []
        self.agents = {}
        self.source = os.path.join(topo.tmp, "cluster.json")
        self.lease_ttl = lease_ttl
        self.socket_lb_cgroup = None
        self.agent_extra = {}  # more agent config keys, e.g. {"maxObjects": 10}
        self.etcd_prefix = "/skiff-" + os.path.basename(topo.tmp)
        if etcd:
            in_ns(self.underlay, "ip", "addr", "add", "192.168.1.1/24", "dev", "br0")
            self.etcd = Etcd(topo, self.underlay, "192.168.1.1")
        else:
            self.etcd = None
        for i in range(1, n + 1):
            self.add_node(i)
        if not etcd:
            self.write_source([node_object(nd.name, nd.ip, nd.pod_cidr) for nd in self.nodes])

    def add_node(self, i):
        sn = self.subnets[i - 1] if self.subnets else 1
        node = self.topo.node(ip=f"192.168.{sn}.{10 + i}", pod_cidr=f"10.244.{i}.0/24", underlay=self.underlay,
                              bridge=f"br{sn}" if self.subnets else "br0")
        if self.subnets:
            in_ns(node.ns, "ip", "route", "add", "default", "via", f"192.168.{sn}.1")
        node.name = f"node-{i}"
        node.cni_dir = os.path.join(self.topo.tmp, node.ns, "cni")
        self.nodes.append(node)
        return node

    def write_source(self, items):
        tmp = self.source + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
        os.rename(tmp, self.source)

    def agent_config(self, node):
        cfg = {"nodeName": node.name, "nodeIP": node.ip, "uplink": "up0", "clusterCIDR": CLUSTER_CIDR,
               "pinPath": node.pin, "stateDir": node.state, "cniConfDir": node.cni_dir,
               "listen": "127.0.0.1:9964", "resyncSeconds": 2, "source": {"file": self.source}}
        if self.socket_lb_cgroup:
            cfg["socketLBCgroup"] = self.socket_lb_cgroup
        cfg.update(self.agent_extra)
        if self.etcd:
            cfg["source"] = {"etcd": {"endpoints": [self.etcd.url], "prefix": self.etcd_prefix,
                                      "leaseTTL": self.lease_ttl}}
        return cfg

    def start_agent(self, node):
        cfg = os.path.join(self.topo.tmp, node.ns, "agent.json")
        with open(cfg, "w") as f:
            json.dump(self.agent_config(node), f)
        log = open(os.path.join(self.topo.tmp, node.ns, "agent.log"), "a")
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{node.ns}", "--", AGENT, "--config", cfg],
                             stdout=log, stderr=log)
        self.topo.procs.append(p)
        self.agents[node.ns] = p
        return p

    def kill_agent(self, node, sig=signal.SIGKILL):
        p = self.agents.pop(node.ns)
        p.send_signal(sig)
        p.wait(timeout=10)

    def start(self, nodes=None):
        nodes = nodes or self.nodes
        for nd in nodes:
            self.start_agent(nd)
        for nd in nodes:
            wait_for(lambda nd=nd: os.path.exists(self.conflist_path(nd)), f"{nd.name} conflist")
            nd.pod_cidr = self.plugin_conf(nd)["podCIDR"]  # claimed, with the etcd source

    def conflist_path(self, node):
        return os.path.join(node.cni_dir, "10-skiff.conflist")

    def plugin_conf(self, node):
        """The plugin entry the agent wrote, as libcni would hand it over."""
        with open(self.conflist_path(node)) as f:
            cl = json.load(f)
        conf = dict(cl["plugins"][0])
        conf.update({"cniVersion": cl["cniVersion"], "name": cl["name"], "logFile": node.log})
        return conf

    def add_pod(self, node):
        node.network = "skiff"
        return node.add_pod(conf=self.plugin_conf(node))

    def http(self, node, path):
        r = in_ns(node.ns, "curl", "-s", "-w", "\n%{http_code}", f"http://127.0.0.1:9964{path}", check=False)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body

    def metric(self, node, name_with_labels):
        code, body = self.http(node, "/metrics")
        for line in body.splitlines():
            if line.startswith(name_with_labels + " "):
                return float(line.split()[-1])
        return None

    def node_map(self, node):
        out = {}
        for e in node_map_dump(node):
            k, v = e["key"], e["value"]
            ip = ".".join(str((k["ip"] >> (8 * i)) & 0xff) for i in range(4))
            nip = ".".join(str((v["node_ip"] >> (8 * i)) & 0xff) for i in range(4))
            out[f"{ip}/{k['prefixlen']}"] = (nip, v["flags"])
        return out

    def skiff_routes(self, node):
        routes = json.loads(in_ns(node.ns, "ip", "-j", "route", "show", "proto", "178").stdout)
        return {r["dst"]: r.get("gateway") for r in routes}


def node_map_dump(node):
    path = os.path.join(node.pin, "skiff_nodes")
    if not os.path.exists(path):
        return []
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", path], capture_output=True, text=True).stdout
    return [e["formatted"] for e in json.loads(out)]
