"""Hostile input against the real plugin binary: bytes that are not UTF-8,
delegation loops, pin paths off bpffs, killed writers' temporary files, and
strings and types that must be refused with the right code. Whatever the
input, stdout holds exactly one JSON object and nothing is left behind."""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from skiff_topo import CNI_PATH, SKIFF
from test_cni_del import NOTHING, settled_leftovers
from test_cni_failures import assert_clean


def run_raw(node, env, stdin, timeout=30):
    """The plugin with an environment of bytes (values need not be UTF-8).
    Returns (exit code, stdout bytes, stderr bytes)."""
    e = {b"PATH": os.environb.get(b"PATH", b"/usr/sbin:/usr/bin:/sbin:/bin"), b"CNI_PATH": CNI_PATH.encode()}
    e.update({k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in env.items()})
    r = subprocess.run(["nsenter", f"--net=/run/netns/{node.ns}", "--", SKIFF],
                       input=stdin if isinstance(stdin, bytes) else stdin.encode(),
                       capture_output=True, env=e, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def one_error(rc, stdout):
    """stdout is a single JSON error object (valid UTF-8) and the exit code is non-zero."""
    assert rc > 0, (rc, stdout)  # a signal would be negative
    text = stdout.decode("utf-8")  # raises on anything but UTF-8
    obj = json.loads(text)  # raises on trailing garbage: one object only
    assert isinstance(obj, dict) and isinstance(obj["code"], int) and obj["msg"], obj
    return obj


@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
@pytest.mark.parametrize("var,value", [
    ("CNI_CONTAINERID", b"c\xff"),
    ("CNI_IFNAME", b"et\xff"),
    ("CNI_IFNAME", b"\xc3("),  # a broken two-byte sequence
    ("CNI_NETNS", b"/run/netns/\xff\xfe"),
])
def test_bytes_that_are_not_utf8_get_an_error_object(topo, node, command, var, value):
    pod_ns = topo.pod_ns()
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": f"/run/netns/{pod_ns}",
           "CNI_IFNAME": "eth0", var: value}
    conf = node.conf(cniVersion="1.0.0")
    if command == "CHECK":
        conf["prevResult"] = {"cniVersion": "1.0.0", "ips": [{"address": "10.244.1.9/32"}]}
    rc, out, _ = run_raw(node, env, json.dumps(conf))
    err = one_error(rc, out)
    assert err["code"] == 4, err
    assert_clean(node, pod_ns)


def test_pod_names_that_are_not_utf8_are_stored_safely(topo, node):
    pod_ns = topo.pod_ns()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": f"/run/netns/{pod_ns}",
           "CNI_IFNAME": "eth0", "CNI_ARGS": b"IgnoreUnknown=1;K8S_POD_NAME=p\xff;K8S_POD_NAMESPACE=\xfe"}
    rc, out, err = run_raw(node, env, json.dumps(node.conf()))
    assert rc == 0, (out, err)
    assert json.loads(out.decode())["ips"]
    state = json.loads(open(os.path.join(node.state, "networks", node.network, "attachments",
                                         "c1:eth0.json"), encoding="utf-8").read())
    assert state["podName"] == "p\ufffd"
    env["CNI_COMMAND"] = "DEL"
    rc, out, err = run_raw(node, env, json.dumps(node.conf()))
    assert rc == 0, (out, err)
    assert settled_leftovers(node) == NOTHING


def write_plugin(dirpath, name, body):
    p = dirpath / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def test_delegate_stderr_that_is_not_utf8(topo, node, tmp_path):
    # An IPAM plugin that fails without an error object, its stderr raw bytes:
    # they travel in our error's details, replaced where not UTF-8.
    write_plugin(tmp_path, "rawipam", "printf 'bad\\377\\376 bytes' >&2\nexit 3\n")
    pod_ns = topo.pod_ns()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": f"/run/netns/{pod_ns}",
           "CNI_IFNAME": "eth0", "CNI_PATH": f"{tmp_path}:{CNI_PATH}"}
    conf = node.conf(podCIDR=None, ipam={"type": "rawipam"})
    rc, out, _ = run_raw(node, env, json.dumps(conf))
    err = one_error(rc, out)
    assert "rawipam" in err["msg"] and "bad" in err["details"], err
    assert_clean(node, pod_ns)


def test_delegate_that_never_reads_its_stdin(topo, node, tmp_path):
    # A config larger than a pipe holds, to a plugin that exits at once:
    # writing it meets a closed pipe (EPIPE), which must not kill us.
    write_plugin(tmp_path, "quitipam", "exit 1\n")
    pod_ns = topo.pod_ns()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": f"/run/netns/{pod_ns}",
           "CNI_IFNAME": "eth0", "CNI_PATH": f"{tmp_path}:{CNI_PATH}"}
    conf = node.conf(podCIDR=None, ipam={"type": "quitipam"}, padding="x" * (600 << 10))
    rc, out, _ = run_raw(node, env, json.dumps(conf))
    err = one_error(rc, out)
    assert "quitipam" in err["msg"], err
    assert_clean(node, pod_ns)


def skiff_processes():
    r = subprocess.run(["pgrep", "-c", "-x", "skiff"], capture_output=True, text=True)
    return int(r.stdout.strip() or 0)


@pytest.mark.parametrize("how", ["same-type", "alias", "through-another-plugin"])
def test_delegation_loops_are_refused(topo, node, tmp_path, how):
    """skiff named as its own IPAM plugin, directly, under another name, or
    reached again through another plugin: code 7, no process storm."""
    if how == "same-type":
        ipam = "skiff"
    elif how == "alias":
        os.symlink(SKIFF, tmp_path / "skiffalias")
        ipam = "skiffalias"
    else:
        # A plugin that hands everything to skiff, which would hand it back.
        write_plugin(tmp_path, "loopipam", f"exec {SKIFF}\n")
        ipam = "loopipam"
    pod_ns = topo.pod_ns()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": f"/run/netns/{pod_ns}",
           "CNI_IFNAME": "eth0", "CNI_PATH": f"{tmp_path}:{CNI_PATH}"}
    conf = node.conf(podCIDR=None, ipam={"type": ipam})
    rc, out, _ = run_raw(node, env, json.dumps(conf), timeout=20)
    err = one_error(rc, out)
    assert err["code"] == 7 and "loop" in err["msg"], err
    assert skiff_processes() == 0
    assert_clean(node, pod_ns)


def mount_points():
    with open("/proc/self/mountinfo") as f:
        return sorted(l.split()[4] for l in f)


def test_pin_paths_off_bpffs_mount_nothing(topo, node, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "keep").write_text("precious")
    regular = tmp_path / "file"
    regular.write_text("x")
    pod_ns = topo.pod_ns()
    before = mount_points()
    for pin in [data / "skiff", data, regular, regular / "pins", "/proc/self/mem", "/dev/null",
                "/sys/fs/bp", "/sys/fs/bpfx/skiff"]:
        for command in ["ADD", "STATUS"]:
            node.cni_version = "1.1.0"
            rc, out, _ = node.cni(command, container_id="c1", netns=f"/run/netns/{pod_ns}",
                                  conf=node.conf(pinPath=str(pin)))
            assert rc != 0 and out["code"] == 7 and "pinPath" in out["msg"], (pin, out)
        assert mount_points() == before, pin
        assert (data / "keep").read_text() == "precious"
        assert sorted(os.listdir(data)) == ["keep"] and not os.path.exists("/sys/fs/bpfx")
    assert_clean(node, pod_ns)


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def plant_temp_files(node):
    base = os.path.join(node.state, "networks", node.network)
    ipam, att = os.path.join(base, "ipam"), os.path.join(base, "attachments")
    os.makedirs(ipam, exist_ok=True)
    os.makedirs(att, exist_ok=True)
    gone = dead_pid()
    planted = [os.path.join(ipam, f"10.244.1.77.tmp.{gone}.0"),
               os.path.join(ipam, f"last_reserved_ip.tmp.{gone}.3"),
               os.path.join(att, f"c9:eth0.json.tmp.{gone}.1")]
    for p in planted:
        with open(p, "w") as f:
            f.write("half")
    # A state file being written by a live process (this one) is not touched.
    live = os.path.join(att, f"c8:eth0.json.tmp.{os.getpid()}.0")
    with open(live, "w") as f:
        f.write("in flight")
    return planted, live


@pytest.mark.parametrize("command", ["DEL", "GC"])
def test_killed_writers_temp_files_are_collected(topo, node, command):
    planted, live = plant_temp_files(node)
    node.cni_version = "1.1.0"
    if command == "DEL":
        rc, out, err = node.cni("DEL", container_id="never-added", netns=None)
    else:
        rc, out, err = node.cni("GC", container_id=None, netns=None, ifname=None,
                                conf=node.conf(**{"cni.dev/valid-attachments": []}))
    assert rc == 0, (out, err)
    assert [p for p in planted if os.path.exists(p)] == []
    assert node.temp_files() == [live]
    os.unlink(live)


def test_adds_killed_at_random_moments_leave_nothing_after_del(topo, node):
    """SIGKILL at a random moment of ADD, then DEL: nothing left, the
    temporary files of atomic writes included."""
    rng = random.Random(1506)
    conf = json.dumps(node.conf())
    for i in range(40):
        pod_ns = topo.pod_ns()
        env = dict(os.environ, CNI_COMMAND="ADD", CNI_CONTAINERID=f"k{i}", CNI_NETNS=f"/run/netns/{pod_ns}",
                   CNI_IFNAME="eth0", CNI_PATH=CNI_PATH)
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{node.ns}", "--", SKIFF], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        p.stdin.write(conf.encode())
        p.stdin.close()
        time.sleep(rng.uniform(0, 0.03))  # where it dies, not a check
        p.send_signal(signal.SIGKILL)
        p.wait()
        rc, out, err = node.cni("DEL", container_id=f"k{i}", netns=f"/run/netns/{pod_ns}")
        assert rc == 0, (out, err)
    assert settled_leftovers(node) == NOTHING


@pytest.mark.parametrize("overrides,needle", [
    ({"stateDir": "/tmp/skiff\u0000evil"}, "control character"),
    ({"stateDir": "/tmp/skiff\nevil"}, "control character"),
    ({"pinPath": "/sys/fs/bpf/skiff\u0000x"}, "control character"),
    ({"logFile": "/tmp/skiff.log\nforged line"}, "control character"),
    ({"pinPath": "/proc/self/mem"}, "pinPath"),
    ({"logFile": "/dev/stdout"}, "stdout"),
    ({"logFile": "/proc/self/fd/1"}, "stdout"),
    ({"logFile": "/dev/fd/1"}, "stdout"),
])
def test_config_strings_refused(topo, node, overrides, needle):
    pod_ns = topo.pod_ns()
    rc, out, err = run_raw(node, {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": f"/run/netns/{pod_ns}",
                                  "CNI_IFNAME": "eth0"}, json.dumps(node.conf(**overrides)))
    e = one_error(rc, out)
    assert e["code"] == 7 and needle in e["msg"], e
    assert_clean(node, pod_ns)


@pytest.mark.parametrize("key", ["stateDir", "pinPath", "logFile", "podCIDR", "clusterCIDR", "mtu", "ipam",
                                 "dns", "prevResult", "requireAgent", "cni.dev/valid-attachments"])
def test_null_is_a_wrong_type_not_the_default(topo, node, key):
    pod_ns = topo.pod_ns()
    conf = node.conf()
    conf[key] = None  # node.conf() drops None; set it after
    rc, out, _ = node.cni("ADD", container_id="c1", netns=f"/run/netns/{pod_ns}", raw_stdin=json.dumps(conf))
    assert rc != 0 and out["code"] == 7 and key in out["msg"], out
    assert_clean(node, pod_ns)


@pytest.mark.parametrize("env,code", [
    ({"CNI_IFNAME": "eth%d"}, 4),
    ({"CNI_IFNAME": "e\tth"}, 4),
    ({"CNI_IFNAME": "eth\x01"}, 4),
    ({"CNI_NETNS": "/proc/self/ns/mnt"}, 4),
    ({"CNI_NETNS": "/proc/self/ns/uts"}, 4),
    ({"CNI_NETNS": "/proc"}, 4),
    ({"CNI_NETNS": "/tmp"}, 4),
    ({"CNI_NETNS": "/etc/hostname"}, 4),
    ({"CNI_NETNS": "/dev/null"}, 4),
    ({"CNI_NETNS": "/run/netns/skiff-no-such-ns"}, 3),
])
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_environment_codes(topo, node, env, code, command):
    """The input's faults get the input's codes; 999 is for the machine's."""
    pod_ns = topo.pod_ns()
    conf = node.conf(cniVersion="1.0.0", prevResult={"cniVersion": "1.0.0", "ips": [{"address": "10.244.1.9/32"}]})
    if command == "CHECK":
        # CHECK needs an attachment to get as far as the netns.
        rc, out, err = node.cni("ADD", container_id="c1", netns=f"/run/netns/{pod_ns}", conf=node.conf())
        assert rc == 0, (out, err)
        conf["prevResult"] = out
    base = {"CNI_NETNS": f"/run/netns/{pod_ns}"}
    base.update(env)
    rc, out, _ = node.cni(command, container_id="c1", netns=base.pop("CNI_NETNS"), conf=conf, env=base)
    assert rc != 0 and out["code"] == code, out
    if command == "CHECK":
        node.cni("DEL", container_id="c1", netns=f"/run/netns/{pod_ns}")
        assert settled_leftovers(node) == NOTHING
    else:
        assert_clean(node, pod_ns)
