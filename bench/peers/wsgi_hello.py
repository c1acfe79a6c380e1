"""WSGI benchmark peers for Gunicorn (never part of the product).

`wsgi_hello:hello` answers 200 `Hello, World!` (text/plain), as runicorn's
`builtin:hello`. `wsgi_hello:sleep` waits `?ms=N` (default 100) with
`time.sleep`, which Gunicorn's gevent worker monkey-patches into a cooperative
sleep, as runicorn's `builtin:sleep` uses the runtime-aware sleep.
"""

import time
from urllib.parse import parse_qs

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def hello(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


def sleep(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        ms = int(query.get("ms", ["100"])[0])
    except ValueError:
        ms = 100
    time.sleep(ms / 1000.0)
    start_response("200 OK", HEADERS)
    return [BODY]
