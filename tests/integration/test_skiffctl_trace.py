"""skiffctl trace (synthetic packets through the live programs, no state
changed) compared with what real packets then do; skiffctl monitor
catching a provoked drop."""
import json
import subprocess
import time

import pytest

from cluster_topo import Cluster, node_object, wait_for
from skiff_topo import SKIFFCTL, in_ns
from test_masquerade import OUTSIDE_SERVER, attach_host
from test_services import CLIENT, SERVER, VIP, WEB_PORTS, WEB_SLICE_PORTS, service, slice_


def ctl(node, *args, check=True):
    r = subprocess.run(["nsenter", f"--net=/run/netns/{node.ns}", "--", SKIFFCTL, "--pin-path", node.pin, "-j", *args],
                       capture_output=True, text=True, timeout=30)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    if check:
        assert r.returncode == 0, (r.stdout, r.stderr)
    return r.returncode, out


def dump(node, name):
    r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", f"{node.pin}/{name}"], capture_output=True, text=True)
    return json.loads(r.stdout) if r.stdout.strip() else []


@pytest.fixture
def env(topo):
    c = Cluster(topo, n=2)
    c.start()
    n1, n2 = c.nodes
    a, b = c.add_pod(n1), c.add_pod(n1)
    remote = c.add_pod(n2)
    topo.spawn(remote.ns, "/usr/bin/python3", "-c", SERVER, remote.ip)
    wait_for(lambda: "LISTEN" in in_ns(remote.ns, "ss", "-ltn", "sport = :7000", check=False).stdout, "server")
    base = [node_object(nd.name, nd.ip, nd.pod_cidr) for nd in c.nodes]
    c.write_source(base + [service("web", VIP, WEB_PORTS),
                           slice_("web", "web-1", [(remote.ip, True, False)], WEB_SLICE_PORTS),
                           service("empty", "10.96.0.20", [{"name": "http", "port": 80, "protocol": "TCP"}])])
    wait_for(lambda: 'skiff_map_entries{map="frontends"} 3' in c.http(n1, "/metrics")[1], "services programmed")
    return c, n1, a, b, remote


def test_trace_local_pod(env):
    c, n1, a, b, _ = env
    _, t = ctl(n1, "trace", "--from", f"{a.ip}:40000", "--to", f"{b.ip}:80")
    assert t["verdict"] == "redirect" and t["reason"] == "fwd-local-pod", t
    assert t["redirect"]["into"] == "peer namespace"
    b_veth = [e for e in dump(n1, "skiff_endpoints")
              if ".".join(str(x) for x in _ip_bytes(e["formatted"]["key"]["ip"])) == b.ip][0]
    assert t["redirect"]["ifindex"] == b_veth["formatted"]["value"]["ifindex"]
    assert t["translations"] == []
    before = n1.counters().get((1, 0), 0)
    assert a.ping(b.ip).returncode == 0  # and real packets do just that
    assert n1.counters().get((1, 0), 0) > before


def _ip_bytes(v):
    return [(v >> (8 * i)) & 0xff for i in range(4)]


def test_trace_service_changes_no_state_and_matches_reality(env):
    c, n1, a, _, remote = env
    ct_before = dump(n1, "skiff_ct")
    counters_before = n1.counters()
    _, t = ctl(n1, "trace", "--from", f"{a.ip}:41000", "--to", f"{VIP}:80")
    assert t["verdict"] == "redirect" and t["reason"] == "fwd-remote-node", t
    assert t["backend"]["address"] == f"{remote.ip}:7000"
    assert {"field": "destination", "from": VIP, "to": remote.ip} in t["translations"]
    assert t["new_connection"] is True
    assert t["redirect"]["device"] == "up0"
    # Nothing left behind: no conntrack entry, and none of the counters this
    # packet would have moved (svc-new, fwd-remote-node). Others, like
    # fwd-non-ip, move with background IPv6 neighbour discovery.
    assert dump(n1, "skiff_ct") == ct_before
    moved = {k for k in (7, 5) if n1.counters().get((k, 0), 0) != counters_before.get((k, 0), 0)}
    assert moved == set(), moved
    # Real packets: the connection goes to that backend.
    r = a.run("/usr/bin/python3", "-c", CLIENT, VIP, "80", "tcp", "1", check=False, timeout=30)
    assert r.stdout.split()[0] == remote.ip


def test_trace_spoofed_source_and_monitor_catches_the_real_drop(env):
    c, n1, a, b, _ = env
    veth = [l["ifname"] for l in n1.links() if l["ifname"].startswith("skf")]
    # Which veth is a's: the one the endpoint map names for a.
    a_if = [e["formatted"]["value"]["ifindex"] for e in dump(n1, "skiff_endpoints")
            if ".".join(str(x) for x in _ip_bytes(e["formatted"]["key"]["ip"])) == a.ip][0]
    a_veth = [l["ifname"] for l in n1.links() if l["ifindex"] == a_if][0]
    assert a_veth in veth
    _, t = ctl(n1, "trace", "--from", "10.244.1.250:40000", "--to", f"{b.ip}:80", "--dev", a_veth)
    assert t["verdict"] == "drop" and t["reason"] == "drop-invalid-source" and t["drop"] is True
    # The real thing, watched by monitor.
    mon = subprocess.Popen(["nsenter", f"--net=/run/netns/{n1.ns}", "--", SKIFFCTL, "--pin-path", n1.pin, "-j",
                            "monitor", "--type", "drop", "--endpoint", "10.244.1.250", "--count", "1"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # let it attach to the ring buffer (events before that are not its business)
    a.run("ip", "addr", "add", "10.244.1.250/32", "dev", "eth0")
    deadline = time.monotonic() + 20
    while mon.poll() is None and time.monotonic() < deadline:
        a.run("ping", "-c", "1", "-W", "1", "-I", "10.244.1.250", b.ip, check=False)
    out, _ = mon.communicate(timeout=10)
    ev = json.loads(out.splitlines()[0])
    assert ev["type"] == "drop" and ev["reason"] == "drop-invalid-source"
    assert ev["src"] == "10.244.1.250" and ev["dst"] == b.ip and ev["device"] == a_veth


def test_trace_masquerade_and_reject(env):
    c, n1, a, _, _ = env
    outside = attach_host(c, "192.168.1.100")
    c.topo.spawn(outside, "/usr/bin/python3", "-c", OUTSIDE_SERVER)
    nat_before = dump(n1, "skiff_snat")
    _, t = ctl(n1, "trace", "--from", f"{a.ip}:40001", "--to", "192.168.1.100:7000")
    assert {"field": "source", "from": a.ip, "to": n1.ip} in t["translations"], t
    assert t["verdict"] == "redirect" and t["redirect"]["device"] == "up0"
    assert dump(n1, "skiff_snat") == nat_before
    wait_for(lambda: "LISTEN" in in_ns(outside, "ss", "-ltn", "sport = :7000", check=False).stdout, "server")
    seen = a.run("/usr/bin/python3", "-c", "import socket; s=socket.socket(); s.bind(('0.0.0.0', 40001));"
                 "s.connect(('192.168.1.100', 7000)); print(s.recv(64).decode())", check=False).stdout
    assert seen.startswith(n1.ip + ":")
    # A service without endpoints: the trace shows the reject going back.
    _, t = ctl(n1, "trace", "--from", f"{a.ip}:40002", "--to", "10.96.0.20:80")
    assert t["reason"] == "drop-no-backend" and t["verdict"] == "redirect"
    assert t["packet_out"]["src"] == "10.96.0.20" and t["packet_out"]["dst"] == a.ip  # the RST


def test_trace_errors(env):
    c, n1, *_ = env
    rc, out = ctl(n1, "trace", "--from", "10.9.9.9:1", "--to", "10.244.1.2:80", check=False)
    assert rc != 0 and "not a pod on this node" in out["error"]
    rc, out = ctl(n1, "trace", "--to", "10.244.1.2:80", check=False)
    assert rc != 0 and "usage" in out["error"]
    rc, out = ctl(n1, "trace", "--from", "10.244.1.2", "--to", "10.244.1.3:80", "--bogus", "1", check=False)
    assert rc != 0 and "unknown option" in out["error"]


def test_skiffctl_works_while_the_agent_is_down(env):
    c, n1, a, b, remote = env
    c.kill_agent(n1)
    _, eps = ctl(n1, "endpoint", "list")
    assert {e["ip"] for e in eps} >= {a.ip, b.ip}
    _, t = ctl(n1, "trace", "--from", f"{a.ip}:40005", "--to", f"{VIP}:80")
    assert t["backend"]["address"] == f"{remote.ip}:7000"
    _, stats = ctl(n1, "stats")
    assert isinstance(stats, list)


def test_reused_service_tuple_starts_a_fresh_conntrack_life(env):
    c, n1, a, _, remote = env
    script = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close with RST
s.bind(("0.0.0.0", 46000)); s.settimeout(3); s.connect((sys.argv[1], 80)); print(s.recv(64).decode()); s.close()
"""

    def forward_flags():
        _, cts = ctl(n1, "ct", "list")
        mine = [e for e in cts if e["direction"] == "forward" and e.get("sport", e.get("src_port")) in (46000, None)
                and str(46000) in json.dumps(e)]
        assert len(mine) == 1, cts
        return set(mine[0]["flags"])

    a.run("/usr/bin/python3", "-c", script, VIP, check=True)
    assert "closing" in forward_flags()
    held = subprocess.Popen(["nsenter", f"--net=/run/netns/{a.ns}", "--", "/usr/bin/python3", "-c",
                             script.replace("s.close()", "import time; time.sleep(3)"), VIP],
                            stdout=subprocess.PIPE, text=True)
    assert held.stdout.readline().startswith(remote.ip)  # connected again on the same tuple
    flags = forward_flags()  # while that connection is open
    held.wait(timeout=10)
    assert "closing" not in flags and "replied" in flags, flags
