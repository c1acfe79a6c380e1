"""Answers with the WSGI environ in JSON, to compare servers.

Every value that is a str, int, bool or tuple is given as is; any other
value (wsgi.input, wsgi.errors, wsgi.file_wrapper, ...) as "<callable>" or
"<object>", so that the key sets compare too. wsgi.input is read to its
end: "wsgi.input:length" and "wsgi.input:sha256" describe what it gave.

    runicorn --chdir examples/python environ_dump:app
    gunicorn --chdir examples/python environ_dump:app
"""

import hashlib
import json


def describe(value):
    if isinstance(value, (str, int, bool, tuple)):
        return value
    return "<callable>" if callable(value) else "<object>"


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    dump = {key: describe(value) for key, value in environ.items()}
    dump["wsgi.input:length"] = len(body)
    dump["wsgi.input:sha256"] = hashlib.sha256(body).hexdigest()
    answer = json.dumps(dump, sort_keys=True).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))],
    )
    return [answer]
