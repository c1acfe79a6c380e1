//! Operating Python apps (issue 13): `--preload` with the interpreter made
//! fork-safe, the shared-connection trap named or solved by `post_fork`,
//! Gunicorn config files (`gunicorn.conf.py`: settings, hooks and the
//! objects hooks get), boot failures in hooks (exit 3), HUP rolling workers
//! onto an edited view, `WORKER TIMEOUT` naming a view stuck in Python, and
//! an app exception answered 500 while the worker keeps serving. The apps
//! are plain WSGI written into a temporary directory by each test (no
//! framework needed: the framework tests are in `python.rs`), served by the
//! base interpreter.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::Duration;

use runicorn_tests::{deadline, get, wait_until, Launch, Server, Signal};

const LOCAL: &str = "127.0.0.1:0";

/// A temporary app directory with `files` written into it.
fn app_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write app file");
    }
    dir
}

/// runicorn in `dir` (so the module is found there) with `args`.
fn launch(dir: &Path, args: &[&str]) -> Launch {
    Launch::new(args.iter().copied())
        .current_dir(dir)
        .env("VIRTUAL_ENV", "")
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

const HELLO: &str = r#"
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pid=%d" % os.getpid()]
"#;

/// An app that connects to `$DB_PORT` when imported (as a database client
/// would), unless a `post_fork` hook reconnects it; `/conn` answers the
/// connection's own local port, so two workers sharing one socket answer
/// the same port.
const DB_APP: &str = r#"
import os, socket

conn = None

def connect():
    global conn
    conn = socket.create_connection(("127.0.0.1", int(os.environ["DB_PORT"])))

connect()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % conn.getsockname()[1]]
"#;

/// Accepts connections forever (a stand-in database), keeping them open.
fn fake_database() -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(16).flatten() {
            held.push(stream);
        }
    });
    (port, handle)
}

/// The distinct answers to `path` from `server` over `tries` fresh connections.
fn answers(server: &Server, path: &str, tries: usize) -> std::collections::BTreeSet<String> {
    (0..tries)
        .filter_map(|_| get(server.addr(), path).ok())
        .map(|response| response.text())
        .collect()
}

#[test]
fn preload_imports_once_in_the_master_and_workers_serve_it() {
    let dir = app_dir(&[(
        "counted.py",
        r#"
import os
IMPORTED_IN = os.getpid()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %d" % (IMPORTED_IN, os.getpid())]
"#,
    )]);
    let server = launch(
        dir.path(),
        &["--preload", "-w", "2", "-b", LOCAL, "counted:app"],
    )
    .start();
    let workers = server.wait_workers(2, 20.0);
    let master = server.pid().to_string();
    let mut seen_workers = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let text = get(server.addr(), "/").expect("get").text();
        let (imported_in, served_by) = text.split_once(' ').expect("two pids");
        assert_eq!(
            imported_in, master,
            "the app was imported outside the master"
        );
        seen_workers.insert(served_by.to_owned());
    }
    for pid in &seen_workers {
        assert!(
            workers.iter().any(|w| w.to_string() == *pid),
            "{pid} is not a worker"
        );
    }
    // The master never started a thread (no Python thread, no runtime).
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .expect("master's tasks")
        .count();
    assert_eq!(threads, 1, "{}", server.log());
}

#[test]
fn a_connection_opened_at_preload_is_named_in_a_warning() {
    let (port, _db) = fake_database();
    let dir = app_dir(&[("dbapp.py", DB_APP)]);
    let server = launch(
        dir.path(),
        &["--preload", "-w", "2", "-b", LOCAL, "dbapp:app"],
    )
    .env("DB_PORT", port.to_string())
    .start();
    server.wait_workers(2, 20.0);
    let line = server.expect_log(
        "--preload: importing dbapp:app in the master opened a socket",
        10.0,
    );
    assert!(line.contains(&format!("-> 127.0.0.1:{port}")), "{line}");
    assert!(line.contains("post_fork"), "{line}");
    // And it is real: both workers answer over the one inherited socket.
    let ports = answers(&server, "/", 30);
    assert_eq!(
        ports.len(),
        1,
        "workers should share the master's socket: {ports:?}"
    );
}

#[test]
fn a_post_fork_hook_gives_each_worker_its_own_connection() {
    let (port, _db) = fake_database();
    let dir = app_dir(&[
        ("dbapp.py", DB_APP),
        (
            "gunicorn.conf.py",
            r#"
workers = 2
preload_app = True

def post_fork(server, worker):
    import dbapp
    dbapp.connect()
    server.log.info("reconnected in worker %s", worker.pid)
"#,
        ),
    ]);
    let server = launch(dir.path(), &["-b", LOCAL, "dbapp:app"])
        .env("DB_PORT", port.to_string())
        .start();
    let workers = server.wait_workers(2, 20.0);
    for pid in &workers {
        server.expect_log(&format!("reconnected in worker {pid}"), 10.0);
    }
    let reached = wait_until(deadline(10.0), || answers(&server, "/", 20).len() == 2);
    assert!(
        reached,
        "the two workers should have two connections:\n{}",
        server.log()
    );
}

#[test]
fn gunicorn_conf_py_is_read_from_the_working_directory() {
    let dir = app_dir(&[
        ("hello.py", HELLO),
        (
            "gunicorn.conf.py",
            r#"
import multiprocessing

# Gunicorn's sample shapes: defaults that ask for nothing, lists, hooks.
bind = "127.0.0.1:0"
backlog = 64
workers = min(2, multiprocessing.cpu_count())
worker_class = "sync"
worker_connections = 100
timeout = 30
keepalive = 2
spew = False
daemon = False
raw_env = ["SPAM=eggs"]
pidfile = None
umask = 0
user = None
group = None
tmp_upload_dir = None
errorlog = "-"
loglevel = "info"
proc_name = None
cpu = multiprocessing.cpu_count()   # not a setting: ignored, as Gunicorn does

def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s) age %s timeout %s", worker.pid, worker.age, server.cfg.timeout)

def pre_fork(server, worker):
    pass

def pre_exec(server):
    server.log.info("Forked child, re-executing.")

def when_ready(server):
    server.log.info("Server is ready. Spawning workers")

def worker_int(worker):
    import threading, sys, traceback
    names = dict((t.ident, t.name) for t in threading.enumerate())
    frames = sys._current_frames()
    worker.log.info("worker received INT or QUIT signal (%d threads)", len(frames))

def worker_abort(worker):
    worker.log.info("worker received SIGABRT signal")

def on_exit(server):
    server.log.info("on_exit from the config file")
"#,
        ),
    ]);
    let server = launch(dir.path(), &["hello:app"]).start();
    let workers = server.wait_workers(2, 20.0);
    server.expect_log("Server is ready. Spawning workers", 10.0);
    for pid in &workers {
        server.expect_log(&format!("Worker spawned (pid: {pid}) age"), 10.0);
    }
    assert!(server.log().contains("timeout 30"), "{}", server.log());
    assert!(get(server.addr(), "/")
        .expect("get")
        .text()
        .starts_with("pid="));
    // worker_int runs on INT, in the worker, with Python's view of it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0] as i32),
        Signal::SIGINT,
    )
    .expect("signal worker");
    server.expect_log("worker received INT or QUIT signal", 10.0);
}

#[test]
fn a_config_setting_runicorn_refuses_is_the_same_error_as_in_toml() {
    let dir = app_dir(&[
        ("hello.py", HELLO),
        ("gunicorn.conf.py", "paste = 'app.ini'\n"),
    ]);
    let exited = launch(dir.path(), &["-b", LOCAL, "hello:app"]).expect_exit(20.0);
    assert_eq!(exited.code(), 1, "{}", exited.log);
    assert!(exited.log.contains("paste"), "{}", exited.log);
    assert!(exited.log.contains("MODULE:VARIABLE"), "{}", exited.log);
    // A bad value is checked by the same table.
    std::fs::write(dir.path().join("gunicorn.conf.py"), "workers = 'many'\n").expect("write");
    let exited = launch(dir.path(), &["-b", LOCAL, "hello:app"]).expect_exit(20.0);
    assert_eq!(exited.code(), 1, "{}", exited.log);
    assert!(
        exited.log.contains("invalid value 'many' for workers"),
        "{}",
        exited.log
    );
    // A file that raises is one line naming its line and the exception.
    std::fs::write(
        dir.path().join("gunicorn.conf.py"),
        "workers = 2\nx = 1 / 0\n",
    )
    .expect("write");
    let exited = launch(dir.path(), &["-b", LOCAL, "hello:app"]).expect_exit(20.0);
    assert_eq!(exited.code(), 1, "{}", exited.log);
    assert!(
        exited
            .log
            .contains("line 2 raised ZeroDivisionError: division by zero"),
        "{}",
        exited.log
    );
}

#[test]
fn a_hook_attribute_runicorn_lacks_is_named() {
    let dir = app_dir(&[
        ("hello.py", HELLO),
        (
            "gunicorn.conf.py",
            r#"
def when_ready(server):
    server.log.info("arbiter pid %s", server.pid)
    server.no_such_thing
"#,
        ),
    ]);
    let server = launch(dir.path(), &["-b", LOCAL, "hello:app"]).start();
    server.wait_workers(1, 20.0);
    let line = server.expect_log("Exception in when_ready hook", 10.0);
    let log = server.log();
    assert!(
        log.contains(
            "AttributeError: runicorn's server (arbiter) has no attribute 'no_such_thing'"
        ),
        "{line}\n{log}"
    );
    assert!(
        log.contains(&format!("arbiter pid {}", server.pid())),
        "{log}"
    );
}

#[test]
fn an_exception_in_post_fork_or_post_worker_init_is_a_boot_failure() {
    for hook in ["post_fork(server, worker)", "post_worker_init(worker)"] {
        let dir = app_dir(&[
            ("hello.py", HELLO),
            (
                "gunicorn.conf.py",
                &format!("def {hook}:\n    raise RuntimeError('no database')\n"),
            ),
        ]);
        let exited = launch(dir.path(), &["-b", LOCAL, "hello:app"]).expect_exit(30.0);
        assert_eq!(exited.code(), 3, "{hook}: {}", exited.log);
        assert!(
            exited.log.contains("RuntimeError: no database"),
            "{}",
            exited.log
        );
        assert!(
            exited.log.contains("Worker failed to boot"),
            "{}",
            exited.log
        );
    }
}

#[test]
fn pre_and_post_request_hooks_see_gunicorns_objects() {
    let dir = app_dir(&[
        ("hello.py", HELLO),
        (
            "gunicorn.conf.py",
            r#"
def pre_request(worker, req):
    worker.log.info("pre %s %s %s", req.method, req.path, dict(req.headers).get("X-TAG"))

def post_request(worker, req, environ, resp):
    worker.log.info("post %s %s", req.path, resp.status)
"#,
        ),
    ]);
    for class in ["sync", "gthread", "green", "async"] {
        let server = launch(dir.path(), &["-k", class, "-b", LOCAL, "hello:app"]).start();
        server.wait_workers(1, 20.0);
        let mut conn = runicorn_tests::client::Conn::connect(server.addr()).expect("connect");
        conn.send(b"GET /hooked?x=1 HTTP/1.1\r\nHost: x\r\nX-Tag: t1\r\nConnection: close\r\n\r\n")
            .expect("send");
        let response = conn.read_response(false).expect("response");
        assert_eq!(response.status, 200);
        server.expect_log("pre GET /hooked t1", 10.0);
        server.expect_log("post /hooked 200 OK", 10.0);
    }
}

#[test]
fn hup_rolls_workers_onto_an_edited_view() {
    let dir = app_dir(&[(
        "view.py",
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'version one']\n",
    )]);
    let server = launch(dir.path(), &["-w", "2", "-b", LOCAL, "view:app"]).start();
    let before = server.wait_workers(2, 20.0);
    assert_eq!(get(server.addr(), "/").expect("get").text(), "version one");
    std::fs::write(
        dir.path().join("view.py"),
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'version two']\n",
    )
    .expect("edit the view");
    server.signal(Signal::SIGHUP);
    let rolled = wait_until(deadline(20.0), || {
        let now = server.worker_pids();
        now.len() == 2 && now.iter().all(|pid| !before.contains(pid))
    });
    assert!(rolled, "workers were not replaced:\n{}", server.log());
    for _ in 0..10 {
        assert_eq!(get(server.addr(), "/").expect("get").text(), "version two");
    }
}

#[test]
fn a_view_stuck_in_python_is_named_by_worker_timeout() {
    let dir = app_dir(&[(
        "stuck.py",
        r#"
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/stuck":
        while True:
            time.sleep(0.05)
    start_response("200 OK", [])
    return [b"ok"]
"#,
    )]);
    let server = launch(dir.path(), &["-t", "2", "-b", LOCAL, "stuck:app"]).start();
    let before = server.wait_workers(1, 20.0);
    let addr = server.addr().clone();
    let client = thread::spawn(move || {
        let mut conn = runicorn_tests::client::Conn::connect(&addr).expect("connect");
        conn.set_timeout(Duration::from_secs(20)).expect("timeout");
        conn.send(b"GET /stuck?view=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut rest = Vec::new();
        let _ = conn.read_to_end().map(|bytes| rest = bytes);
        rest
    });
    let line = server.expect_log("WORKER TIMEOUT", 20.0);
    assert!(line.contains("GET /stuck?view=1 HTTP/1.1"), "{line}");
    let _ = client.join();
    let replaced = wait_until(deadline(20.0), || {
        let now = server.worker_pids();
        now.len() == 1 && now != before
    });
    assert!(replaced, "{}", server.log());
    assert_eq!(get(server.addr(), "/").expect("get").text(), "ok");
}

#[test]
fn an_app_exception_is_a_500_with_the_traceback_and_the_worker_keeps_serving() {
    let dir = app_dir(&[(
        "boom.py",
        r#"
def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise KeyError("missing-thing")
    start_response("200 OK", [])
    return [b"fine"]
"#,
    )]);
    for class in ["sync", "gthread", "green", "async"] {
        let server = launch(dir.path(), &["-k", class, "-b", LOCAL, "boom:app"]).start();
        let workers = server.wait_workers(1, 20.0);
        assert_eq!(get(server.addr(), "/boom").expect("get").status, 500);
        let line = server.expect_log("Error handling request /boom", 10.0);
        let log = server.log();
        assert!(
            log.contains("Traceback (most recent call last)"),
            "{line}\n{log}"
        );
        assert!(log.contains("KeyError: 'missing-thing'"), "{log}");
        assert!(log.contains("boom.py\", line 4"), "{log}");
        assert_eq!(get(server.addr(), "/").expect("get").text(), "fine");
        assert_eq!(
            server.worker_pids(),
            workers,
            "{class}: the worker must keep serving"
        );
    }
}

#[test]
fn without_libpython_or_plugin_a_python_app_fails_in_one_line_and_native_apps_still_serve() {
    let dir = app_dir(&[("hello.py", HELLO)]);
    let missing = dir.path().join("no-such-plugin.so");
    let exited = launch(dir.path(), &["-b", LOCAL, "hello:app"])
        .env("RUNICORN_PYTHON_PLUGIN", &missing)
        .expect_exit(20.0);
    assert_eq!(exited.code(), 4, "{}", exited.log);
    assert!(
        exited.log.contains("No module named 'hello'"),
        "{}",
        exited.log
    );
    assert!(exited.log.contains("libhello.so"), "{}", exited.log);
    assert!(exited.log.contains("no-such-plugin.so"), "{}", exited.log);
    let server = launch(dir.path(), &["-b", LOCAL, "builtin:hello"])
        .env("RUNICORN_PYTHON_PLUGIN", &missing)
        .start();
    server.wait_workers(1, 20.0);
    let mut body = String::new();
    let mut stream = std::net::TcpStream::connect(server.addr().tcp()).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .and_then(|()| stream.read_to_string(&mut body))
        .expect("exchange");
    assert!(body.ends_with("Hello, World!"), "{body}");
}

#[test]
fn reload_watches_the_modules_the_app_imported() {
    let dir = app_dir(&[
        ("helper_mod.py", "GREETING = b'first'\n"),
        (
            "reloaded.py",
            "import helper_mod\n\ndef app(environ, start_response):\n    start_response('200 OK', [])\n    return [helper_mod.GREETING]\n",
        ),
    ]);
    let server = launch(dir.path(), &["--reload", "-b", LOCAL, "reloaded:app"]).start();
    let line = server.expect_log("the Python app's imported modules", 20.0);
    let watcher: u32 = line
        .split("Reload watcher (pid:")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .expect("the watcher's pid");
    let workers = || -> Vec<u32> {
        server
            .worker_pids()
            .into_iter()
            .filter(|pid| *pid != watcher)
            .collect()
    };
    assert!(
        wait_until(deadline(20.0), || workers().len() == 1),
        "{}",
        server.log()
    );
    let before = workers();
    assert_eq!(get(server.addr(), "/").expect("get").text(), "first");
    // The watcher learns the module list from the worker; give it a moment
    // to read it, then edit the imported helper (not the app's own file).
    let helper = dir.path().join("helper_mod.py");
    let edited = wait_until(deadline(60.0), || {
        std::fs::write(&helper, "GREETING = b'second'\n").expect("edit helper");
        server
            .wait_for_log("helper_mod.py changed", deadline(1.0))
            .is_some()
    });
    assert!(edited, "{}", server.log());
    let rolled = wait_until(deadline(60.0), || {
        let now = workers();
        now.len() == 1 && now != before
    });
    assert!(rolled, "{}", server.log());
    let served = wait_until(deadline(30.0), || {
        get(server.addr(), "/").is_ok_and(|response| response.text() == "second")
    });
    assert!(served, "{}", server.log());
}

#[test]
fn capture_output_sends_print_to_the_error_log_file() {
    let dir = app_dir(&[(
        "printer.py",
        "import sys\n\ndef app(environ, start_response):\n    print('printed by the app', flush=True)\n    sys.stderr.write('written to stderr\\n'); sys.stderr.flush()\n    start_response('200 OK', [])\n    return [b'ok']\n",
    )]);
    for capture in [true, false] {
        let log = dir.path().join(format!("error-{capture}.log"));
        let log_arg = log.display().to_string();
        let mut args = vec![
            "--error-logfile",
            log_arg.as_str(),
            "-b",
            LOCAL,
            "printer:app",
        ];
        if capture {
            args.insert(0, "--capture-output");
        }
        let server = launch(dir.path(), &args).log_file(&log).start();
        server.wait_workers(1, 20.0);
        assert_eq!(get(server.addr(), "/").expect("get").text(), "ok");
        let in_file = wait_until(deadline(5.0), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("printed by the app") && text.contains("written to stderr")
        });
        assert_eq!(
            in_file,
            capture,
            "capture={capture}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if !capture {
            assert!(
                server.stdout().contains("printed by the app"),
                "{}",
                server.stdout()
            );
        }
    }
}

/// PEP 3333's corners, one app: `exc_info`, `write()`, `close()` on every
/// path, a bad status, HEAD, generators chunked or close-delimited, and
/// `wsgi.input` failing loudly when the client leaves mid-body.
const PEP3333: &str = r#"
import os, sys

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.txt")

def note(text):
    with open(LOG, "a") as out:
        out.write(text + "\n")

class Closing:
    def __init__(self, name, chunks, fail_at=None):
        self.name, self.chunks, self.fail_at = name, chunks, fail_at
    def __iter__(self):
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise RuntimeError("failed while iterating")
            yield chunk
    def close(self):
        note("closed " + self.name)

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/exc_info":
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response("503 Service Unavailable", [("X-Second", "2")], sys.exc_info())
        return [b"replaced"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"from write, ")
        return [b"then iterable"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("stream", [b"one ", b"two ", b"three"])
    if path == "/fail-late":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("fail-late", [b"partial ", b"never"], fail_at=1)
    if path == "/bad-status":
        start_response("OK 200", [])
        return [b"x"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
        return [b"x"]
    if path == "/upload":
        try:
            data = environ["wsgi.input"].read()
            note("complete %d" % len(data))
        except Exception as exc:
            note("raised %s" % type(exc).__name__)
            raise
        start_response("200 OK", [])
        return [b"%d" % len(data)]
    if path == "/lines":
        body = environ["wsgi.input"]
        first = body.readline()
        limited = body.readline(3)
        rest = body.readlines()
        start_response("200 OK", [])
        return [repr((first, limited, rest)).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing("plain", [b"plain body"])
"#;

fn events(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("events.txt")).unwrap_or_default()
}

fn exchange(server: &Server, request: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(server.addr().tcp()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

#[test]
fn pep_3333_semantics_on_every_class() {
    for class in ["sync", "gthread", "green", "async"] {
        let dir = app_dir(&[("pep.py", PEP3333)]);
        let server = launch(dir.path(), &["-k", class, "-b", LOCAL, "pep:app"]).start();
        server.wait_workers(1, 20.0);
        let text = |path: &str, version: &str| {
            let request = format!("GET {path} {version}\r\nHost: x\r\nConnection: close\r\n\r\n");
            String::from_utf8_lossy(&exchange(&server, request.as_bytes())).into_owned()
        };

        let replaced = text("/exc_info", "HTTP/1.1");
        assert!(replaced.starts_with("HTTP/1.1 503"), "{class}: {replaced}");
        assert!(
            replaced.contains("X-Second: 2") && !replaced.contains("X-First"),
            "{replaced}"
        );
        assert!(replaced.ends_with("replaced"), "{replaced}");

        let twice = text("/twice", "HTTP/1.1");
        assert!(twice.starts_with("HTTP/1.1 500"), "{class}: {twice}");
        server.expect_log("AssertionError: Response headers already set!", 10.0);

        let written = text("/write", "HTTP/1.1");
        assert!(written.contains("from write, "), "{class}: {written}");
        assert!(written.contains("then iterable"), "{class}: {written}");

        // A generator is chunked on HTTP/1.1 and close-delimited on 1.0.
        let chunked = text("/stream", "HTTP/1.1");
        assert!(
            chunked
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{chunked}"
        );
        assert!(chunked.ends_with("0\r\n\r\n"), "{chunked}");
        let old = text("/stream", "HTTP/1.0");
        assert!(
            !old.to_ascii_lowercase().contains("transfer-encoding"),
            "{old}"
        );
        assert!(old.ends_with("one two three"), "{old}");

        // HEAD: the head of the GET, no body; close() still called.
        let head = text("/", "HTTP/1.1").replace("GET", "HEAD");
        let _ = head;
        let head = exchange(
            &server,
            b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.ends_with("\r\n\r\n"),
            "HEAD must not carry a body: {head}"
        );

        // An exception while iterating, after the head went out: the
        // connection is cut (no complete-looking response), close() runs.
        let late = text("/fail-late", "HTTP/1.1");
        assert!(
            !late.ends_with("0\r\n\r\n"),
            "{class}: a failed body must not look complete: {late}"
        );
        server.expect_log("RuntimeError: failed while iterating", 10.0);

        for bad in ["/bad-status", "/bad-header"] {
            let answer = text(bad, "HTTP/1.1");
            assert!(
                answer.starts_with("HTTP/1.1 500"),
                "{class} {bad}: {answer}"
            );
            assert!(!answer.contains("Injected"), "{answer}");
        }
        server.expect_log("Invalid HTTP status line: \"OK 200\"", 10.0);
        server.expect_log("Invalid response header value for \"X-Bad\"", 10.0);

        // The client leaves mid-body: read() raises, it never returns short.
        thread::sleep(Duration::from_millis(200));
        let errors_before = server.log_count("[ERROR]");
        let mut stream = std::net::TcpStream::connect(server.addr().tcp()).expect("connect");
        stream
            .write_all(
                b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nonly a little",
            )
            .expect("send");
        thread::sleep(Duration::from_millis(200));
        drop(stream);
        let raised = wait_until(deadline(10.0), || events(dir.path()).contains("raised"));
        assert!(raised, "{class}: {}\n{}", events(dir.path()), server.log());
        assert!(
            !events(dir.path()).contains("complete"),
            "{}",
            events(dir.path())
        );
        // The client's doing, not the app's: nothing at ERROR for it.
        thread::sleep(Duration::from_millis(200));
        assert_eq!(
            server.log_count("[ERROR]"),
            errors_before,
            "{class}: a client gone mid-body is not an app error:\n{}",
            server.log()
        );

        // readline, readline(size), readlines over a chunked body.
        let lines = exchange(
            &server,
            b"POST /lines HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              7\r\nfirst\nx\r\n9\r\nyzw\nlast\n\r\n0\r\n\r\n",
        );
        let lines = String::from_utf8_lossy(&lines);
        assert!(
            lines.ends_with("(b'first\\n', b'xyz', [b'w\\n', b'last\\n'])"),
            "{class}: {lines}"
        );

        let closed = wait_until(deadline(10.0), || {
            let log = events(dir.path());
            ["closed plain", "closed stream", "closed fail-late"]
                .iter()
                .all(|name| log.contains(name))
        });
        assert!(
            closed,
            "{class}: close() must run on every path: {}",
            events(dir.path())
        );
    }
}

/// A slow client never holds the GIL: while one request's view waits in
/// `wsgi.input.read()` for a body that is not coming yet, and another's
/// response is stuck behind a client that does not read, a third request's
/// Python view runs and answers. (Order, not timing: the fast answer must
/// arrive while both slow ones are still blocked.)
#[test]
fn a_slow_client_never_holds_the_gil() {
    let dir = app_dir(&[(
        "gil.py",
        r#"
def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/upload":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"got %d" % len(data)]
    if path == "/big":
        start_response("200 OK", [("Content-Length", str(64 * 1024 * 1024))])
        return [b"x" * (64 * 1024 * 1024)]
    start_response("200 OK", [])
    return [b"fast"]
"#,
    )]);
    // The async class splits --blocking-threads between its --threads
    // runtimes (each runtime has its own pool), so it runs with one runtime
    // here: with four, one free pool thread each, a request that lands on
    // the runtime whose thread is held waits (noted for the async class).
    let runs = [
        ("gthread", true, true),
        ("green", true, true),
        ("async", true, true),
    ];
    for (class, slow_upload, slow_reader) in runs {
        let server = launch(
            dir.path(),
            &[
                "-k",
                class,
                "--threads",
                if class == "async" { "1" } else { "4" },
                "--blocking-threads",
                "4",
                "-b",
                LOCAL,
                "gil:app",
            ],
        )
        .start();
        server.wait_workers(1, 20.0);
        // 1: a body that does not come.
        let mut upload = std::net::TcpStream::connect(server.addr().tcp()).expect("connect");
        if slow_upload {
            upload
                .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
                .expect("send head");
        }
        // 2: a response nobody reads (64 MB fills every socket buffer).
        let mut big = std::net::TcpStream::connect(server.addr().tcp()).expect("connect");
        if slow_reader {
            big.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
        }
        thread::sleep(Duration::from_millis(300));
        // 3: answered while the slow ones are blocked.
        let fast = get(server.addr(), "/")
            .unwrap_or_else(|err| panic!("{class}: {err}\n{}", server.log()));
        assert_eq!(fast.text(), "fast", "{class}");
        if slow_upload {
            // Now release the upload; it completes.
            upload.write_all(b"hello").expect("send body");
            upload
                .set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&answer).ends_with("got 5") {
                let read = upload.read(&mut buf).expect("read upload answer");
                assert!(read > 0, "{class}: {}", String::from_utf8_lossy(&answer));
                answer.extend_from_slice(&buf[..read]);
            }
        }
        drop(big);
    }
}

/// Every one of Gunicorn's 14 server hooks, defined in `gunicorn.conf.py`,
/// fires where Gunicorn fires it, with the objects it expects.
#[test]
fn every_server_hook_of_a_python_config_fires() {
    let dir = app_dir(&[
        (
            "slowish.py",
            "import time\n\ndef app(environ, start_response):\n    if environ['PATH_INFO'] == '/hang':\n        time.sleep(30)\n    start_response('200 OK', [])\n    return [b'ok']\n",
        ),
        (
            "gunicorn.conf.py",
            r#"
timeout = 2

def on_starting(server):
    server.log.info("hook on_starting master=%s workers=%s", server.pid, server.cfg.workers)

def on_reload(server):
    server.log.info("hook on_reload")

def when_ready(server):
    server.log.info("hook when_ready")

def pre_fork(server, worker):
    server.log.info("hook pre_fork age=%s", worker.age)

def post_fork(server, worker):
    server.log.info("hook post_fork pid=%s", worker.pid)

def post_worker_init(worker):
    worker.log.info("hook post_worker_init pid=%s", worker.pid)

def worker_int(worker):
    worker.log.info("hook worker_int pid=%s", worker.pid)

def worker_abort(worker):
    worker.log.info("hook worker_abort pid=%s", worker.pid)

def pre_request(worker, req):
    worker.log.info("hook pre_request %s %s", req.method, req.path)

def post_request(worker, req, environ, resp):
    worker.log.info("hook post_request %s %s", req.path, resp.status_code)

def child_exit(server, worker):
    server.log.info("hook child_exit pid=%s", worker.pid)

def worker_exit(server, worker):
    server.log.info("hook worker_exit pid=%s", worker.pid)

def nworkers_changed(server, new_value, old_value):
    server.log.info("hook nworkers_changed %s -> %s", old_value, new_value)

def on_exit(server):
    server.log.info("hook on_exit")
"#,
        ),
    ]);
    let mut server = launch(dir.path(), &["-b", LOCAL, "slowish:app"]).start();
    let first = server.wait_workers(1, 20.0)[0];
    server.expect_log(
        &format!("hook on_starting master={} workers=1", server.pid()),
        10.0,
    );
    server.expect_log("hook when_ready", 10.0);
    server.expect_log("hook nworkers_changed None -> 1", 10.0);
    server.expect_log("hook pre_fork age=1", 10.0);
    server.expect_log(&format!("hook post_fork pid={first}"), 10.0);
    server.expect_log(&format!("hook post_worker_init pid={first}"), 10.0);
    assert_eq!(get(server.addr(), "/x").expect("get").status, 200);
    server.expect_log("hook pre_request GET /x", 10.0);
    server.expect_log("hook post_request /x 200", 10.0);
    // A hung request: the master's SIGABRT runs worker_abort.
    let addr = server.addr().clone();
    let hung = thread::spawn(move || get(&addr, "/hang"));
    server.expect_log(&format!("hook worker_abort pid={first}"), 20.0);
    server.expect_log(&format!("hook child_exit pid={first}"), 20.0);
    let _ = hung.join();
    // TTIN: one more worker.
    server.signal(Signal::SIGTTIN);
    server.expect_log("hook nworkers_changed 1 -> 2", 10.0);
    let workers = server.wait_workers(2, 20.0);
    // Once post_worker_init ran, its signal handling is installed.
    server.expect_log(&format!("hook post_worker_init pid={}", workers[0]), 20.0);
    // INT to one worker: worker_int, then it exits (and is replaced).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0] as i32),
        Signal::SIGINT,
    )
    .expect("signal worker");
    server.expect_log(&format!("hook worker_int pid={}", workers[0]), 10.0);
    // HUP re-reads the config, whose worker count (1) replaces the one TTIN
    // raised (as Gunicorn's reload does): one worker of the new generation.
    // (Waiting for two raced the old generation's exit.)
    server.signal(Signal::SIGHUP);
    server.expect_log("hook on_reload", 10.0);
    server.expect_log("hook nworkers_changed 2 -> 1", 10.0);
    server.expect_log("Reload complete", 20.0);
    server.wait_workers(1, 20.0);
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(deadline(20.0));
    assert!(status.is_some(), "{}", server.log());
    let log = server.log();
    assert!(log.contains("hook worker_exit pid="), "{log}");
    assert!(log.contains("hook on_exit"), "{log}");
}

/// A machine without the libpython the plugin was built against: the
/// plugin cannot open, a Python app fails with one line that says why, and
/// native apps are unaffected. Simulated with a stand-in plugin linked
/// against a library that is then removed.
#[test]
fn a_plugin_whose_libpython_is_missing_fails_with_the_reason() {
    let dir = app_dir(&[
        ("hello.py", HELLO),
        ("stub.c", "int stub(void) { return 0; }\n"),
    ]);
    let build = |args: &[&str]| {
        let status = std::process::Command::new("cc")
            .args(args)
            .current_dir(dir.path())
            .status()
            .expect("cc is needed for this test");
        assert!(status.success(), "cc {args:?}");
    };
    build(&["-shared", "-fPIC", "-o", "libpython9.99.so", "stub.c"]);
    build(&[
        "-shared",
        "-fPIC",
        "-o",
        "librunicorn_python.so",
        "stub.c",
        "-L.",
        "-Wl,--no-as-needed",
        "-lpython9.99",
    ]);
    std::fs::remove_file(dir.path().join("libpython9.99.so"))
        .expect("remove the stand-in libpython");
    let plugin = dir.path().join("librunicorn_python.so");
    let exited = launch(dir.path(), &["-b", LOCAL, "hello:app"])
        .env("RUNICORN_PYTHON_PLUGIN", &plugin)
        .expect_exit(20.0);
    assert_eq!(exited.code(), 4, "{}", exited.log);
    assert!(exited.log.contains("libpython9.99.so"), "{}", exited.log);
    assert!(
        exited.log.contains("cannot load runicorn's Python support"),
        "{}",
        exited.log
    );
    let server = launch(dir.path(), &["-b", LOCAL, "builtin:hello"])
        .env("RUNICORN_PYTHON_PLUGIN", &plugin)
        .start();
    server.wait_workers(1, 20.0);
    assert_eq!(
        get(server.addr(), "/").expect("get").text(),
        "Hello, World!"
    );
}

/// A slow boot (an app that takes 1.5 s to import): the master logs each
/// worker's boot time when its first heartbeat arrives, and `when_ready`
/// runs only once every worker of the first generation has booted, after
/// their boot lines (Gunicorn runs it before forking).
#[test]
fn when_ready_runs_after_every_worker_booted() {
    let dir = app_dir(&[
        ("slowboot.py", &format!("import time\ntime.sleep(1.5)\n{HELLO}")),
        (
            "gunicorn.conf.py",
            "def when_ready(server):\n    server.log.info(\"hook when_ready workers=%s\", server.cfg.workers)\n",
        ),
    ]);
    let server = launch(dir.path(), &["-b", LOCAL, "-w", "3", "slowboot:app"]).start();
    server.expect_log("hook when_ready workers=3", 30.0);
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    let ready_at = lines
        .iter()
        .position(|line| line.contains("hook when_ready"))
        .expect("when_ready ran");
    let ready_line = lines
        .iter()
        .position(|line| line.contains("[INFO] Ready: 3 workers booted in "))
        .unwrap_or_else(|| panic!("no Ready line:\n{log}"));
    assert!(ready_line < ready_at, "{log}");
    let booted: Vec<(usize, f64)> = lines
        .iter()
        .enumerate()
        .filter_map(|(index, line)| {
            let (_, rest) = line.split_once(") booted in ")?;
            Some((index, rest.trim_end_matches('s').parse::<f64>().ok()?))
        })
        .collect();
    assert_eq!(booted.len(), 3, "{log}");
    for (index, seconds) in booted {
        assert!(index < ready_line, "a boot line after Ready:\n{log}");
        // The import alone sleeps 1.5 s: the time is the app's load, not
        // the fork's (a lower bound, which load only makes larger).
        assert!(seconds >= 1.4, "booted in {seconds}s:\n{log}");
    }
    for worker in server.worker_pids() {
        assert!(
            lines[..ready_at]
                .iter()
                .any(|line| line.contains(&format!("Worker (pid:{worker}) booted in "))),
            "{worker} booted after when_ready:\n{log}"
        );
    }
}
