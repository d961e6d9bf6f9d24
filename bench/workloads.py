"""Servers and clients of the benchmark, and the parsing of their output.

Placement (2-core machine): every server (iperf3, sockperf, nginx) is pinned
to CPU 1, every client (iperf3 -c, sockperf pp, wrk) to CPU 0. Softirq work
for a packet mostly runs on the CPU that sent it (veth xmit -> backlog of the
same CPU), so each side's stack work lands on its own core. The clients take
cpu= (None: not pinned); bench/placement.py moves the servers.
"""
import json
import os
import re
import time

from topo import VIP, in_ns, log, sysctl, wait_for

SERVER_CPU, CLIENT_CPU = "1", "0"
IPERF_PORT, SOCKPERF_PORT, HTTP_PORT = 5201, 11111, 8080
# nginx also listens here; services map port 80 to it, so connections to a
# ClusterIP and direct ones to the same backend pod never share a server-side
# tuple (TIME_WAIT) even when both are masqueraded to the same node address.
HTTP_SVC_PORT = 8081

NGINX_CONF = """worker_processes 1;
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log crit;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 100000000;
  server {{
    listen {port} backlog=8192;
    listen {svc_port} backlog=8192;
    location / {{ return 200 "ok\\n"; }}
    location = /ip {{ return 200 "$remote_addr\\n"; }}
  }}
}}
"""


def tune_client(ns):
    """Per-namespace: wide ephemeral range so short connections never run out of ports."""
    sysctl(ns, "net.ipv4.ip_local_port_range", "1024 65000")


def listening(ns, port):
    return f":{port} " in in_ns(ns, "ss", "-ltnH", check=False).stdout


def start_servers(topo, ep):
    """iperf3, sockperf (TCP) and nginx in ep's namespace, pinned to SERVER_CPU."""
    d = os.path.join(topo.tmp, f"nginx-{ep.ns}")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=HTTP_PORT, svc_port=HTTP_SVC_PORT))
    topo.spawn(ep.ns, "taskset", "-c", SERVER_CPU, "iperf3", "-s", "-p", str(IPERF_PORT))
    topo.spawn(ep.ns, "taskset", "-c", SERVER_CPU, "sockperf", "sr", "--tcp", "-i", "0.0.0.0",
               "-p", str(SOCKPERF_PORT))
    topo.spawn(ep.ns, "taskset", "-c", SERVER_CPU, "nginx", "-c", conf, "-p", d)
    for port in (IPERF_PORT, SOCKPERF_PORT, HTTP_PORT, HTTP_SVC_PORT):
        wait_for(lambda port=port: listening(ep.ns, port), f"server :{port} in {ep.ns}", timeout=20)


def client_address(ep, ip, port=HTTP_PORT):
    """The source address the server at ip sees for a connection from ep
    (nginx answers /ip with $remote_addr): shows whether the path translates it."""
    r = in_ns(ep.ns, "curl", "-s", "-m", "3", f"http://{ip}:{port}/ip", check=False)
    return r.stdout.strip()


def _client(ep, *cmd, timeout, cpu=CLIENT_CPU):
    pin = ("taskset", "-c", cpu) if cpu is not None else ()
    return in_ns(ep.ns, *pin, *cmd, check=False, timeout=timeout)


def stream(ep, ip, flows, seconds, port=IPERF_PORT, cpu=CLIENT_CPU):
    """TCP stream with iperf3, client -> server; returns Gbit/s received."""
    for attempt in range(3):
        r = _client(ep, "iperf3", "-c", ip, "-p", str(port), "-t", str(seconds), "-P", str(flows), "-J",
                    timeout=seconds + 30, cpu=cpu)
        try:
            j = json.loads(r.stdout)
            if "error" not in j:
                recv = j["end"]["sum_received"]
                return {"gbps": recv["bits_per_second"] / 1e9,
                        "retransmits": j["end"]["sum_sent"].get("retransmits", 0),
                        "bytes": recv.get("bytes"), "seconds": recv.get("seconds")}
            err = j["error"]
        except (ValueError, KeyError) as e:
            err = f"{e}: {r.stdout[-300:]} {r.stderr[-300:]}"
        log(f"iperf3 to {ip} failed ({err}), retrying")
        time.sleep(1)
    raise RuntimeError(f"iperf3 to {ip}:{port} failed: {err}")


_PCT = re.compile(r"percentile (\d+\.\d+) =\s+([\d.]+)")


def rr(ep, ip, seconds, port=SOCKPERF_PORT, size=64, cpu=CLIENT_CPU):
    """TCP request/response ping-pong (sockperf pp, one message in flight):
    transactions/s and full round-trip latency percentiles in microseconds."""
    r = _client(ep, "sockperf", "pp", "--tcp", "-i", ip, "-p", str(port), "-t", str(seconds), "-m", str(size),
                "--full-rtt", timeout=seconds + 30, cpu=cpu)
    out = r.stdout + r.stderr
    m = re.search(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)", out)
    pct = {float(a): float(b) for a, b in _PCT.findall(out)}
    if not m or 50.0 not in pct:
        raise RuntimeError(f"sockperf to {ip}:{port} failed: {out[-600:]}")
    return {"tps": int(m.group(3)) / float(m.group(1)), "p50_us": pct[50.0], "p99_us": pct[99.0],
            "p999_us": pct.get(99.9), "transactions": int(m.group(3)), "seconds": float(m.group(1))}


def crr(ep, ip, seconds, port=HTTP_PORT, conns=16, cpu=CLIENT_CPU):
    """Connection rate: wrk with `Connection: close`, one request per TCP
    connection. nginx closes first, so TIME_WAIT sits on the server side,
    where a new SYN on an old tuple is accepted; the client never holds one."""
    r = _client(ep, "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "-H", "Connection: close",
                f"http://{ip}:{port}/", timeout=seconds + 30, cpu=cpu)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if not m:
        raise RuntimeError(f"wrk to {ip}:{port} failed: {r.stdout[-400:]} {r.stderr[-400:]}")
    errs = re.search(r"Socket errors: (.*)", r.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", r.stdout)
    return {"cps": float(m.group(1)), "errors": errs.group(1) if errs else "",
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "requests": int(done.group(1)) if done else None}


def measure(workload, client, ip, seconds, svc=False, cpu=CLIENT_CPU):
    """One run of a workload (stream1, stream4, rr, crr) from client to ip;
    svc: ip is a ClusterIP (the services' ports, see web_service)."""
    if workload in ("stream1", "stream4"):
        return stream(client, ip, int(workload[-1]), seconds, port=5201, cpu=cpu)
    if workload == "rr":
        return rr(client, ip, seconds, port=81 if svc else SOCKPERF_PORT, cpu=cpu)
    if workload == "crr":
        return crr(client, ip, seconds, port=80 if svc else HTTP_PORT, cpu=cpu)
    raise ValueError(workload)


def web_service(backend_ip, name="web", vip=VIP):
    return {"name": name, "vip": vip, "backends": [backend_ip],
            "ports": [(80, HTTP_SVC_PORT), (81, SOCKPERF_PORT), (5201, IPERF_PORT)]}


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def short(out):
    """A run's output on one log line."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()
                    if v not in ("", None, {}))


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t0, out
