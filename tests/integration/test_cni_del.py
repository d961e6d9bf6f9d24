"""DEL takes the host veth down at once and deletes it in a detached process
after the plugin returned. Everything else DEL removes (lease, endpoint
entry, attachment state, routes) is gone when it returns; the veth is gone
eventually; the runtime's pipes see only the result; an ADD of the same
attachment while the deletion is pending works."""
import json
import os
import subprocess

from cluster_topo import wait_for
from skiff_topo import CNI_PATH, SKIFF, fault_env

NOTHING = {"veths": [], "routes": [], "leases": [], "attachments": [], "endpoints": [], "pod_sources": [],
           "temp": []}
GENEROUS = 60  # seconds: a bounded wait, not a speed check


def pending_veths(node):
    """Host veths DEL took down and has not deleted yet (or a killed ADD left down)."""
    return [l["ifname"] for l in node.links() if l["ifname"].startswith("skf") and "UP" not in l["flags"]]


def settled_leftovers(node):
    """node.leftovers() once no host veth is pending deletion."""
    wait_for(lambda: not pending_veths(node), "the background veth deletions", timeout=GENEROUS)
    return node.leftovers()


def background_pids(cid):
    """skiff's detached processes working for container cid."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() != "skiff-bg":
                    continue
            with open(f"/proc/{d}/environ", "rb") as f:
                if f"CNI_CONTAINERID={cid}".encode() in f.read().split(b"\0"):
                    pids.append(int(d))
        except (OSError, ValueError):
            continue
    return pids


def raw_cni(node, command, pod, env=None):
    """The plugin run like libcni runs it; stdout and stderr exactly as read until EOF."""
    e = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
         "CNI_CONTAINERID": pod.cid, "CNI_NETNS": f"/run/netns/{pod.ns}", "CNI_IFNAME": pod.ifname,
         "CNI_PATH": CNI_PATH, **(env or {})}
    return subprocess.run(["nsenter", f"--net=/run/netns/{node.ns}", "--", SKIFF], input=json.dumps(node.conf()),
                          capture_output=True, text=True, env=e, timeout=60)


def link(node, name):
    links = [l for l in node.links() if l["ifname"] == name]
    return links[0] if links else None


def held(topo, name="hold"):
    """The fault injection that keeps the background deletion pending while the returned file exists."""
    path = os.path.join(topo.tmp, name)
    env = fault_env(f"hold:background-delete:{path}")
    open(path, "w").close()
    return path, env


def test_del_returns_with_the_veth_down_and_it_is_deleted_after(topo, node):
    other = node.add_pod()
    pod = node.add_pod()
    veth = pod.result["interfaces"][0]["name"]
    hold, env = held(topo)
    r = raw_cni(node, "DEL", pod, env)
    # subprocess.run() returned: the runtime's pipes hit EOF while the
    # deletion is still held, so the background process holds none of them.
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    pids = background_pids(pod.cid)
    assert len(pids) == 1, pids
    for fd in ("0", "1", "2"):
        assert os.readlink(f"/proc/{pids[0]}/fd/{fd}") == "/dev/null"
    kept = [os.readlink(f"/proc/{pids[0]}/fd/{fd}") for fd in os.listdir(f"/proc/{pids[0]}/fd")]
    assert all(p in ("/dev/null", node.log) for p in kept), kept
    # Everything but the veth is gone now; the veth is down, and with it
    # the node's route and neighbour entry; the pod has no carrier.
    left = node.leftovers()
    assert left["leases"] == [other.ip] and left["attachments"] == [f"{other.cid}:eth0.json"]
    assert len(left["endpoints"]) == 1 and [r["dst"] for r in left["routes"]] == [other.ip]
    assert pending_veths(node) == [veth]
    assert pod.ip not in node.run("ip", "neigh", "show").stdout
    assert "NO-CARRIER" in pod.run("ip", "link", "show", "eth0").stdout
    assert pod.ping(node.ip, count=1).returncode != 0
    assert other.ping(node.ip, count=1).returncode == 0
    os.unlink(hold)
    wait_for(lambda: not background_pids(pod.cid), "the background process to finish", timeout=GENEROUS)
    assert link(node, veth) is None
    assert [l["ifname"] for l in json.loads(pod.run("ip", "-j", "link").stdout)] == ["lo"]
    node.del_pod(other)
    assert settled_leftovers(node) == NOTHING


def test_add_while_the_delete_is_pending(topo, node):
    pod = node.add_pod()
    veth = pod.result["interfaces"][0]["name"]
    old = link(node, veth)["ifindex"]
    hold, env = held(topo)
    r = raw_cni(node, "DEL", pod, env)
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    assert pending_veths(node) == [veth]
    # The same attachment again (e.g. a network reload): the pending pair
    # still holds eth0 in the pod; ADD must get past it.
    rc, out, err = node.cni("ADD", container_id=pod.cid, netns=f"/run/netns/{pod.ns}")
    assert rc == 0, (out, err)
    new = link(node, veth)
    assert new["ifindex"] != old and "UP" in new["flags"]
    os.unlink(hold)
    wait_for(lambda: not background_pids(pod.cid), "the background process to finish", timeout=GENEROUS)
    # The late deletion hit the old ifindex only: the new pod works.
    assert link(node, veth)["ifindex"] == new["ifindex"]
    ip = out["ips"][0]["address"].split("/")[0]
    assert node.leases() == [ip] and len(node.endpoints()) == 1
    assert pod.ping(node.ip).returncode == 0
    node.del_pod(pod)
    assert settled_leftovers(node) == NOTHING


def test_many_dels_leave_nothing_eventually(topo, node):
    pods = [node.add_pod() for _ in range(10)]
    for p in pods:
        r = raw_cni(node, "DEL", p)
        assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
        assert p.ip not in node.leases()
    assert settled_leftovers(node) == NOTHING
    for p in pods:
        wait_for(lambda p=p: not background_pids(p.cid), "the background processes to finish", timeout=GENEROUS)
