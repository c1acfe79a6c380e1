"""A Flask app for runicorn's end-to-end tests and the README's quick start.

    runicorn --chdir examples/python flaskapp:app
    runicorn --chdir examples/python "flaskapp:create_app('x', debug=True)"

Routes: ``/`` (hello), ``/json`` (GET: a document; POST: the JSON body
echoed), ``/form`` (a urlencoded POST), ``/upload`` (a multipart file,
streamed to disk, answered with its size and sha256), ``/stream`` (a
generator response), ``/file`` (``send_file`` of a real file), ``/boom``
(raises ZeroDivisionError), ``/sleep?ms=N`` (``time.sleep``), ``/config``
(the factory's arguments), ``/prefix`` (``sys.prefix``: the virtual
environment the interpreter runs in).
"""

import hashlib
import os
import sys
import tempfile
import time

from flask import Flask, Response, jsonify, request, send_file

HERE = os.path.dirname(os.path.abspath(__file__))
# A real file for send_file (served through wsgi.file_wrapper).
SAMPLE = os.path.join(HERE, "static", "sample.txt")
CHUNK = 1 << 20


def create_app(name="flaskapp", debug=False):
    app = Flask(name)
    app.config["DEBUG"] = debug
    # Uploads of any size: the body is streamed, never held in memory.
    app.config["MAX_CONTENT_LENGTH"] = None

    @app.get("/")
    def index():
        return "Hello from Flask!\n"

    @app.get("/config")
    def config():
        return jsonify(name=app.name, debug=app.debug)

    @app.get("/json")
    def json_get():
        return jsonify(ok=True, items=[1, 2, 3], text="h\u00e9llo")

    @app.post("/json")
    def json_post():
        return jsonify(received=request.get_json(), method=request.method)

    @app.post("/form")
    def form():
        return jsonify(
            {key: request.form.getlist(key) for key in request.form.keys()}
        )

    @app.post("/upload")
    def upload():
        # Werkzeug spools a large part to a temporary file while parsing;
        # the view then copies it to disk a chunk at a time, hashing as it
        # goes, so no step holds the file in memory.
        stored = request.files["file"]
        digest = hashlib.sha256()
        size = 0
        with tempfile.NamedTemporaryFile(prefix="runicorn-upload-") as out:
            while True:
                chunk = stored.stream.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            on_disk = os.fstat(out.fileno()).st_size
        return jsonify(
            filename=stored.filename,
            size=size,
            on_disk=on_disk,
            sha256=digest.hexdigest(),
            fields=request.form.to_dict(),
        )

    @app.get("/stream")
    def stream():
        count = request.args.get("n", 5, type=int)

        def lines():
            for index in range(count):
                yield "line %d\n" % index

        return Response(lines(), mimetype="text/plain")

    @app.get("/file")
    def file():
        return send_file(SAMPLE, mimetype="text/plain")

    @app.get("/boom")
    def boom():
        return str(1 / 0)

    @app.get("/sleep")
    def sleep():
        ms = request.args.get("ms", 100, type=int)
        time.sleep(ms / 1000)
        return "slept %d ms\n" % ms

    @app.get("/prefix")
    def prefix():
        return sys.prefix

    return app


app = create_app()
