#!/usr/bin/env python3
"""ir_client.py HOST PORT N [close|keep] [CONNS]: N GET / requests, one
after the other, on one keep-alive connection (or, with `close`, one
connection each with `Connection: close`); each response read whole
(Content-Length) before the next is sent. With `keep CONNS`, CONNS
keep-alive connections at once (a thread each, the N requests shared out),
so a worker sees concurrent clients. Prints the number answered 200. For
ir.sh and ir-profile.sh, which count the instructions a worker spends per
request under callgrind."""

import socket
import sys
import threading


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


def run(host, port, count, close):
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
    return ok


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    close = len(sys.argv) > 4 and sys.argv[4] == "close"
    conns = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    if conns <= 1:
        print(run(host, port, count, close))
        return
    answered = [0] * conns

    def client(index):
        share = count // conns + (1 if index < count % conns else 0)
        try:
            answered[index] = run(host, port, share, close)
        except OSError:
            pass

    threads = [threading.Thread(target=client, args=(index,)) for index in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(sum(answered))


if __name__ == "__main__":
    main()
