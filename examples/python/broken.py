"""An app whose import fails: the server must exit 4 ("App failed to load")
and log this module's traceback.

    runicorn --chdir examples/python broken:app
"""

SETTINGS = {"answer": 42}


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"never served\n"]


raise RuntimeError("broken on purpose: the import of %s fails" % __name__)
