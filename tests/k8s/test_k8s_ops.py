"""skiff on the Kubernetes test bed under operations: 50 pods scaled up and
down, the skiff DaemonSet's pods deleted and rolled while traffic flows, the
API server stopped and started while the agent misses a deletion."""
import glob
import json
import os
import time

from conftest import CLUSTER, GENEROUS, NODES, STATE, WEB, deployment, leases, pod, report, sh, veths, wait_for

def test_fifty_pods_up_and_down(cluster):
    base_leases = {n: leases(n) for n in NODES}
    base_veths = {n: veths(n) for n in NODES}
    t0 = time.monotonic()
    cluster.apply([deployment("many", 50, ["sleep", "3600"], spread=False)])
    wait_for("50 pods Ready",
             lambda: cluster.get("deployment", "many")["status"].get("readyReplicas") == 50, timeout=600)
    report("k8s_50_pods_to_ready_s", round(time.monotonic() - t0, 1))
    pods = cluster.get("pods", "-l", "app=many")["items"]
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 50, "two pods share an address"
    for n in NODES:
        on_node = {p["status"]["podIP"] for p in pods if p["spec"]["nodeName"] == n}
        assert leases(n) - base_leases[n] == on_node, f"{n}: leases do not match its pods"
        assert len(veths(n) - base_veths[n]) == len(on_node)
    t0 = time.monotonic()
    cluster.kubectl("scale", "deployment", "many", "--replicas=0")
    wait_for("no pods left", lambda: not cluster.get("pods", "-l", "app=many")["items"], timeout=600)
    report("k8s_50_pods_deleted_s", round(time.monotonic() - t0, 1))
    # The 50 pods' leases and veths are gone (what else the node had may
    # have gone too: pods of an earlier test still terminating).
    for n in NODES:
        wait_for(f"{n}: the pods' leases released", lambda n=n: not leases(n) & set(ips))
        assert not veths(n) - base_veths[n], f"{n}: veths left: {veths(n) - base_veths[n]}"
    cluster.kubectl("delete", "deployment", "many", "--wait=true")


# Each line names the container run it came from (a restarted container
# starts counting again, in a new log file of the same directory). After
# DONE it stays up: a container that exited would be restarted (the pod's
# restartPolicy is Always), in a new root without /tmp/stop, and probe
# again while finish() reads the log.
PROBE = """
read run < /proc/sys/kernel/random/uuid
i=0
while [ ! -e /tmp/stop ]; do
  i=$((i+1))
  if timeout 5 wget -q -O /dev/null http://{vip}/; then r=OK; else r=FAIL; fi
  echo "$r svc $i $(date +%s) $run"
  if timeout 5 wget -q -O /dev/null http://{pod_ip}:8080/; then r=OK; else r=FAIL; fi
  echo "$r pod $i $(date +%s) $run"
  sleep 0.2
done
echo DONE
exec sleep 3600
"""


class Prober:
    """A pod on ktb-n1 probing a ClusterIP whose one backend is on ktb-n2,
    and that backend directly: one line per probe, read from the node's
    container log file (so also while the API server is down). Each node
    has its own /var/log/pods (the test bed's $KTB_STATE/NODE/log/pods)."""

    def __init__(self, cluster, name):
        self.cluster, self.name = cluster, name
        cluster.apply([deployment(f"{name}-web", 1, WEB, spread=False, node="ktb-n2"),
                       {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-web"},
                        "spec": {"selector": {"app": f"{name}-web"}, "ports": [{"port": 80, "targetPort": 8080}]}}])
        backend = wait_for("the probed backend", lambda: cluster.get("deployment", f"{name}-web")["status"]
                           .get("readyReplicas") == 1 and cluster.get("pods", "-l", f"app={name}-web")["items"])
        vip = cluster.get("service", f"{name}-web")["spec"]["clusterIP"]
        script = PROBE.replace("{vip}", vip).replace("{pod_ip}", backend[0]["status"]["podIP"])
        cluster.apply([pod(name, "ktb-n1", command=["sh", "-c", script])])
        uid = wait_for("the prober Ready", lambda: cluster.ready(name))["metadata"]["uid"]
        self.log_dir = os.path.join(STATE, "n1", "log", "pods", f"default_{name}_{uid}", "c")
        wait_for("first probes", lambda: len(self.probes("OK")) >= 4)

    def lines(self):
        out = []
        for f in sorted(glob.glob(os.path.join(self.log_dir, "*.log"))):
            with open(f) as fh:
                out += [line.rstrip("\n").split(" ", 3)[3] for line in fh if line.count(" ") >= 3]
        return out

    def probes(self, result, since=0):
        """(kind, n, time, run) of the probes with this result from time `since` on."""
        got = []
        for line in self.lines():
            w = line.split()
            if len(w) == 5 and w[0] == result and int(w[3]) >= since:
                got.append((w[1], int(w[2]), int(w[3]), w[4]))
        return got

    def wait_more(self, what, n=4):
        since = int(time.time())
        wait_for(f"{n} probes {what}", lambda: len(self.probes("OK", since)) >= n)

    def node_log_lines(self, last=40):
        """What ktb-n1's kubelet and containerd logged about the prober pod."""
        out = []
        for d in ("kubelet-n1", "containerd-n1"):
            try:
                with open(os.path.join(STATE, "log", f"{d}.log"), errors="replace") as f:
                    out += [f"{d}: {line.rstrip()}" for line in f if self.name in line][-last:]
            except OSError as e:
                out.append(f"{d}: {e}")
        return "\n".join(out)

    def finish(self):
        self.cluster.exec(self.name, "touch", "/tmp/stop", check=True)
        try:
            wait_for("the prober to stop", lambda: "DONE" in self.lines())
        except AssertionError as e:
            files = glob.glob(os.path.join(self.log_dir, "*"))
            status = self.cluster.get("pod", self.name)["status"].get("containerStatuses")
            raise AssertionError(f"{e}: log files {files}, last lines {self.lines()[-4:]}, "
                                 f"container {status}") from None
        ok, failed = self.probes("OK"), self.probes("FAIL")
        runs = sorted({r for *_, r in ok + failed})
        status = self.cluster.get("pod", self.name)["status"].get("containerStatuses")
        # The prober ran as one container: a restart (whatever its cause)
        # would leave probes unmade while it was down.
        assert len(runs) == 1, (f"the prober container ran {len(runs)} times: {status}, {self.lines()[:6]}\n"
                                + self.node_log_lines())
        # Every probe is on record: a lost log line could hide a failure.
        for kind in ("svc", "pod"):
            seen = sorted(n for k, n, _, _ in ok + failed if k == kind)
            assert seen == list(range(1, len(seen) + 1)), f"{kind} probes missing from the log: {seen}"
        self.cluster.kubectl("delete", "pod", self.name, "--wait=true")
        self.cluster.kubectl("delete", "deployment", f"{self.name}-web", "--wait=true")
        self.cluster.kubectl("delete", "service", f"{self.name}-web")
        return ok, failed


def test_skiff_pods_deleted_and_rolled_under_traffic(cluster):
    prober = Prober(cluster, "probe-ds")
    for n in NODES:
        old = cluster.skiff_pod(n)["metadata"]["name"]
        cluster.kubectl("-n", "kube-system", "delete", "pod", old, "--wait=true")
        wait_for(f"a new skiff pod Ready on {n}",
                 lambda n=n: (p := cluster.skiff_pod(n)) and p["metadata"]["name"] != old
                 and cluster.ready(p["metadata"]["name"], "kube-system"))
        prober.wait_more(f"after skiff on {n} was replaced")
    cluster.kubectl("-n", "kube-system", "rollout", "restart", "daemonset/skiff")
    cluster.kubectl("-n", "kube-system", "rollout", "status", "daemonset/skiff", "--timeout=300s", timeout=330)
    prober.wait_more("after the rollout")
    ok, failed = prober.finish()
    assert not failed, f"{len(failed)} of {len(ok) + len(failed)} probes lost: {failed[:10]}"
    report("k8s_probes_during_daemonset_restarts", len(ok))


def etcdctl(*args):
    return sh("nsenter", "--net=/run/netns/ktb-cp", "--", "env", "ETCDCTL_API=3", "etcdctl",
              "--endpoints=http://127.0.0.1:2379", *args)


def skiffctl_services(cluster, node):
    name = cluster.skiff_pod(node)["metadata"]["name"]
    out = cluster.kubectl("-n", "kube-system", "exec", name, "-c", "skiff-agent", "--",
                          "/usr/local/bin/skiffctl", "-j", "service", "list").stdout
    return json.loads(out)


def test_api_server_stopped_and_started(cluster):
    prober = Prober(cluster, "probe-api")
    # A Service whose deletion the agents will miss.
    cluster.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "doomed"},
                    "spec": {"selector": {"app": "probe-api-web"}, "ports": [{"port": 80, "targetPort": 8080}]}}])
    doomed = cluster.get("service", "doomed")["spec"]["clusterIP"]
    for n in NODES:
        wait_for(f"{n} programs the doomed Service", lambda n=n: doomed in json.dumps(skiffctl_services(cluster, n)))
    slices = etcdctl("get", "--prefix", "--keys-only", "/registry/endpointslices/default/doomed").stdout.split()
    assert slices, "no EndpointSlice of the doomed Service in etcd"
    try:
        sh("bash", CLUSTER, "apiserver", "stop")
        # The Service goes while no agent can see it (as if deleted during a
        # partition): straight out of etcd.
        for k in ["/registry/services/specs/default/doomed", "/registry/services/endpoints/default/doomed", *slices]:
            assert etcdctl("del", k).stdout.strip() == "1", k
        # The datapath works on without the API server.
        prober.wait_more("while the API server is down")
    finally:
        sh("bash", CLUSTER, "apiserver", "start")
    # The agents come back to the API server, find the Service gone and
    # remove its frontend.
    for n in NODES:
        wait_for(f"{n} drops the Service deleted while it was away",
                 lambda n=n: doomed not in json.dumps(skiffctl_services(cluster, n)), timeout=GENEROUS * 2)
    prober.wait_more("after the API server came back")
    ok, failed = prober.finish()
    assert not failed, f"{len(failed)} of {len(ok) + len(failed)} probes lost: {failed[:10]}"
