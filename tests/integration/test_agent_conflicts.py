"""Objects claiming what a live object holds: a Service whose ClusterIP:port
is already served keeps it (what is programmed keeps its claim, then the
older by creationTimestamp, then namespace/name), whatever the newcomers'
names. The newcomers are skipped and reported; traffic never notices."""
import json
import subprocess

from cluster_topo import wait_for
from test_services import VIP, WEB_PORTS, WEB_SLICE_PORTS, Svc, service, slice_

ECHO_PORTS = WEB_PORTS + [{"name": "echo", "port": 9000, "protocol": "TCP"}]
ECHO_SLICE_PORTS = WEB_SLICE_PORTS + [{"name": "echo", "port": 7002, "protocol": "TCP"}]

# A long-lived TCP conversation through the VIP: one line in, one reply out.
CONVERSATION = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 9000), timeout=5)
for line in sys.stdin:
    try:
        s.sendall(line.strip().encode()); r = s.recv(64).decode()
        print(r if r else "CLOSED", flush=True)
    except OSError as e:
        print("ERR", e, flush=True)
"""


def dated(obj, ts):
    obj["metadata"]["creationTimestamp"] = ts
    return obj


def test_duplicate_frontends_do_not_take_over_a_live_service(topo):
    svc = Svc(topo)
    n1 = svc.nodes[0]
    live = [dated(service("zz-web", VIP, ECHO_PORTS), "2024-06-01T00:00:00Z"),
            slice_("zz-web", "zz-web-1", [(b.ip, True, False) for b in svc.backends], ECHO_SLICE_PORTS)]
    svc.publish(*live)
    wait_for(lambda: svc.frontends(n1) == 3, "the live service's frontends")
    conv = subprocess.Popen(["nsenter", f"--net=/run/netns/{svc.client.ns}", "--", "/usr/bin/python3", "-c",
                             CONVERSATION, VIP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    topo.procs.append(conv)

    def say(word):
        conv.stdin.write(word + "\n")
        conv.stdin.flush()
        return conv.stdout.readline().strip()

    first = say("before")
    assert first.endswith(" before"), first
    backend = first.split()[0]

    # Three newcomers on the same ClusterIP and ports, without endpoints,
    # sorting first by name, one even claiming to be older.
    dups = [dated(service(f"aa-dup{i}", VIP, ECHO_PORTS), ts)
            for i, ts in enumerate(["2024-09-01T00:00:00Z", "2024-09-01T00:00:00Z", "2023-01-01T00:00:00Z"])]
    svc.publish(*(live + dups))
    # Applied on every node (they all read the same file): three skipped.
    for nd in svc.nodes:
        wait_for(lambda nd=nd: svc.cluster.metric(nd, "skiff_agent_skipped_objects") == 3,
                 f"{nd.name}: the duplicates reported")

    assert say("during") == f"{backend} during", "the established connection did not survive the duplicates"
    answers = svc.ask(svc.client, 80, "tcp", 6)
    assert answers and all(a and a[0] in {b.ip for b in svc.backends} for a in answers), answers
    assert svc.frontends(n1) == 3

    code, body = svc.cluster.http(n1, "/healthz")
    assert code == 200, body
    skipped = json.loads(body)["skipped"]
    assert len(skipped) == 3, skipped
    for i in range(3):
        assert any(f"Service default/aa-dup{i}" in s and "already used by default/zz-web" in s for s in skipped), skipped
    assert svc.cluster.metric(n1, 'skiff_agent_conflicts{kind="frontend"}') == 3
    log = open(f"{topo.tmp}/{n1.ns}/agent.log").read()
    assert log.count("Service default/aa-dup0") == 1, "reported once per change, not per pass"

    # The newcomers go: nothing changes for the live service.
    svc.publish(*live)
    wait_for(lambda: svc.cluster.metric(n1, "skiff_agent_skipped_objects") == 0, "duplicates gone")
    assert say("after") == f"{backend} after"
    assert svc.cluster.metric(n1, 'skiff_agent_conflicts{kind="frontend"}') == 0
    conv.stdin.close()
    conv.wait(timeout=10)


def test_next_claimant_takes_over_when_the_holder_goes(topo):
    svc = Svc(topo)
    n1 = svc.nodes[0]
    a, b = svc.backends
    holder = [dated(service("mm-web", VIP, WEB_PORTS), "2024-06-01T00:00:00Z"),
              slice_("mm-web", "mm-web-1", [(a.ip, True, False)], WEB_SLICE_PORTS)]
    # Newer than the holder; of the two, the older takes over, not the first by name.
    young = [dated(service("aa-young", VIP, WEB_PORTS), "2024-09-01T00:00:00Z")]
    older = [dated(service("zz-older", VIP, WEB_PORTS), "2024-07-01T00:00:00Z"),
             slice_("zz-older", "zz-older-1", [(b.ip, True, False)], WEB_SLICE_PORTS)]
    svc.publish(*holder)
    wait_for(lambda: {x[0] for x in svc.ask(svc.client, 80, "tcp", 2)} == {a.ip}, "the holder serves")
    svc.publish(*(holder + young + older))
    wait_for(lambda: svc.cluster.metric(n1, "skiff_agent_skipped_objects") == 2, "newcomers reported")
    assert {x[0] for x in svc.ask(svc.client, 80, "tcp", 4)} == {a.ip}
    svc.publish(*(young + older))
    wait_for(lambda: {x[0] for x in svc.ask(svc.client, 80, "tcp", 2)} == {b.ip}, "zz-older took over")
    skipped = json.loads(svc.cluster.http(n1, "/healthz")[1])["skipped"]
    assert len(skipped) == 1 and "default/aa-young" in skipped[0] and "which is older" in skipped[0], skipped
