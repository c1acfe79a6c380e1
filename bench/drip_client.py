#!/usr/bin/env python3
"""drip_client.py HOST PORT [HEAD_KIB] [GAP_US]: a slow client. Sends one GET
whose head is about HEAD_KIB KiB (default 60: ten fields of 6,000 bytes,
within Gunicorn's default limit_request_field_size and runicorn's 64 KiB
head cap) one byte per send, GAP_US microseconds apart (default 50), so the
server sees the head arrive a byte or a few at a time; then reads the
response. Prints the status line. For before-after.sh's drip scenario: the
server's CPU for one such head shows whether re-parsing a partial head costs
linear or quadratic work in its bytes."""

import socket
import sys
import time


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    kib = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    gap = (int(sys.argv[4]) if len(sys.argv) > 4 else 50) / 1e6
    fields = max(1, kib * 1024 // 6000)
    value = b"v" * 5980
    head = b"GET /drip HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
    head += b"".join(b"X-Field-%02d: %s\r\n" % (i, value) for i in range(fields))
    head += b"\r\n"
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(head)):
        sock.sendall(head[i : i + 1])
        if gap:
            time.sleep(gap)
    sock.settimeout(60)
    response = b""
    while b"\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            break
        response += chunk
    sock.close()
    print(response.split(b"\r\n", 1)[0].decode("latin-1"), len(head))


if __name__ == "__main__":
    main()
