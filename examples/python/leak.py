"""A worker that keeps memory per request, as a leaking app does (for
--max-worker-memory).

    runicorn --chdir examples/python --max-worker-memory 64 leak:app

Each request appends ?mb=N MiB (default 1), every byte written so that it
is resident, to a list that lives as long as the worker, then sleeps
?ms=M milliseconds (default 0) and answers `PID HELD_MIB`.
"""

import os
import time
from urllib.parse import parse_qs

HELD = []


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    mib = int(query.get("mb", ["1"])[0])
    millis = int(query.get("ms", ["0"])[0])
    HELD.append(b"\x01" * (mib << 20))
    time.sleep(millis / 1000)
    body = f"{os.getpid()} {sum(len(chunk) for chunk in HELD) >> 20}\n".encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
