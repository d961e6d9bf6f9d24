"""The benchmark's veth floor (bench/floor/veth_floor.c, attached by
build/bin/skiff-floor): it must really carry pod traffic between two nodes,
or the bench's floor / limit and skiff / floor ratios would measure the
kernel's routing instead. Bad input leaves no filter behind."""
import json
import os
import subprocess
import sys

import pytest

from skiff_topo import BIN_DIR, in_ns

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import topo as bench_topo  # noqa: E402

FLOOR = os.path.join(BIN_DIR, "skiff-floor")


def ingress_filters(ns, dev):
    """[(program name, program id)] of the tc ingress filters on dev."""
    out = in_ns(ns, "tc", "-j", "filter", "show", "dev", dev, "ingress", check=False).stdout
    return [(f["options"]["bpf_name"].split(":")[0], f["options"]["prog"]["id"])
            for f in json.loads(out or "[]") if "options" in f]


def filters(ns, dev):
    return [name for name, _ in ingress_filters(ns, dev)]


def node_of(topo, ip):
    return next(ns for ns in topo.namespaces if ns.startswith("skn") and
                ip in in_ns(ns, "ip", "-br", "addr").stdout)


def test_floor_carries_pod_traffic_across_nodes(topo):
    u = topo.underlay()
    a, b = bench_topo.floor_nodes(topo, u)
    assert bench_topo.floor_forwards(a, b)
    assert bench_topo.floor_forwards(b, a)
    for ip in ("192.168.4.11", "192.168.4.12"):
        ns = node_of(topo, ip)
        assert filters(ns, "fv0") == ["floor_out"]
        assert filters(ns, "up0") == ["floor_in"]
    # TCP through it, both ways.
    topo.spawn(b.ns, "python3", "-c", "import socket; s=socket.socket(); s.bind(('0.0.0.0', 7100)); s.listen();"
                                      "c,_=s.accept(); c.sendall(c.recv(100)[::-1]); c.close()")
    bench_topo.wait_for(lambda: ":7100 " in in_ns(b.ns, "ss", "-ltnH").stdout, "listener", timeout=10)
    r = a.run("python3", "-c", f"import socket; c=socket.create_connection(('{b.ip}', 7100), 3);"
                               "c.sendall(b'floor'); print(c.recv(100).decode())")
    assert r.stdout.strip() == "roolf"


# Prints the MACs (destination, source) and the TTL of the first echo
# request eth0 receives.
CAPTURE = r"""
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0)); s.settimeout(10)
print("ready", flush=True)
while True:
    f, a = s.recvfrom(2048)
    if a[2] != socket.PACKET_OUTGOING and f[23] == 1 and f[34] == 8:
        print(f[0:6].hex(":"), f[6:12].hex(":"), f[22], flush=True)
        break
"""


def mac(ns, dev):
    return json.loads(in_ns(ns, "ip", "-j", "link", "show", dev).stdout)[0]["address"]


def test_floor_delivers_with_the_pods_macs(topo):
    """floor_in writes its pod's MAC and the host veth's (knobs set before
    load) into the frame it hands to the pod; a -> b is checked here, the
    echo reply's TTL checks b -> a."""
    u = topo.underlay()
    a, b = bench_topo.floor_nodes(topo, u)
    cap = subprocess.Popen(["nsenter", f"--net=/run/netns/{b.ns}", "--", sys.executable, "-c", CAPTURE],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert cap.stdout.readline().strip() == "ready"
        assert bench_topo.floor_forwards(a, b)
        dst, src, ttl = cap.stdout.readline().split()
    finally:
        cap.kill()
        cap.wait()
    assert ttl == "64"  # came through floor_in, not the node's routing
    assert dst == mac(b.ns, "eth0")
    assert src == mac(node_of(topo, "192.168.4.12"), "fv0")


def test_kernel_routing_is_told_apart(topo):
    """The TTL check can fail: without the floor the nodes' kernels route
    the same pods, and the echo reply arrives with TTL 62."""
    u = topo.underlay()
    a, b = bench_topo.floor_nodes(topo, u)
    for ip in ("192.168.4.11", "192.168.4.12"):
        ns = node_of(topo, ip)
        for dev in ("fv0", "up0"):
            in_ns(ns, "tc", "qdisc", "del", "dev", dev, "clsact")
    r = a.run("ping", "-c", "1", "-W", "2", b.ip, check=False)
    assert r.returncode == 0 and " ttl=62 " in r.stdout
    assert not bench_topo.floor_forwards(a, b)


@pytest.mark.parametrize("args, message", [
    ([], "usage"),
    (["--pod-dev", "fv0", "--pod-ip", "10.24.1.300", "--pod-mac", "02:00:00:00:00:01", "--uplink", "up0"],
     "10.24.1.300"),
    (["--pod-dev", "fv0", "--pod-ip", "10.24.1.2", "--pod-mac", "02:00:00:00:00:01", "--uplink", "nope0"],
     "nope0"),
    (["--pod-dev", "nope1", "--pod-ip", "10.24.1.2", "--pod-mac", "02:00:00:00:00:01", "--uplink", "up0"],
     "nope1"),
    (["--pod-dev", "fv0", "--bogus", "1"], "unknown option --bogus"),
    (["--pod-dev", "fv0", "--pod-ip", "10.24.1.2", "--pod-mac", "02:00:00:00:00:01", "--uplink", "fv0"],
     "same device"),
])
def test_bad_input_is_refused_and_leaves_nothing(node, args, message):
    node.run("ip", "link", "add", "fv0", "type", "veth", "peer", "name", "fv0p")
    r = node.run(FLOOR, *args, check=False)
    assert r.returncode == 1
    assert r.stdout == ""
    assert message in r.stderr and r.stderr.startswith("skiff-floor: ")
    for dev in ("fv0", "up0"):
        assert filters(node.ns, dev) == []


def test_an_attached_filter_is_refused_not_replaced(node):
    """A second attach (or one onto skiff's devices) must not replace, and
    then on rollback remove, a filter that is already there."""
    node.run("ip", "link", "add", "fv0", "type", "veth", "peer", "name", "fv0p")
    args = ["--pod-dev", "fv0", "--pod-ip", "10.24.1.2", "--pod-mac", "02:00:00:00:00:01", "--uplink", "up0"]
    node.run(FLOOR, *args)

    def ids():
        return {dev: [i for _, i in ingress_filters(node.ns, dev)] for dev in ("fv0", "up0")}

    before = ids()
    assert all(len(v) == 1 for v in before.values())
    r = node.run(FLOOR, *args, check=False)
    assert r.returncode == 1
    assert "fv0 already has a tc ingress filter" in r.stderr
    assert ids() == before
    node.run("tc", "filter", "del", "dev", "fv0", "ingress")
    r = node.run(FLOOR, *args, check=False)
    assert r.returncode == 1
    assert "up0 already has a tc ingress filter" in r.stderr
    assert filters(node.ns, "fv0") == []  # nothing attached before the refusal
    assert ids()["up0"] == before["up0"]
