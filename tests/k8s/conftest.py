"""The Kubernetes test bed (scripts/k8s/cluster.sh) for every test in this
directory: brought up once per session with skiff deployed from
deploy/skiff.yaml (the DaemonSet), torn down at the end, on failure too.
KTB_REUSE=1 runs them on a cluster that is already up and leaves it up.

The helpers wait with generous bounds (GENEROUS) only so that a broken
cluster fails instead of hanging; no test asserts on how long anything took.
"""
import json
import os
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(REPO, "scripts", "k8s", "cluster.sh")
STATE = os.environ.get("KTB_STATE", "/var/lib/ktb")
IMAGE = "ktb.local/busybox:1"
NODES = ("ktb-n1", "ktb-n2")
NODE_IP = {"ktb-n1": "192.168.77.11", "ktb-n2": "192.168.77.12"}
GENEROUS = 120  # seconds: a bound on waiting, not a speed check
REPORT = os.environ.get("SKIFF_K8S_REPORT")  # where measured times go (JSON), if set

# A web server answering / with its hostname and /cgi-bin/ip with the
# client's address as it saw it, and a UDP echo on 5353 answering
# "<hostname> <client address>".
WEB = ["sh", "-c",
       "mkdir -p /w/cgi-bin && hostname > /w/index.html && "
       "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /w/cgi-bin/ip && "
       "chmod +x /w/cgi-bin/ip && (udpecho serve 5353 &) && exec httpd -f -p 8080 -h /w"]


def sh(*cmd, check=True, timeout=600, env=None, stdin=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=stdin)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


class Cluster:
    def __init__(self, env):
        self.env = env

    def kubectl(self, *args, check=True, timeout=GENEROUS, stdin=None):
        r = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                           input=stdin)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {args}: rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def apply(self, objs):
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))

    def get(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def ready(self, name, ns="default"):
        p = self.get("-n", ns, "pod", name)
        conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
        return p if conds.get("Ready") == "True" else None

    def exec(self, pod, *cmd, check=False, timeout=30):
        """stdout of cmd in pod, None when it failed."""
        r = self.kubectl("exec", pod, "--", *cmd, check=check, timeout=timeout)
        return r.stdout.strip() if r.returncode == 0 else None

    def on(self, node, *cmd, check=False, timeout=30):
        """stdout of cmd run on a node (its netns, mounts, cgroup2 root), None when it failed."""
        r = sh("bash", CLUSTER, "on", node[4:], *cmd, check=check, timeout=timeout)
        return r.stdout.strip() if r.returncode == 0 else None

    def outside(self, *cmd, timeout=30):
        """stdout of cmd on the underlay from a machine that runs no skiff
        (the control-plane namespace), None when it failed."""
        r = sh("nsenter", "--net=/run/netns/ktb-cp", "--", *cmd, check=False, timeout=timeout)
        return r.stdout.strip() if r.returncode == 0 else None

    def skiff_pod(self, node):
        pods = self.get("-n", "kube-system", "pods", "-l", "app.kubernetes.io/name=skiff")["items"]
        for p in pods:
            if p["spec"].get("nodeName") == node and not p["metadata"].get("deletionTimestamp"):
                return p
        return None

    def wait_deleted(self, kind, name):
        self.kubectl("delete", kind, name, "--wait=true", timeout=GENEROUS)


def report(key, value):
    """A measurement, printed and (with SKIFF_K8S_REPORT) kept; never asserted on."""
    print(f"{key}: {value}")
    if REPORT:
        data = json.load(open(REPORT)) if os.path.exists(REPORT) else {}
        data[key] = value
        with open(REPORT, "w") as f:
            json.dump(data, f, indent=1)


def wait_for(what, cond, timeout=GENEROUS):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def pod(name, node, labels=None, command=("sleep", "3600"), host_network=False):
    spec = {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": list(command)}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": spec}


def deployment(name, replicas, command, spread=True, node=None):
    spec = {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": list(command)}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    if spread:
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                              "whenUnsatisfiable": "DoNotSchedule",
                                              "labelSelector": {"matchLabels": {"app": name}}}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def leases(node):
    d = os.path.join(STATE, node[4:], "skiff-state", "networks", "skiff", "ipam")
    return {f for f in os.listdir(d) if f[0].isdigit()} if os.path.isdir(d) else set()


def veths(node):
    out = sh("ip", "-n", node, "-o", "link", "show", "type", "veth").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture(scope="session")
def cluster():
    env = dict(os.environ)
    env["KTB_CNI"] = "daemonset"  # what these tests check
    reuse = os.environ.get("KTB_REUSE") == "1"  # a cluster already up: use it, leave it up
    try:
        if not reuse:
            if os.path.exists(STATE):  # what a killed earlier run left
                sh("bash", CLUSTER, "down", timeout=600)
            sh("bash", CLUSTER, "up", env=env, timeout=1800)
        lines = sh("bash", CLUSTER, "env").stdout
        kenv = dict(os.environ)
        for line in lines.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                kenv[k] = v.replace("$PATH", os.environ.get("PATH", ""))
        yield Cluster(kenv)
    finally:
        # Teardown fails the session when something is left behind.
        if not reuse:
            sh("bash", CLUSTER, "down", timeout=600)
