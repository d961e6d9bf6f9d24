"""skiffctl reads the live maps and decodes them in the datapath's terms."""
import json
import subprocess

from skiff_topo import SKIFFCTL


def ctl(node, *args):
    r = subprocess.run(["nsenter", f"--net=/run/netns/{node.ns}", "--", SKIFFCTL, "--pin-path", node.pin, *args],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def test_endpoint_list_matches_what_add_programmed(node):
    pods = [node.add_pod() for _ in range(2)]
    rc, out, err = ctl(node, "-j", "endpoint", "list")
    assert rc == 0, err
    eps = {e["ip"]: e for e in json.loads(out)}
    assert set(eps) == {p.ip for p in pods}
    for p in pods:
        host_if, pod_if = p.result["interfaces"]
        e = eps[p.ip]
        assert e["ifname"] == host_if["name"] and e["host_mac"] == host_if["mac"]
        assert e["pod_mac"] == pod_if["mac"] and e["flags"] == ["local"]
    # Text output and prefixes.
    rc, text, _ = ctl(node, "e", "l")
    assert rc == 0 and all(p.ip in text for p in pods) and text.startswith("IP")


def test_stats_count_forwarded_and_dropped(node):
    a, b = node.add_pod(), node.add_pod()
    assert a.ping(b.ip, count=3).returncode == 0
    a.run("ip", "addr", "add", "10.244.1.251/32", "dev", "eth0")
    a.run("ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "10.244.1.251", b.ip, check=False)
    rc, out, err = ctl(node, "-p", "stats")
    assert rc == 0, err
    rows = {(r["reason"], r["direction"]): r for r in json.loads(out)}
    assert rows[("fwd-local-pod", "egress")]["packets"] >= 6
    assert rows[("drop-invalid-source", "egress")]["packets"] >= 2
    assert rows[("drop-invalid-source", "egress")]["drop"] is True
    assert rows[("fwd-local-pod", "egress")]["bytes"] >= 6 * 98


def test_errors(node, tmp_path):
    rc, out, _ = ctl(node, "-j", "endpoint", "list")  # nothing loaded yet
    assert rc != 0 and "no skiff maps" in json.loads(out)["error"]
    rc, out, _ = ctl(node, "-j", "frobnicate")
    assert rc != 0 and "unknown object" in json.loads(out)["error"]
    rc, _, err = ctl(node, "endpoint", "list", "extra")
    assert rc != 0 and "unexpected argument" in err
