"""Bad input gets the right CNI error and leaves nothing behind; failures and
crashes part-way through ADD are rolled back; concurrent ADD/DEL are safe."""
import concurrent.futures
import json
import os

import pytest

from skiff_topo import fault_env, in_ns
from test_cni_del import NOTHING, settled_leftovers


def assert_clean(node, pod_ns=None):
    assert node.leftovers() == NOTHING
    # A failed first ADD must not even create the node's pinned datapath.
    assert not os.path.exists(node.pin) or os.listdir(node.pin) == []
    if pod_ns:
        assert pod_links(pod_ns) == ["lo"]


def pod_links(ns):
    return [l["ifname"] for l in json.loads(in_ns(ns, "ip", "-j", "link").stdout)]


def add(node, pod_ns, **kw):
    kw.setdefault("container_id", "bad")
    kw.setdefault("netns", f"/run/netns/{pod_ns}")
    return node.cni("ADD", **kw)


@pytest.mark.parametrize("raw,code", [
    ("{not json", 6),
    ("", 6),
    ("[1,2,3]", 6),
    ('{"cniVersion":"1.0.0","name":"x","podCIDR":"10.244.1.0/24",' + '"a":' * 40 + '1' + '}' * 41, 6),
    ('{"cniVersion":"9.9.9","name":"skiffnet","type":"skiff","podCIDR":"10.244.1.0/24"}', 1),
    ('{"cniVersion":"0.2.0","name":"skiffnet","type":"skiff","podCIDR":"10.244.1.0/24"}', 1),
    ('{"name":"skiffnet","type":"skiff","podCIDR":"10.244.1.0/24"}', 7),
])
def test_undecodable_or_unsupported_config(topo, node, raw, code):
    pod_ns = topo.pod_ns()
    rc, out, _ = add(node, pod_ns, raw_stdin=raw)
    assert rc != 0 and out["code"] == code, out
    assert out["msg"]
    assert_clean(node, pod_ns)


def test_huge_config_rejected(topo, node):
    pod_ns = topo.pod_ns()
    conf = node.conf(padding="x" * (2 << 20))
    rc, out, _ = add(node, pod_ns, conf=conf)
    assert rc != 0 and out["code"] == 6 and "1 MiB" in out["msg"]
    assert_clean(node, pod_ns)


@pytest.mark.parametrize("overrides,code,needle", [
    ({"podCIDR": "10.244.1.0/33"}, 7, "prefix length"),
    ({"podCIDR": "10.244.1.5/24"}, 7, "host bits"),
    ({"podCIDR": "banana"}, 7, "CIDR"),
    ({"podCIDR": None}, 7, "podCIDR"),
    ({"podCIDR": "fd00::/64"}, 2, "IPv6"),
    ({"podCIDR": "10.9.0.0/24"}, 7, "clusterCIDR"),
    ({"mtu": 20}, 7, "mtu"),
    ({"mtu": "1500"}, 7, "mtu"),
    ({"name": "../../etc"}, 7, "network name"),
    ({"stateDir": "relative/dir"}, 7, "absolute"),
    ({"stateDir": "/var/lib/../../etc"}, 7, ".."),
    ({"ipam": {"type": "../../bin/sh"}}, 7, "ipam"),
    ({"ipam": {"type": "no-such-ipam-plugin"}}, 7, "not found"),
])
def test_invalid_config(topo, node, overrides, code, needle):
    pod_ns = topo.pod_ns()
    rc, out, _ = add(node, pod_ns, conf=node.conf(**overrides))
    assert rc != 0 and out["code"] == code, out
    assert needle in out["msg"], out
    assert_clean(node, pod_ns)


@pytest.mark.parametrize("env,code,needle", [
    ({"CNI_COMMAND": ""}, 4, "CNI_COMMAND"),
    ({"CNI_COMMAND": "FROB"}, 4, "CNI_COMMAND"),
    ({"CNI_CONTAINERID": ""}, 4, "CNI_CONTAINERID"),
    ({"CNI_CONTAINERID": "bad/id"}, 4, "CNI_CONTAINERID"),
    ({"CNI_IFNAME": ""}, 4, "CNI_IFNAME"),
    ({"CNI_IFNAME": "a" * 16}, 4, "15 bytes"),
    ({"CNI_IFNAME": "."}, 4, "not allowed"),
    ({"CNI_IFNAME": ".."}, 4, "not allowed"),
    ({"CNI_IFNAME": "eth/0"}, 4, "'/'"),
    ({"CNI_IFNAME": "eth:0"}, 4, "'/'"),
    ({"CNI_IFNAME": "eth 0"}, 4, "'/'"),
    ({"CNI_NETNS": ""}, 4, "CNI_NETNS"),
    ({"CNI_NETNS": "relative/ns"}, 4, "absolute"),
    ({"CNI_NETNS": "/run/netns/skiff-no-such-ns"}, 3, "does not exist"),
    ({"CNI_NETNS": "/etc/hostname"}, 4, "namespace"),
    ({"CNI_NETNS": "/proc/self/ns/net"}, 4, "own network namespace"),
    ({"CNI_ARGS": "K8S_POD_NAME=x;Bogus=1"}, 2, "Bogus"),
    ({"CNI_ARGS": "novalue"}, 4, "CNI_ARGS"),
])
def test_invalid_environment(topo, node, env, code, needle):
    pod_ns = topo.pod_ns()
    rc, out, _ = add(node, pod_ns, env=env)
    assert rc != 0 and out["code"] == code, out
    assert needle in out["msg"], out
    assert_clean(node, pod_ns)


def test_exhausted_pool(topo, node):
    conf = node.conf(podCIDR="10.244.1.0/29")  # .2 - .6: five pod addresses
    pods = []
    for i in range(5):
        ns = topo.pod_ns()
        rc, out, err = add(node, ns, container_id=f"p{i}", conf=conf)
        assert rc == 0, (out, err)
        pods.append(ns)
    before = node.leftovers()
    ns = topo.pod_ns()
    rc, out, _ = add(node, ns, container_id="one-too-many", conf=conf)
    assert rc != 0 and out["code"] == 11 and "exhausted" in out["msg"], out
    assert node.leftovers() == before
    # Deleting one pod frees room again.
    rc, _, _ = node.cni("DEL", container_id="p0", netns=f"/run/netns/{pods[0]}", conf=conf)
    assert rc == 0
    rc, out, err = add(node, ns, container_id="one-too-many", conf=conf)
    assert rc == 0, (out, err)


@pytest.mark.parametrize("point", ["after-ipam", "after-veth", "after-attach", "after-endpoint"])
def test_failure_after_ipam_rolls_back(topo, node, point):
    survivor = node.add_pod()
    before = node.leftovers()
    pod_ns = topo.pod_ns()
    rc, out, _ = add(node, pod_ns, env=fault_env(point))
    assert rc != 0 and point in out["msg"]
    assert node.leftovers() == before
    assert pod_links(pod_ns) == ["lo"]
    # The pod that was there keeps working, and the retried ADD succeeds.
    assert survivor.ping(node.ip).returncode == 0
    rc, out, err = add(node, pod_ns)
    assert rc == 0, (out, err)


@pytest.mark.parametrize("point", ["after-ipam", "after-veth", "after-attach", "after-endpoint"])
def test_killed_add_then_del_leaves_nothing(topo, node, point):
    pod_ns = topo.pod_ns()
    rc, _, _ = add(node, pod_ns, env=fault_env(f"kill:{point}"))
    assert rc == -9
    rc, out, err = node.cni("DEL", container_id="bad", netns=f"/run/netns/{pod_ns}")
    assert rc == 0, (out, err)
    assert settled_leftovers(node) == NOTHING


def test_twenty_concurrent_adds_and_dels(topo, node):
    namespaces = [topo.pod_ns() for _ in range(20)]

    def do(cmd, i):
        return node.cni(cmd, container_id=f"conc{i}", netns=f"/run/netns/{namespaces[i]}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        results = list(ex.map(lambda i: do("ADD", i), range(20)))
    for rc, out, err in results:
        assert rc == 0, (out, err)
    ips = {out["ips"][0]["address"] for _, out, _ in results}
    assert len(ips) == 20
    assert len(node.skiff_veths()) == 20 and len(node.leases()) == 20 and len(node.endpoints()) == 20
    # Every pod reaches the first one through the datapath.
    first = results[0][1]["ips"][0]["address"].split("/")[0]
    for i in range(1, 20, 4):
        r = in_ns(namespaces[i], "ping", "-c1", "-W2", first, check=False)
        assert r.returncode == 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        results = list(ex.map(lambda i: do("DEL", i), range(20)))
    for rc, out, err in results:
        assert rc == 0, (out, err)
    assert settled_leftovers(node) == NOTHING
