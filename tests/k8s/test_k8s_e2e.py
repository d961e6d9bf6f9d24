"""skiff on a real Kubernetes 1.20 (scripts/k8s/cluster.sh): kube-apiserver,
controller-manager and scheduler in one namespace, two worker namespaces
with their own containerd and kubelet, and a skiff-agent per node reading
the API (KTB_CNI=agent). Everything through kubectl, as a user would."""
import json
import os
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(REPO, "scripts", "k8s", "cluster.sh")
STATE = os.environ.get("KTB_STATE", "/var/lib/ktb")
IMAGE = "ktb.local/busybox:1"
GENEROUS = 120  # seconds: a bound on waiting, not a speed check


def sh(*cmd, check=True, timeout=600, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def cluster():
    env = dict(os.environ, KTB_CNI="agent")
    try:
        sh("bash", CLUSTER, "up", env=env, timeout=1800)
        lines = sh("bash", CLUSTER, "env").stdout
        kenv = dict(os.environ)
        for line in lines.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                kenv[k] = v.replace("$PATH", os.environ.get("PATH", ""))
        yield kenv
    finally:
        sh("bash", CLUSTER, "down", check=False, timeout=600)


def kubectl(env, *args, check=True, timeout=120, stdin=None):
    r = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=timeout, input=stdin)
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {args}: {r.stdout}\n{r.stderr}")
    return r


def apply(env, objs):
    kubectl(env, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def wait_for(what, cond, timeout=GENEROUS):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def pod(name, node, labels=None, command=("sleep", "3600")):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                                     "command": list(command)}]}}


WEB = ["sh", "-c", "mkdir -p /w && hostname > /w/index.html && exec httpd -f -p 8080 -h /w"]


def get(env, *args):
    return json.loads(kubectl(env, "get", *args, "-o", "json").stdout)


def ready(env, name):
    p = get(env, "pod", name)
    conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
    return p if conds.get("Ready") == "True" else None


def test_nodes_ready_with_skiff_network(cluster):
    for n in ("ktb-n1", "ktb-n2"):
        node = wait_for(f"{n} Ready", lambda: (lambda o: o if {c["type"]: c["status"] for c in
                                                               o["status"]["conditions"]}.get("Ready") == "True"
                                               else None)(get(cluster, "node", n)))
        conds = {c["type"]: c for c in node["status"]["conditions"]}
        assert conds["NetworkUnavailable"]["status"] == "False"
        assert conds["NetworkUnavailable"]["reason"] == "SkiffIsUp"
        # The agent, not the test bed, wrote the conflist.
        conf = json.load(open(os.path.join(STATE, n[4:], "cni", "net.d", "10-skiff.conflist")))
        assert conf["plugins"][0]["podCIDR"] == node["spec"]["podCIDR"]
        assert conf["plugins"][0]["requireAgent"] is True


def test_pods_across_nodes(cluster):
    apply(cluster, [pod("e2e-a", "ktb-n1"), pod("e2e-b", "ktb-n1"), pod("e2e-c", "ktb-n2")])
    pods = {n: wait_for(f"{n} Ready", lambda n=n: ready(cluster, n)) for n in ("e2e-a", "e2e-b", "e2e-c")}
    ip = {n: p["status"]["podIP"] for n, p in pods.items()}
    for n, node in (("e2e-a", "ktb-n1"), ("e2e-b", "ktb-n1"), ("e2e-c", "ktb-n2")):
        cidr = get(cluster, "node", node)["spec"]["podCIDR"]
        net, plen = cidr.split("/")
        assert ip[n].split(".")[:int(plen) // 8] == net.split(".")[:int(plen) // 8], (n, ip[n], cidr)
    # Same node and across nodes.
    kubectl(cluster, "exec", "e2e-a", "--", "ping", "-c", "2", "-W", "3", ip["e2e-b"])
    kubectl(cluster, "exec", "e2e-a", "--", "ping", "-c", "2", "-W", "3", ip["e2e-c"])
    # Deleting a pod runs CNI DEL: its lease goes.
    leases = os.path.join(STATE, "n1", "skiff-state", "networks", "skiff", "ipam")
    assert ip["e2e-b"] in os.listdir(leases)
    kubectl(cluster, "delete", "pod", "e2e-b", "--wait=true", timeout=GENEROUS)
    wait_for("e2e-b's lease released", lambda: ip["e2e-b"] not in os.listdir(leases))
    kubectl(cluster, "delete", "pod", "e2e-a", "e2e-c", "--wait=true", timeout=GENEROUS)


def test_deployment_behind_a_cluster_ip(cluster):
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"terminationGracePeriodSeconds": 1,
                                             "topologySpreadConstraints": [{
                                                 "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                 "whenUnsatisfiable": "DoNotSchedule",
                                                 "labelSelector": {"matchLabels": {"app": "web"}}}],
                                             "containers": [{"name": "c", "image": IMAGE,
                                                             "imagePullPolicy": "Never", "command": WEB}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    apply(cluster, [deploy, svc, pod("e2e-client", "ktb-n1")])
    wait_for("the client", lambda: ready(cluster, "e2e-client"))
    wait_for("2 web replicas ready", lambda: get(cluster, "deployment", "web")["status"].get("readyReplicas") == 2)
    names = {p["metadata"]["name"] for p in get(cluster, "pods", "-l", "app=web")["items"]}
    vip = get(cluster, "service", "web")["spec"]["clusterIP"]

    def fetch():
        r = kubectl(cluster, "exec", "e2e-client", "--", "wget", "-q", "-O", "-", f"http://{vip}/",
                    check=False, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None

    # Both backends answer through the ClusterIP (one is on the other node).
    seen = set()
    wait_for("both backends through the ClusterIP", lambda: seen.add(fetch()) or names <= seen)
    # Scaled to zero, the frontend rejects at once (no hanging connection).
    kubectl(cluster, "scale", "deployment", "web", "--replicas=0")
    wait_for("no web pods", lambda: not get(cluster, "pods", "-l", "app=web")["items"])

    def refused():
        r = kubectl(cluster, "exec", "e2e-client", "--", "wget", "-q", "-O", "-", f"http://{vip}/",
                    check=False, timeout=30)
        return r.returncode != 0 and ("refused" in r.stderr or "refused" in r.stdout)

    wait_for("the frontend to reject without backends", refused)
    # Scaled back up, it answers again.
    kubectl(cluster, "scale", "deployment", "web", "--replicas=1")
    wait_for("a backend again", lambda: fetch() is not None)
    kubectl(cluster, "delete", "deployment", "web", "--wait=true", timeout=GENEROUS)
    kubectl(cluster, "delete", "service", "web")
    kubectl(cluster, "delete", "pod", "e2e-client", "--wait=true", timeout=GENEROUS)
