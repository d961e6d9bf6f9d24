"""Prove the podman harness with the reference CNI `ptp` + `host-local` plugins.

Two busybox containers on a ptp network (10.244.1.0/24) inside a private node
netns: A serves a file with busybox httpd, B fetches it with wget and pings A.
Afterwards nothing (containers, netns, mounts, dirs, cgroups) may remain.
"""

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from podman_harness import PodmanNode

REF_CNI_DIR = "/usr/lib/cni"
SUBNET = "10.244.1.0/24"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed"),
    pytest.mark.skipif(not os.path.exists(f"{REF_CNI_DIR}/ptp"),
                       reason="containernetworking-plugins not installed"),
]


def _netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True, timeout=30).stdout


@pytest.fixture
def node_ns():
    """A fresh, empty "node" network namespace (lo up); deleted afterwards."""
    name = f"skiff-node-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"],
                       check=True, timeout=30)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=30)
    assert name not in _netns_list()


def ptp_conflist(name: str) -> dict:
    return {
        "cniVersion": "0.4.0",
        "name": name,
        "plugins": [{
            "type": "ptp",
            "ipMasq": False,
            "mtu": 1500,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": SUBNET}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }],
    }


def test_ptp_http_and_ping(node_ns, tmp_path):
    token = f"hello-from-skiff-{uuid.uuid4().hex}"
    net = f"skiffptp{uuid.uuid4().hex[:6]}"
    node = PodmanNode(node_ns, ptp_conflist(net), [REF_CNI_DIR], tmp_path)
    try:
        node.run("srv", "sh", "-c",
                 f"mkdir -p /www && echo {token} > /www/index.html && "
                 "exec httpd -f -p 8080 -h /www")
        node.run("cli", "sleep", "3600")
        srv_ip, cli_ip = node.ip_of("srv"), node.ip_of("cli")
        for ip in (srv_ip, cli_ip):
            assert ip.startswith("10.244.1."), ip
        assert srv_ip != cli_ip

        # The host side of the veths and the /32 routes live in the node ns.
        routes = subprocess.run(["ip", "-n", node_ns, "route"], capture_output=True,
                                text=True, check=True, timeout=30).stdout
        assert srv_ip in routes and cli_ip in routes, routes

        ping = node.exec("cli", "ping", "-c", "3", "-W", "2", srv_ip, timeout=30)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "3 packets received" in ping.stdout, ping.stdout

        body = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # NB: Debian's static busybox 1.35 wget segfaults with -T; use timeout.
            cp = node.exec("cli", "timeout", "5", "wget", "-q", "-O", "-",
                           f"http://{srv_ip}:8080/index.html", timeout=30)
            if cp.returncode == 0:
                body = cp.stdout
                break
            time.sleep(0.5)
        assert body is not None, "wget never succeeded: " + node.logs("srv")
        assert body.strip() == token

        netns_files = node.netns_paths()
        assert len(netns_files) == 2, netns_files
        assert sorted(node.ps_all()) == ["cli", "srv"]

        node.rm_all()
        assert node.ps_all() == []
        # CNI DEL ran in the node ns: host-side veths and routes are gone.
        links = subprocess.run(["ip", "-n", node_ns, "-o", "link"], capture_output=True,
                               text=True, check=True, timeout=30).stdout
        assert [l for l in links.splitlines() if ": lo:" not in l] == [], links
        routes = subprocess.run(["ip", "-n", node_ns, "route"], capture_output=True,
                                text=True, check=True, timeout=30).stdout
        assert srv_ip not in routes and cli_ip not in routes, routes
    finally:
        node.close()

    assert node.leftovers() == []
    listing = _netns_list()
    for path in netns_files:
        assert Path(path).name not in listing
    assert not list(tmp_path.iterdir())
    # host-local leases went to the private dataDir, not the shared default.
    assert not Path("/var/lib/cni/networks", net).exists()
