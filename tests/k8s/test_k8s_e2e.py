"""skiff on a real Kubernetes 1.20 (scripts/k8s/cluster.sh): deployed with
`kubectl apply -f deploy/skiff.yaml`, pods started by kubelet through
containerd's CRI, Services reached from pods, nodes and outside. Everything
a user would do goes through kubectl."""
import json
import os
import stat
import time

from conftest import NODE_IP, NODES, STATE, WEB, deployment, leases, pod, report, veths, wait_for


ROUTING = os.environ.get("KTB_ROUTING", "native")


def first_word(s):
    return s.split()[0] if s else None


def datapath_packets(cluster, node, reason):
    """The node's skiff_datapath_packets_total for reason (egress), from its agent's /metrics."""
    body = cluster.on(node, "curl", "-fsS", "-m", "5", "http://127.0.0.1:9964/metrics") or ""
    want = f'skiff_datapath_packets_total{{reason="{reason}",direction="egress"}} '
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(want))


def test_skiff_deployed_by_its_daemonset(cluster):
    wait_for("the skiff DaemonSet on both nodes",
             lambda: cluster.skiff_pod("ktb-n1") and cluster.skiff_pod("ktb-n2"))
    for n in NODES:
        p = cluster.skiff_pod(n)
        assert p["spec"]["hostNetwork"] is True
        assert cluster.ready(p["metadata"]["name"], "kube-system"), f"skiff on {n} not Ready"
        node = cluster.get("node", n)
        conds = {c["type"]: c for c in node["status"]["conditions"]}
        assert conds["Ready"]["status"] == "True"
        assert conds["NetworkUnavailable"]["status"] == "False"
        assert conds["NetworkUnavailable"]["reason"] == "SkiffIsUp"
        # The agent in the pod wrote the node's conflist through the
        # /etc/cni/net.d hostPath, and install-cni put a copy of the plugin
        # (not a link into the image) in /opt/cni/bin.
        conf = json.load(open(os.path.join(STATE, n[4:], "cni", "net.d", "10-skiff.conflist")))
        assert conf["plugins"][0]["podCIDR"] == node["spec"]["podCIDR"]
        assert conf["plugins"][0]["requireAgent"] is True
        plugin = os.lstat(os.path.join(STATE, n[4:], "cni-bin", "skiff"))
        assert stat.S_ISREG(plugin.st_mode) and plugin.st_mode & 0o111


def test_pods_across_nodes(cluster):
    t0 = time.monotonic()
    cluster.apply([pod("e2e-a", "ktb-n1"), pod("e2e-b", "ktb-n1", command=WEB), pod("e2e-c", "ktb-n2", command=WEB)])
    pods = {n: wait_for(f"{n} Ready", lambda n=n: cluster.ready(n)) for n in ("e2e-a", "e2e-b", "e2e-c")}
    report("k8s_3_pods_to_ready_s", round(time.monotonic() - t0, 1))
    ip = {n: p["status"]["podIP"] for n, p in pods.items()}
    for n, node in (("e2e-a", "ktb-n1"), ("e2e-b", "ktb-n1"), ("e2e-c", "ktb-n2")):
        cidr = cluster.get("node", node)["spec"]["podCIDR"]
        net, plen = cidr.split("/")
        assert ip[n].split(".")[:int(plen) // 8] == net.split(".")[:int(plen) // 8], (n, ip[n], cidr)
    # Same node and across nodes, the client's own address seen by the server.
    tunnel_before = datapath_packets(cluster, "ktb-n1", "fwd-tunnel")
    native_before = datapath_packets(cluster, "ktb-n1", "fwd-remote-node")
    for server in ("e2e-b", "e2e-c"):
        seen = wait_for(f"e2e-a -> {server}",
                        lambda s=server: cluster.exec("e2e-a", "wget", "-q", "-O", "-", f"http://{ip[s]}:8080/cgi-bin/ip"))
        # busybox httpd listens on IPv6 too and reports v4 peers as [::ffff:a.b.c.d].
        seen = seen.removeprefix("[::ffff:").removesuffix("]")
        assert seen == ip["e2e-a"], f"{server} saw {seen}, not the client pod's {ip['e2e-a']}"
    assert cluster.exec("e2e-c", "ping", "-c", "1", "-W", "3", ip["e2e-a"]) is not None
    # Across nodes the packets went the way the routing mode says.
    tunnel = datapath_packets(cluster, "ktb-n1", "fwd-tunnel") - tunnel_before
    native = datapath_packets(cluster, "ktb-n1", "fwd-remote-node") - native_before
    if ROUTING == "vxlan":
        assert tunnel > 0 and native == 0, (tunnel, native)
    else:
        assert native > 0 and tunnel == 0, (tunnel, native)
    # Node to pod: on its own node and on the other one.
    assert cluster.on("ktb-n1", "ping", "-c", "1", "-W", "3", ip["e2e-b"]) is not None
    assert cluster.on("ktb-n1", "ping", "-c", "1", "-W", "3", ip["e2e-c"]) is not None
    assert cluster.on("ktb-n2", "curl", "-fsS", "-m", "5", f"http://{ip['e2e-b']}:8080/") == "e2e-b"
    # Deleting a pod runs CNI DEL: its lease and its veth go.
    assert ip["e2e-b"] in leases("ktb-n1")
    before = veths("ktb-n1")
    cluster.wait_deleted("pod", "e2e-b")
    wait_for("e2e-b's lease released", lambda: ip["e2e-b"] not in leases("ktb-n1"))
    assert len(veths("ktb-n1")) == len(before) - 1
    cluster.kubectl("delete", "pod", "e2e-a", "e2e-c", "--wait=true")


def test_services_from_pods_nodes_and_outside(cluster):
    web = deployment("web", 2, WEB)
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                              {"name": "echo", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}}
    nodeport = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-np"},
                "spec": {"type": "NodePort", "selector": {"app": "web"},
                         "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]}}
    cluster.apply([web, svc, nodeport, pod("e2e-client", "ktb-n1"),
                   pod("e2e-hostnet", "ktb-n2", host_network=True)])
    wait_for("the clients", lambda: cluster.ready("e2e-client") and cluster.ready("e2e-hostnet"))
    wait_for("2 web replicas ready", lambda: cluster.get("deployment", "web")["status"].get("readyReplicas") == 2)
    names = {p["metadata"]["name"] for p in cluster.get("pods", "-l", "app=web")["items"]}
    vip = cluster.get("service", "web")["spec"]["clusterIP"]

    def every_backend(what, fetch):
        seen = set()
        wait_for(f"both backends {what}", lambda: seen.add(fetch()) or names <= seen)
        assert seen - {None} <= names, f"{what}: answers from {seen - names}"

    # ClusterIP, TCP and UDP, from a pod (one backend is on the other node).
    every_backend("by TCP from a pod", lambda: cluster.exec("e2e-client", "wget", "-q", "-O", "-", f"http://{vip}/"))
    every_backend("by UDP from a pod", lambda: first_word(cluster.exec("e2e-client", "udpecho", "ask", vip, "53")))
    # From the node and from a host-network pod: socket LB on the node's cgroup2 root.
    every_backend("by TCP from the node", lambda: cluster.on("ktb-n1", "curl", "-fsS", "-m", "5", f"http://{vip}/"))
    every_backend("by TCP from a host-network pod",
                  lambda: cluster.exec("e2e-hostnet", "wget", "-q", "-O", "-", f"http://{vip}/"))
    every_backend("by UDP from a host-network pod",
                  lambda: first_word(cluster.exec("e2e-hostnet", "udpecho", "ask", vip, "53")))
    # NodePort on either node: from a pod, from a node, from outside the cluster.
    for ip in NODE_IP.values():
        url = f"http://{ip}:30080/"
        every_backend(f"through NodePort {ip} from a pod", lambda u=url: cluster.exec("e2e-client", "wget", "-q", "-O", "-", u))
        every_backend(f"through NodePort {ip} from the other node",
                      lambda u=url: cluster.on("ktb-n2" if ip.endswith(".11") else "ktb-n1", "curl", "-fsS", "-m", "5", u))
        every_backend(f"through NodePort {ip} from outside", lambda u=url: cluster.outside("curl", "-fsS", "-m", "5", u))

    # Endpoints follow pod deletion: the deleted backend never answers once
    # it is gone, its replacement does.
    gone = sorted(names)[0]
    cluster.kubectl("delete", "pod", gone, "--wait=true")
    wait_for("2 web replicas ready again",
             lambda: cluster.get("deployment", "web")["status"].get("readyReplicas") == 2)
    names = {p["metadata"]["name"] for p in cluster.get("pods", "-l", "app=web")["items"]
             if not p["metadata"].get("deletionTimestamp")}
    assert gone not in names
    every_backend("after a backend was deleted",
                  lambda: cluster.exec("e2e-client", "wget", "-q", "-O", "-", f"http://{vip}/"))

    # Scaled to zero, the frontend rejects at once (no hanging connection).
    cluster.kubectl("scale", "deployment", "web", "--replicas=0")
    wait_for("no web pods", lambda: not cluster.get("pods", "-l", "app=web")["items"])

    def refused():
        r = cluster.kubectl("exec", "e2e-client", "--", "wget", "-q", "-O", "-", f"http://{vip}/",
                            check=False, timeout=30)
        return r.returncode != 0 and ("refused" in r.stderr or "refused" in r.stdout)

    wait_for("the frontend to reject without backends", refused)
    # Scaled back up, it answers again.
    cluster.kubectl("scale", "deployment", "web", "--replicas=1")
    wait_for("a backend again",
             lambda: cluster.exec("e2e-client", "wget", "-q", "-O", "-", f"http://{vip}/") is not None)
    cluster.kubectl("delete", "deployment", "web", "--wait=true")
    cluster.kubectl("delete", "service", "web", "web-np")
    cluster.kubectl("delete", "pod", "e2e-client", "e2e-hostnet", "--wait=true")


def test_pods_reach_the_api_server_through_the_kubernetes_service(cluster):
    """The `kubernetes` Service's backend is the API server's own address, a
    machine outside the pod network that has no route back to pods: skiff
    masquerades what it sends there, as it does for any such destination."""
    cluster.apply([pod("e2e-api", "ktb-n2")])
    wait_for("e2e-api Ready", lambda: cluster.ready("e2e-api"))
    vip = cluster.get("service", "kubernetes")["spec"]["clusterIP"]
    # busybox wget speaks TLS; /version is open to anyone.
    out = wait_for("the API server's /version through the kubernetes Service",
                   lambda: cluster.exec("e2e-api", "timeout", "10", "wget", "-q", "-O", "-", "--no-check-certificate",
                                        f"https://{vip}/version"))
    assert json.loads(out)["gitVersion"] == "v1.20.2"
    cluster.kubectl("delete", "pod", "e2e-api", "--wait=true")
