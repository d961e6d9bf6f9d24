"""Pods attached by the real plugin talk through skiff's TC programs."""
import json
import os
import time

FWD_LOCAL_POD = (1, 0)
FWD_STACK = (2, 0)
DROP_INVALID_SOURCE = (128, 0)


def wait_http(pod, url, want, attempts=50):
    """Fetch url from pod until the server (started in the background) answers."""
    last = None
    for _ in range(attempts):
        r = pod.run("timeout", "5", "busybox", "wget", "-q", "-O", "-", url, check=False)
        if r.returncode == 0:
            return r.stdout
        last = r.stderr
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered from {pod.ns}: {last}")


def serve_http(topo, pod, token):
    www = os.path.join(topo.tmp, f"www-{pod.ns}")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write(token)
    topo.spawn(pod.ns, "busybox", "httpd", "-f", "-p", "8080", "-h", www)


def test_three_pods_icmp_and_tcp_through_bpf(topo, node):
    pods = [node.add_pod() for _ in range(3)]
    ips = {p.ip for p in pods}
    assert len(ips) == 3

    # Each pod got a /32, a default route via the link-local gateway, and the
    # result says so.
    for p in pods:
        addrs = json.loads(p.run("ip", "-j", "addr", "show", "eth0").stdout)[0]["addr_info"]
        assert {"local": p.ip, "prefixlen": 32} in [{"local": a["local"], "prefixlen": a["prefixlen"]}
                                                   for a in addrs if a["family"] == "inet"]
        routes = json.loads(p.run("ip", "-j", "route", "show", "default").stdout)
        assert routes and routes[0]["gateway"] == "169.254.1.1"
        assert p.result["ips"][0]["gateway"] == "169.254.1.1"

    before = node.counters().get(FWD_LOCAL_POD, 0)
    for a in pods:
        for b in pods:
            if a is not b:
                r = a.ping(b.ip, count=2)
                assert r.returncode == 0, f"{a.ip} -> {b.ip}: {r.stdout}"
    # 6 ordered pairs x 2 echo requests, each answered: 24 redirects at least.
    assert node.counters().get(FWD_LOCAL_POD, 0) - before >= 24

    serve_http(topo, pods[0], "skiff-token-42")
    before = node.counters().get(FWD_LOCAL_POD, 0)
    assert wait_http(pods[1], f"http://{pods[0].ip}:8080/", "skiff-token-42") == "skiff-token-42"
    assert wait_http(pods[2], f"http://{pods[0].ip}:8080/", "skiff-token-42") == "skiff-token-42"
    assert node.counters().get(FWD_LOCAL_POD, 0) - before >= 6  # SYN, SYN-ACK, ACK... both ways

    # No bridge anywhere: the redirect is the only path between pods.
    assert json.loads(node.run("ip", "-j", "link", "show", "type", "bridge").stdout) == []


def test_host_to_pod_and_pod_to_host(node):
    pod = node.add_pod()
    r = node.run("ping", "-c", "2", "-i", "0.2", "-W", "2", pod.ip, check=False)
    assert r.returncode == 0, r.stdout
    before = node.counters().get(FWD_STACK, 0)
    r = pod.ping(node.ip)
    assert r.returncode == 0, r.stdout
    assert node.counters().get(FWD_STACK, 0) > before  # handed to the node's stack


def test_spoofed_source_is_dropped_and_counted(node):
    a, b = node.add_pod(), node.add_pod()
    # Give pod a second address and send from it: the host veth program must
    # drop it before it reaches b.
    a.run("ip", "addr", "add", "10.244.1.250/32", "dev", "eth0")
    before = node.counters().get(DROP_INVALID_SOURCE, 0)
    r = a.run("ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", "10.244.1.250", b.ip, check=False)
    assert r.returncode != 0
    assert node.counters().get(DROP_INVALID_SOURCE, 0) - before >= 3
    # Legitimate traffic from the same pod still flows.
    assert a.ping(b.ip).returncode == 0


def test_programs_attached_on_host_veths(node):
    pod = node.add_pod()
    veth = node.skiff_veths()[0]
    out = node.run("tc", "filter", "show", "dev", veth, "ingress").stdout
    assert "skiff_from_pod" in out and "direct-action" in out
    pinned = os.listdir(node.pin)
    assert "skiff_endpoints" in pinned and "skiff_metrics" in pinned
    assert any(p.startswith("prog_from_pod_") for p in pinned)
    eps = node.endpoints()
    assert len(eps) == 1
    # The host side uses accept_ra=0 (CVE-2020-10749).
    assert node.run("cat", f"/proc/sys/net/ipv6/conf/{veth}/accept_ra").stdout.strip() == "0"
    del pod
