#!/usr/bin/env python3
"""ir_client.py HOST PORT N [close]: N GET / requests, one after the other,
on one keep-alive connection (or, with `close`, one connection each with
`Connection: close`); each response read whole (Content-Length) before the
next is sent. Prints the number answered 200. For ir.sh, which counts the
instructions a worker spends per request under callgrind."""

import socket
import sys


def read_response(sock, pending):
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the body ended")
        rest += chunk
    return head.split(b" ", 2)[1] == b"200", rest[length:]


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    close = len(sys.argv) > 4 and sys.argv[4] == "close"
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
    ok = 0
    sock = None
    pending = b""
    for _ in range(count):
        if sock is None:
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending = b""
        sock.sendall(request)
        good, pending = read_response(sock, pending)
        ok += good
        if close:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    print(ok)


if __name__ == "__main__":
    main()
