#!/usr/bin/env python3
"""TCP forwarder from the root network namespace into another one.

    netns-forward.py NETNS_PATH LISTEN_HOST LISTEN_PORT DEST_HOST DEST_PORT

Binds LISTEN_HOST:LISTEN_PORT in the namespace it is started in (the test bed
uses 127.0.0.1 in the root namespace: a listening socket, no route, address,
device or firewall change), then switches its own network namespace to
NETNS_PATH (setns, before any thread exists, so every thread is there) and
connects each accepted client to DEST_HOST:DEST_PORT from inside it. A socket
keeps the namespace it was created in, so the listener stays in the root
namespace. Used by scripts/k8s/cluster.sh so that `kubectl` in the root
namespace reaches kube-apiserver in ktb-cp.
"""
import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(client, dest):
    try:
        upstream = socket.create_connection(dest, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    t = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    t.start()
    pipe(client, upstream)
    t.join()
    client.close()
    upstream.close()


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    ns, lhost, lport, dhost, dport = sys.argv[1:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((lhost, int(lport)))
    listener.listen(64)
    fd = os.open(ns, os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        sys.exit(f"setns {ns}: {os.strerror(err)}")
    os.close(fd)
    dest = (dhost, int(dport))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, dest), daemon=True).start()


if __name__ == "__main__":
    main()
