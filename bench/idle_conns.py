#!/usr/bin/env python3
"""Hold N idle HTTP/1.1 keep-alive connections open against a server.

Usage: idle_conns.py HOST PORT N [PATH]

Opens N TCP connections (at most BATCH connecting at a time, so the server's
accept queue never overflows), sends one keep-alive `GET PATH` on each, reads
its whole response head, then leaves the connection idle. Prints
`ready OK FAILED` on stdout once every connection has been answered (or has
failed), then idles until it is killed (SIGTERM). Bench scripts measure
the server's memory while this runs. Standard library only.
"""

import os
import resource
import selectors
import socket
import sys
import time

BATCH = 256
DEADLINE_S = 120.0


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 64)) if hard != resource.RLIM_INFINITY else max(soft, n + 64)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < n + 16:
        sys.exit(f"idle_conns: need {n + 16} file descriptors, hard limit is {hard}: raise it with `ulimit -Hn`")


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    raise_nofile(n)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    held, ok, failed, started, inflight = [], 0, 0, 0, 0
    bufs = {}
    deadline = time.monotonic() + DEADLINE_S
    while ok + failed < n and time.monotonic() < deadline:
        while started < n and inflight < BATCH:
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((host, port))
            sel.register(s, selectors.EVENT_WRITE, "connect")
            held.append(s)
            bufs[s] = b""
            started += 1
            inflight += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            try:
                if key.data == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    s.sendall(request)
                    sel.modify(s, selectors.EVENT_READ, "read")
                    continue
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed by server")
                bufs[s] += chunk
                if b"\r\n\r\n" in bufs[s]:
                    sel.unregister(s)
                    del bufs[s]
                    ok += 1
                    inflight -= 1
            except OSError:
                sel.unregister(s)
                bufs.pop(s, None)
                s.close()
                failed += 1
                inflight -= 1
    print(f"ready {ok} {failed + (n - ok - failed)}", flush=True)
    # Idle, holding every socket, until the bench script kills us.
    while held:
        time.sleep(3600)


if __name__ == "__main__":
    main()
