"""runicorn's Python side: what is simpler in Python than in Rust and off the
request path. Importing an app by Gunicorn's rules, executing a Gunicorn
config file, and calling its hooks with the objects hooks expect.

The request path (environ, wsgi.input, start_response, the response loop)
is in Rust (python/src/wsgi). This module is compiled into the plugin and
imported as ``_runicorn`` once per process.
"""

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
import traceback

# Set by the plugin at start: log(level, message), levels 0..4 =
# debug, info, warning, error, critical.
_log = None
# The settings in force (Gunicorn's names), as the cli resolved them.
_settings = {}
# The config file's hook functions, by name.
_hooks = {}

HOOK_NAMES = (
    "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork",
    "post_worker_init", "worker_int", "worker_abort", "pre_exec",
    "pre_request", "post_request", "child_exit", "worker_exit",
    "nworkers_changed", "on_exit", "ssl_context",
)


class AppImportError(ImportError):
    """The module imported but the app in it could not be had (Gunicorn's
    AppImportError): logged without a traceback."""


class ModuleMissing(ImportError):
    """The module itself does not exist."""


class FileWrapper:
    """``wsgi.file_wrapper``: iterating reads blocks; when the server sees
    one whose file has a descriptor, it sends the file with sendfile."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __getitem__(self, key):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise IndexError

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


def _called_with_wrong_args(f):
    """Whether calling ``f`` raised TypeError because of its arguments
    (the traceback ends in the caller), as Gunicorn and Flask tell."""
    tb = sys.exc_info()[2]
    try:
        while tb is not None:
            if tb.tb_frame.f_code is f.__code__:
                return False
            tb = tb.tb_next
        return True
    except AttributeError:
        return True
    finally:
        del tb


def add_paths(pythonpath, cwd):
    """Gunicorn's import path: the --pythonpath directories, then the
    current directory in front of them."""
    for path in reversed([p for p in pythonpath if p]):
        path = os.path.abspath(path)
        if path not in sys.path:
            sys.path.insert(0, path)
    cwd = os.path.abspath(cwd)
    if cwd in sys.path:
        sys.path.remove(cwd)
    sys.path.insert(0, cwd)


def import_app(spec):
    """Gunicorn's ``util.import_app``: ``module``, ``module:name`` or
    ``module:factory(literal args)``."""
    parts = spec.split(":", 1)
    if len(parts) == 1:
        module, obj = spec, "application"
    else:
        module, obj = parts[0], parts[1]

    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        missing = getattr(e, "name", None)
        if isinstance(e, ModuleNotFoundError) and missing is not None and (
                module == missing or module.startswith(missing + ".")):
            if module.endswith(".py") and os.path.exists(module):
                raise AppImportError(
                    "Failed to find application, did you mean '%s:%s'?"
                    % (module.rsplit(".", 1)[0], obj))
            raise ModuleMissing("No module named %r" % module) from None
        raise

    try:
        expression = ast.parse(obj, mode="eval").body
    except SyntaxError:
        raise AppImportError(
            "Failed to parse %r as an attribute name or function call." % obj)

    if isinstance(expression, ast.Name):
        name = expression.id
        args = kwargs = None
    elif isinstance(expression, ast.Call):
        if not isinstance(expression.func, ast.Name):
            raise AppImportError("Function reference must be a simple name: %r" % obj)
        name = expression.func.id
        try:
            args = [ast.literal_eval(arg) for arg in expression.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in expression.keywords}
        except ValueError:
            raise AppImportError("Failed to parse arguments as literal values: %r" % obj)
    else:
        raise AppImportError(
            "Failed to parse %r as an attribute name or function call." % obj)

    try:
        app = getattr(mod, name)
    except AttributeError:
        raise AppImportError("Failed to find attribute %r in %r." % (name, module))

    if args is not None:
        try:
            app = app(*args, **kwargs)
        except TypeError as e:
            if _called_with_wrong_args(app):
                raise AppImportError(
                    "".join(traceback.format_exception_only(TypeError, e)).strip())
            raise

    if app is None:
        raise AppImportError("Failed to find application object: %r" % obj)
    if not callable(app):
        raise AppImportError(
            "Application object must be callable: %r in %r is a %s."
            % (name, module, type(app).__name__))
    return app


def module_files():
    """The files of every imported module, for --reload."""
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and os.path.isfile(path):
            files.append(os.path.abspath(path))
    return sorted(set(files))


def write_module_files(path):
    """Write the imported modules' files, one a line, for the --reload
    watcher (atomically: it reads the file when it changes)."""
    tmp = "%s.%d" % (path, os.getpid())
    with open(tmp, "w") as out:
        out.write("\n".join(module_files()) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- config


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def load_config(path):
    """Execute a Gunicorn config file as Gunicorn does (as module
    ``__config__``); return its settings (module-level names with plain
    values) and the names of the hooks it defines, as JSON."""
    if not os.path.exists(path):
        raise RuntimeError("%r doesn't exist" % path)
    name = "__config__"
    ext = os.path.splitext(path)[1]
    if ext in (".py", ".pyc"):
        spec = importlib.util.spec_from_file_location(name, path)
    else:
        loader = importlib.machinery.SourceFileLoader(name, path)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)

    settings = {}
    hooks = []
    unsupported = {}
    new_hooks = {}
    for key, value in vars(mod).items():
        if key.startswith("_") or inspect.ismodule(value):
            continue
        if key in HOOK_NAMES and callable(value):
            new_hooks[key] = value
            hooks.append(key)
        elif _jsonable(value):
            settings[key] = list(value) if isinstance(value, tuple) else value
        elif not callable(value) and not inspect.isclass(value):
            unsupported[key] = type(value).__name__
    _hooks.clear()
    _hooks.update(new_hooks)
    return json.dumps({"settings": settings, "hooks": hooks, "unsupported": unsupported})


# ---------------------------------------------------------------- hooks


class _Log:
    """``server.log`` / ``worker.log``: Gunicorn's logger methods, writing
    to runicorn's error log."""

    def _emit(self, level, msg, args):
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = "%s %r" % (msg, args)
        if _log is not None:
            _log(level, str(msg))

    def debug(self, msg, *args, **kwargs):
        self._emit(0, msg, args)

    def info(self, msg, *args, **kwargs):
        self._emit(1, msg, args)

    def warning(self, msg, *args, **kwargs):
        self._emit(2, msg, args)

    warn = warning

    def error(self, msg, *args, **kwargs):
        self._emit(3, msg, args)

    def critical(self, msg, *args, **kwargs):
        self._emit(4, msg, args)

    def exception(self, msg, *args, **kwargs):
        self._emit(3, str(msg) + "\n" + traceback.format_exc().rstrip(), args)

    def log(self, lvl, msg, *args, **kwargs):
        import logging
        level = {logging.DEBUG: 0, logging.INFO: 1, logging.WARNING: 2,
                 logging.ERROR: 3, logging.CRITICAL: 4}.get(lvl, 1)
        self._emit(level, msg, args)


LOG = _Log()


class _Strict:
    """An object whose missing attributes say what runicorn does not offer."""

    _what = "object"

    def __getattr__(self, name):
        raise AttributeError(
            "runicorn's %s has no attribute %r (runicorn offers: %s)"
            % (self._what, name, ", ".join(sorted(k for k in self.__dict__ if not k.startswith("_")))))


class Config(_Strict):
    """``server.cfg``: every setting under Gunicorn's name."""

    _what = "server.cfg"

    def __init__(self, settings):
        self.__dict__.update(settings)

    @property
    def settings(self):
        return dict((k, v) for k, v in self.__dict__.items() if not k.startswith("_"))


class Arbiter(_Strict):
    """What Gunicorn's hooks get as ``server`` (the arbiter)."""

    _what = "server (arbiter)"

    def __init__(self, context):
        self.pid = context.get("master_pid", os.getpid())
        self.cfg = Config(_settings)
        self.log = LOG
        self.num_workers = context.get("num_workers", 0)
        self.app = None
        self.LISTENERS = []
        self.WORKERS = {}


class Worker(_Strict):
    """What Gunicorn's hooks get as ``worker``."""

    _what = "worker"

    def __init__(self, context):
        worker = context.get("worker") or {}
        self.pid = worker.get("pid", os.getpid())
        self.ppid = context.get("master_pid", os.getppid())
        self.age = worker.get("age", 0)
        self.booted = True
        self.alive = True
        self.aborted = False
        self.cfg = Config(_settings)
        self.log = LOG
        self.exitcode = worker.get("exit_code")
        self.timeout = _settings.get("timeout")
        self.nr = worker.get("requests", 0)
        self.max_requests = _settings.get("max_requests")


def call_hook(name, context_json):
    """Call the config file's hook ``name`` with Gunicorn's arguments."""
    hook = _hooks.get(name)
    if hook is None:
        return
    context = json.loads(context_json) if context_json else {}
    if name in ("on_starting", "on_reload", "when_ready", "on_exit"):
        hook(Arbiter(context))
    elif name in ("pre_fork", "post_fork", "child_exit", "worker_exit"):
        hook(Arbiter(context), Worker(context))
    elif name in ("post_worker_init", "worker_int", "worker_abort"):
        hook(Worker(context))
    elif name == "nworkers_changed":
        hook(Arbiter(context), context.get("new_value"), context.get("old_value"))
    elif name == "pre_exec":
        hook(Arbiter(context))
    else:
        raise RuntimeError("runicorn cannot call the %r hook from here" % name)


def request_hooks():
    """The config file's ``pre_request`` and ``post_request``, or None."""
    return _hooks.get("pre_request"), _hooks.get("post_request")


class Request(_Strict):
    """``req`` in ``pre_request``/``post_request``: Gunicorn's request
    attributes."""

    _what = "request"

    def __init__(self, environ):
        self.method = environ.get("REQUEST_METHOD")
        self.uri = environ.get("RAW_URI")
        self.path = environ.get("PATH_INFO")
        self.query = environ.get("QUERY_STRING")
        self.version = (1, 0) if environ.get("SERVER_PROTOCOL") == "HTTP/1.0" else (1, 1)
        self.scheme = environ.get("wsgi.url_scheme")
        self.headers = [
            (key[5:].replace("_", "-"), value)
            for key, value in environ.items() if key.startswith("HTTP_")
        ]
        if "CONTENT_TYPE" in environ:
            self.headers.append(("CONTENT-TYPE", environ["CONTENT_TYPE"]))
        if "CONTENT_LENGTH" in environ:
            self.headers.append(("CONTENT-LENGTH", environ["CONTENT_LENGTH"]))
        self.peer_addr = (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))
        self.remote_addr = self.peer_addr


class Response(_Strict):
    """``resp`` in ``post_request``."""

    _what = "response"

    def __init__(self, status, headers, sent):
        self.status = status
        self.status_code = int(status.split(" ", 1)[0]) if status else None
        self.headers = headers
        self.sent = sent
        self.headers_sent = True


def set_log(log):
    global _log
    _log = log


def set_settings(settings_json):
    global _settings
    _settings = json.loads(settings_json) if settings_json else {}
