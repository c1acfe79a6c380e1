"""Plain WSGI callables, no framework.

    runicorn --chdir examples/python hello:app    # Hello, World!
    runicorn --chdir examples/python hello:echo   # the request described in JSON
    runicorn --chdir examples/python hello:hints  # 103 Early Hints, then the answer
"""

import base64
import json


def app(environ, start_response):
    body = b"Hello, World!"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def echo(environ, start_response):
    """builtin:echo's answer: the method, path, query and body (base64)."""
    body = environ["wsgi.input"].read()
    answer = json.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "body_b64": base64.b64encode(body).decode("ascii"),
        }
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))],
    )
    return [answer]


def hints(environ, start_response):
    """Sends 103 Early Hints (wsgi.early_hints, Gunicorn's extension) before
    its answer; an HTTP/1.0 client gets only the answer."""
    early_hints = environ["wsgi.early_hints"]
    early_hints([("Link", "</style.css>; rel=preload; as=style")])
    early_hints([(b"Link", b"</app.js>; rel=preload; as=script")])
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"hinted"
        # Too late once the head has gone out: ignored, as Gunicorn does.
        early_hints([("Link", "</late.css>; rel=preload")])

    return body()
