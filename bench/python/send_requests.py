"""send_requests.py HOST PORT N [PATH]: N GETs of PATH, one after another
on one keep-alive connection (a new one whenever the server closes it), each
response read whole (Content-Length or chunked). Exits 1 on a non-2xx
answer. A fixed request count for bench/python-profile.sh, which divides
the instructions counted by it."""

import socket
import sys


def read_response(conn, buf):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("closed before the head")
        buf += data
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if b"content-length" in fields:
        length = int(fields[b"content-length"])
        while len(buf) < length:
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("closed in the body")
            buf += data
        buf = buf[length:]
    elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        while b"\r\n0\r\n\r\n" not in b"\r\n" + buf:
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("closed in the body")
            buf += data
        buf = (b"\r\n" + buf).split(b"\r\n0\r\n\r\n", 1)[1]
    close = fields.get(b"connection", b"").lower() == b"close"
    return status, close, buf


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    conn = None
    buf = b""
    for _ in range(count):
        if conn is None:
            conn = socket.create_connection((host, port))
            buf = b""
        conn.sendall(request)
        status, close, buf = read_response(conn, buf)
        if not 200 <= status < 300:
            sys.exit(f"status {status}")
        if close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


if __name__ == "__main__":
    main()
