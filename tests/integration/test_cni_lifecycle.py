"""The CNI contract (DESIGN.md section 6) against the real plugin binary."""
import json
import os
import subprocess

import pytest

from skiff_topo import CNI_PATH, SKIFF, fault_env, sh
from test_cni_del import NOTHING, settled_leftovers


def test_del_removes_everything_and_is_idempotent(node):
    a, b = node.add_pod(), node.add_pod()
    assert len(node.skiff_veths()) == 2 and len(node.leases()) == 2 and len(node.endpoints()) == 2
    # Each pod's source slot names its host veth and its address.
    assert node.pod_sources() == sorted((node.host_ifindex(p), p.ip) for p in (a, b))
    node.del_pod(a)
    left = settled_leftovers(node)
    assert len(left["veths"]) == 1 and left["leases"] == [b.ip] and len(left["endpoints"]) == 1
    assert left["pod_sources"] == [(node.host_ifindex(b), b.ip)]
    node.del_pod(a)  # DEL twice
    node.del_pod(b)
    assert settled_leftovers(node) == NOTHING
    # b's pod namespace keeps only loopback.
    assert [l["ifname"] for l in json.loads(b.run("ip", "-j", "link").stdout)] == ["lo"]


def test_del_with_empty_netns_and_unknown_container(node):
    pod = node.add_pod()
    # Runtime lost the netns (pod sandbox gone): DEL with empty CNI_NETNS still cleans up.
    rc, out, err = node.cni("DEL", container_id=pod.cid, netns="", ifname="eth0")
    assert rc == 0, (out, err)
    assert settled_leftovers(node) == NOTHING
    rc, out, err = node.cni("DEL", container_id="never-added", netns="/run/netns/does-not-exist", ifname="eth0")
    assert rc == 0, (out, err)
    rc, out, err = node.cni("DEL", container_id="never-added", netns=None, ifname="eth0")
    assert rc == 0, (out, err)


def test_del_after_netns_deleted(topo, node):
    pod = node.add_pod()
    sh("ip", "netns", "del", pod.ns)
    topo.namespaces.remove(pod.ns)
    rc, out, err = node.cni("DEL", container_id=pod.cid, netns=f"/run/netns/{pod.ns}", ifname="eth0")
    assert rc == 0, (out, err)
    assert settled_leftovers(node) == NOTHING


def test_add_existing_interface_fails_and_leaks_nothing(topo, node):
    pod = node.add_pod()
    before = node.leftovers()
    rc, out, _ = node.cni("ADD", container_id="other-container", netns=f"/run/netns/{pod.ns}", ifname="eth0")
    assert rc != 0 and out["code"] == 4 and "already exists" in out["msg"]
    assert node.leftovers() == before


def test_check_detects_broken_datapath(node):
    pod = node.add_pod()
    conf = node.conf(prevResult=pod.result)
    rc, out, err = node.cni("CHECK", container_id=pod.cid, netns=f"/run/netns/{pod.ns}", conf=conf)
    assert rc == 0, (out, err)
    # Remove the endpoint entry behind the plugin's back: CHECK must notice.
    key = [str(int(x)) for x in pod.ip.split(".")]
    sh("bpftool", "map", "delete", "pinned", f"{node.pin}/skiff_endpoints", "key", *key)
    rc, out, _ = node.cni("CHECK", container_id=pod.cid, netns=f"/run/netns/{pod.ns}", conf=conf)
    assert rc != 0 and "endpoint" in out["msg"]
    # And a missing default route in the pod.
    pod2 = node.add_pod()
    pod2.run("ip", "route", "del", "default")
    rc, out, _ = node.cni("CHECK", container_id=pod2.cid, netns=f"/run/netns/{pod2.ns}",
                          conf=node.conf(prevResult=pod2.result))
    assert rc != 0 and "default route" in out["details"]


def test_check_requires_prev_result(node):
    pod = node.add_pod()
    rc, out, _ = node.cni("CHECK", container_id=pod.cid, netns=f"/run/netns/{pod.ns}")
    assert rc != 0 and out["code"] == 7


def test_gc_removes_all_but_valid_attachments(node):
    node.cni_version = "1.1.0"
    pods = [node.add_pod() for _ in range(3)]
    keep = pods[0]
    conf = node.conf(**{"cni.dev/valid-attachments": [{"containerID": keep.cid, "ifname": "eth0"}]})
    rc, out, err = node.cni("GC", container_id=None, netns=None, ifname=None, conf=conf)
    assert rc == 0, (out, err)
    left = node.leftovers()
    assert left["leases"] == [keep.ip]
    assert len(left["veths"]) == 1 and len(left["endpoints"]) == 1 and len(left["attachments"]) == 1
    assert keep.ping(node.ip).returncode == 0  # the kept pod still works


def test_gc_cleans_up_after_killed_add(topo, node):
    node.cni_version = "1.1.0"
    pod_ns = topo.pod_ns()
    rc, _, _ = node.cni("ADD", container_id="killed", netns=f"/run/netns/{pod_ns}",
                        env=fault_env("kill:after-veth"))
    assert rc == -9
    assert node.skiff_veths() and node.leases()
    rc, out, err = node.cni("GC", container_id=None, netns=None, ifname=None,
                            conf=node.conf(**{"cni.dev/valid-attachments": []}))
    assert rc == 0, (out, err)
    assert node.leftovers() == NOTHING


def test_status(node):
    node.cni_version = "1.1.0"
    rc, out, err = node.cni("STATUS", container_id=None, netns=None, ifname=None)
    assert rc == 0 and out is None, (out, err)
    # A /30 holds one address for pods: once used, STATUS says not available.
    conf = node.conf(podCIDR="10.244.1.0/30")
    pod_ns = node.topo.pod_ns()
    rc, out, err = node.cni("ADD", container_id="only", netns=f"/run/netns/{pod_ns}", conf=conf)
    assert rc == 0, (out, err)
    rc, out, _ = node.cni("STATUS", container_id=None, netns=None, ifname=None, conf=conf)
    assert rc != 0 and out["code"] == 50 and "exhausted" in out["msg"]


def test_status_refuses_a_pin_path_off_bpffs(node, tmp_path):
    node.cni_version = "1.1.0"
    # A pin path on a regular file system cannot hold BPF objects: the
    # config is wrong (7), not the node unready (50).
    blocker = tmp_path / "file"
    blocker.write_text("x")
    conf = node.conf(pinPath=str(blocker / "pins"))
    rc, out, _ = node.cni("STATUS", container_id=None, netns=None, ifname=None, conf=conf)
    assert rc != 0 and out["code"] == 7 and "pinPath" in out["msg"], out


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_result_in_requested_version(node, version):
    node.cni_version = version
    pod = node.add_pod()
    r = pod.result
    assert r["cniVersion"] == version
    ip = r["ips"][0]
    if version.startswith("0."):
        assert ip["version"] == "4"
    else:
        assert "version" not in ip
    ifaces = r["interfaces"]
    assert ifaces[ip["interface"]]["name"] == "eth0"
    assert ifaces[ip["interface"]]["sandbox"] == f"/run/netns/{pod.ns}"
    assert ifaces[ip["interface"]]["mac"]
    node.del_pod(pod)


def test_version_command(node):
    rc, out, _ = node.cni("VERSION", container_id=None, netns=None, ifname=None,
                          raw_stdin='{"cniVersion":"1.0.0"}')
    assert rc == 0
    assert out["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def test_chaining_merges_prev_result(node):
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "other0", "mac": "02:00:00:00:00:01"}],
            "ips": [], "routes": [], "dns": {"nameservers": ["10.96.0.10"]}}
    pod_ns = node.topo.pod_ns()
    rc, out, err = node.cni("ADD", container_id="chained", netns=f"/run/netns/{pod_ns}",
                            conf=node.conf(prevResult=prev))
    assert rc == 0, (out, err)
    assert out["interfaces"][0]["name"] == "other0"
    assert out["interfaces"][out["ips"][0]["interface"]]["name"] == "eth0"
    assert out["ips"][0]["interface"] == 2
    assert out["dns"] == {"nameservers": ["10.96.0.10"]}


def test_cni_args_k8s_keys(node):
    pod_ns = node.topo.pod_ns()
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;Foo=bar"
    rc, out, err = node.cni("ADD", container_id="k8s", netns=f"/run/netns/{pod_ns}", env={"CNI_ARGS": args})
    assert rc == 0, (out, err)
    state = json.load(open(os.path.join(node.state, "networks", node.network, "attachments", "k8s:eth0.json")))
    assert state["podNamespace"] == "default" and state["podName"] == "web-0"


def test_delegated_ipam_host_local(node, tmp_path):
    ipam = {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.100",
                                              "rangeEnd": "10.244.1.110"}]], "dataDir": str(tmp_path / "hl")}
    conf = node.conf(ipam=ipam)
    pod_ns = node.topo.pod_ns()
    rc, out, err = node.cni("ADD", container_id="hl", netns=f"/run/netns/{pod_ns}", conf=conf)
    assert rc == 0, (out, err)
    ip = out["ips"][0]["address"].split("/")[0]
    assert 100 <= int(ip.split(".")[3]) <= 110
    hl_dir = tmp_path / "hl" / node.network
    assert ip in os.listdir(hl_dir)
    assert subprocess.run(["nsenter", f"--net=/run/netns/{pod_ns}", "ping", "-c1", "-W2", node.ip]).returncode == 0
    rc, out, err = node.cni("DEL", container_id="hl", netns=f"/run/netns/{pod_ns}", conf=conf)
    assert rc == 0, (out, err)
    assert ip not in os.listdir(hl_dir) and node.endpoints() == []
    assert settled_leftovers(node)["veths"] == []
    # A failure after delegated IPAM gives the lease back to host-local.
    rc, out, _ = node.cni("ADD", container_id="hl2", netns=f"/run/netns/{pod_ns}", conf=conf,
                          env=fault_env("after-endpoint"))
    assert rc != 0
    assert [f for f in os.listdir(hl_dir) if f.startswith("10.")] == []


def test_mounts_bpffs_at_its_home_where_none_is_mounted(node, tmp_path):
    """With nothing mounted at /sys/fs/bpf (in a private mount namespace, so
    the machine's bpffs is untouched), ADD mounts bpffs there and works."""
    pod_ns = node.topo.pod_ns()
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps(node.conf()))
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_CONTAINERID": "mnt",
           "CNI_NETNS": f"/run/netns/{pod_ns}", "CNI_IFNAME": "eth0", "CNI_PATH": CNI_PATH}
    script = f"""
set -e
umount /sys/fs/bpf
test "$(stat -f -c %T /sys/fs/bpf)" != bpf_fs
CNI_COMMAND=ADD nsenter --net=/run/netns/{node.ns} -- {SKIFF} < {conf} > {tmp_path}/add.json
stat -f -c %T /sys/fs/bpf > {tmp_path}/fstype
ls {node.pin} > {tmp_path}/pins
CNI_COMMAND=DEL nsenter --net=/run/netns/{node.ns} -- {SKIFF} < {conf}
"""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr, (tmp_path / "add.json").read_text()
                               if (tmp_path / "add.json").exists() else "")
    assert json.loads((tmp_path / "add.json").read_text())["ips"]
    assert (tmp_path / "fstype").read_text().strip() == "bpf_fs"
    assert "skiff_endpoints" in (tmp_path / "pins").read_text().split()
    # The machine's own bpffs never saw any of it.
    assert not os.path.exists(node.pin) or os.listdir(node.pin) == []