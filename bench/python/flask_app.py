"""The Flask app of bench/python.sh.

- ``/``: hello, as Flask users write it.
- ``/wait``: a view that waits 50 ms on a socket, as a view waits on a
  database or an upstream: ``select`` on a socket that never becomes
  readable, with a 50 ms timeout. The wait releases the GIL (CPython) and
  yields to other greenlets under Gunicorn's gevent worker, which
  monkey-patches ``select`` (runicorn never patches).
"""

import select
import socket

from flask import Flask

app = Flask(__name__)

WAIT_S = 0.050


@app.route("/")
def hello():
    return "Hello, World!"


@app.route("/wait")
def wait():
    ours, theirs = socket.socketpair()
    try:
        ready, _, _ = select.select([ours], [], [], WAIT_S)
    finally:
        ours.close()
        theirs.close()
    return "waited" if not ready else "woken early"
