"""ASGI benchmark peers for uvicorn (never part of the product).

`asgi_hello:hello` answers 200 `Hello, World!` (text/plain), as runicorn's
`builtin:hello`; `asgi_hello:sleep` awaits `?ms=N` (default 100) first.
"""

import asyncio
from urllib.parse import parse_qs

BODY = b"Hello, World!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
RESPONSE = {"type": "http.response.body", "body": BODY}


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(START)
    await send(RESPONSE)


async def sleep(scope, receive, send):
    if scope["type"] != "http":
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        ms = int(query.get("ms", ["100"])[0])
    except ValueError:
        ms = 100
    await asyncio.sleep(ms / 1000.0)
    await send(START)
    await send(RESPONSE)
