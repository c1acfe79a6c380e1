//! End-to-end tests of apps, hooks and worker classes loaded from shared
//! libraries (issue 7): the examples are built as cdylibs once per test run,
//! the C example with `cc`, and served by the real binary under every worker
//! class this build has. Every server binds 127.0.0.1:0 and is killed with
//! its process group when the test ends.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use runicorn_tests::client::Conn;
use runicorn_tests::examples::{c_examples, examples};
use runicorn_tests::proc;
use runicorn_tests::{deadline, get, runicorn_bin, wait_until, Launch, Server, Signal};

const LOCAL: &str = "127.0.0.1:0";

/// The worker classes this build has (`--check-config -k NAME` accepts).
fn classes() -> &'static [&'static str] {
    static CLASSES: OnceLock<Vec<&'static str>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        ["sync", "gthread", "green", "async"]
            .into_iter()
            .filter(|class| {
                Command::new(runicorn_bin())
                    .args(["--check-config", "-k", class, "builtin:hello"])
                    .env_remove("RUNICORN_CMD_ARGS")
                    .output()
                    .is_ok_and(|output| output.status.success())
            })
            .collect()
    })
}

fn serve(class: &str, app: &str, extra: &[&str]) -> Server {
    let mut args: Vec<String> = vec![
        "-k".into(),
        class.into(),
        "-b".into(),
        LOCAL.into(),
        "--app-path".into(),
    ];
    args.push(examples().display().to_string());
    args.push("--app-path".into());
    args.push(c_examples().display().to_string());
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(app.into());
    Server::start(args)
}

fn load_error(app: &str, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<String> = vec!["-b".into(), LOCAL.into(), "--app-path".into()];
    args.push(examples().display().to_string());
    args.push("--app-path".into());
    args.push(c_examples().display().to_string());
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(app.into());
    let exited = Launch::new(args).expect_exit(30.0);
    (exited.code(), exited.log)
}

#[test]
fn rust_examples_serve_under_every_class() {
    assert!(classes().contains(&"sync"), "the sync class must exist");
    for class in classes() {
        let server = serve(class, "hello:app", &[]);
        let response = get(server.addr(), "/").unwrap();
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "Hello, World!\n"),
            "{class}"
        );
        drop(server);

        let server = serve(class, "echo:app", &[]);
        let mut conn = Conn::connect(server.addr()).unwrap();
        let response = conn
            .request(
                "POST",
                "/",
                &[("Content-Type", "text/x-test"), ("Connection", "close")],
                b"ping pong",
            )
            .unwrap();
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "ping pong"),
            "{class}"
        );
        assert_eq!(
            response.header("content-type"),
            Some("text/x-test"),
            "{class}"
        );
        drop(server);

        let server = serve(class, "sleep:app", &[]);
        let response = get(server.addr(), "/?ms=20").unwrap();
        assert_eq!(response.text(), "slept 20 ms\n", "{class}");
        drop(server);

        let server = serve(
            class,
            "factory:create_app(greeting=Bonjour, name=\"le monde\")",
            &[],
        );
        let response = get(server.addr(), "/").unwrap();
        assert_eq!(response.text(), "Bonjour, le monde!\n", "{class}");
    }
}

#[test]
fn the_c_app_compiles_and_serves_under_every_class() {
    for class in classes() {
        let server = serve(class, "capp:app", &[]);
        let response = get(server.addr(), "/").unwrap();
        assert_eq!(response.status, 200, "{class}");
        assert!(
            response.text().starts_with("Hello from C, worker "),
            "{class}: {}",
            response.text()
        );
        assert!(
            response.text().contains(&format!("({class})")),
            "{class}: {}",
            response.text()
        );
        let mut conn = Conn::connect(server.addr()).unwrap();
        let response = conn
            .request("POST", "/", &[("Connection", "close")], b"from a C app")
            .unwrap();
        assert_eq!(response.text(), "from a C app", "{class}");

        // The connection facts through the C ABI: a trusted front end (the
        // default trusts loopback) sets the scheme and names the client.
        let mut conn = Conn::connect(server.addr()).unwrap();
        let response = conn
            .request(
                "GET",
                "/origin",
                &[
                    ("X-Forwarded-Proto", "https"),
                    ("X-Forwarded-For", "203.0.113.7"),
                ],
                b"",
            )
            .unwrap();
        let text = response.text();
        let server_addr = server.addr().tcp();
        assert!(
            text.starts_with(&format!(
                "scheme=https client=203.0.113.7 server={server_addr} peer=127.0.0.1:"
            )),
            "{class}: {text}"
        );
    }
}

#[test]
fn a_library_path_works_as_the_module() {
    let path = examples().join("libhello.so");
    let server = Server::start(["-b", LOCAL, &format!("{}:app", path.display())]);
    assert_eq!(get(server.addr(), "/").unwrap().text(), "Hello, World!\n");
    // Relative to --chdir too.
    let server = Server::start([
        "-b",
        LOCAL,
        "--chdir",
        &examples().display().to_string(),
        "./libhello.so:app",
    ]);
    assert_eq!(get(server.addr(), "/").unwrap().text(), "Hello, World!\n");
}

#[test]
fn loading_errors_keep_gunicorns_words_and_exit_4() {
    let (code, log) = load_error("hello:nope", &[]);
    assert_eq!(code, 4, "{log}");
    assert!(
        log.contains("Failed to find attribute 'nope' in 'hello'."),
        "{log}"
    );
    assert!(
        log.contains("'app' (an app)"),
        "the exported apps are listed: {log}"
    );

    let (code, log) = load_error("nosuchlib:app", &[]);
    assert_eq!(code, 4, "{log}");
    assert!(log.contains("No module named 'nosuchlib'"), "{log}");
    assert!(log.contains("libnosuchlib.so"), "where it looked: {log}");

    let (code, log) = load_error("future:app", &[]);
    assert_eq!(code, 4, "{log}");
    assert!(
        log.contains("ABI mismatch") && log.contains("v99") && log.contains("v1"),
        "{log}"
    );
    assert!(log.contains("rebuild"), "{log}");

    let (code, log) = load_error("capp:not_an_app", &[]);
    assert_eq!(code, 4, "{log}");
    assert!(log.contains("is not a runicorn app"), "{log}");

    let (code, log) = load_error("factory:create_app", &[]);
    assert_eq!(code, 4, "{log}");
    assert!(
        log.contains("is an app factory") && log.contains("create_app()"),
        "{log}"
    );

    let (code, log) = load_error("factory:create_app(colour=red)", &[]);
    assert_eq!(code, 4, "{log}");
    assert!(log.contains("unknown argument 'colour'"), "{log}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libjunk.so"), b"not an ELF file").unwrap();
    let (code, log) = load_error("junk:app", &["--chdir", &dir.path().display().to_string()]);
    assert_eq!(code, 4, "{log}");
    assert!(
        log.contains("cannot open") && log.contains("cdylib"),
        "{log}"
    );
}

#[test]
fn check_config_loads_the_app_as_a_worker_would() {
    let output = Command::new(runicorn_bin())
        .args(["--check-config", "--app-path"])
        .arg(examples())
        .arg("hello:nope")
        .env_remove("RUNICORN_CMD_ARGS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Gunicorn's --check-config exits 1 on any failure; the message is the
    // worker's own.
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("Failed to find attribute 'nope' in 'hello'."),
        "{stderr}"
    );
    let output = Command::new(runicorn_bin())
        .args(["--check-config", "--app-path"])
        .arg(examples())
        .arg("hello:app")
        .env_remove("RUNICORN_CMD_ARGS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_failing_or_panicking_init_worker_is_a_boot_failure_exit_3() {
    // With --preload the library opens in the master, but init_worker still
    // runs in each child after fork, so it fails the same way.
    for (mode, preload) in [("fail", false), ("panic", false), ("fail", true)] {
        let mut args = vec!["-b".to_owned(), LOCAL.to_owned(), "--app-path".to_owned()];
        args.push(examples().display().to_string());
        if preload {
            args.push("--preload".to_owned());
        }
        args.push("hello:app".to_owned());
        let exited = Launch::new(args).env("HELLO_INIT", mode).expect_exit(30.0);
        assert_eq!(
            exited.code(),
            3,
            "HELLO_INIT={mode} preload={preload}:\n{}",
            exited.log
        );
        assert!(
            exited.log.contains(&format!("HELLO_INIT={mode}")),
            "{}",
            exited.log
        );
    }
}

#[test]
fn a_panicking_handler_gets_500_and_the_worker_is_recycled() {
    for class in classes() {
        let server = serve(class, "hello:app", &["-w", "1"]);
        let before = server.wait_workers(1, 10.0);
        let response = get(server.addr(), "/panic").unwrap();
        assert_eq!(response.status, 500, "{class}");
        let recycled = wait_until(deadline(15.0), || {
            let now = server.worker_pids();
            now.len() == 1 && now != before
        });
        assert!(
            recycled,
            "{class}: worker {before:?} was not replaced:\n{}",
            server.log()
        );
        assert_eq!(get(server.addr(), "/").unwrap().status, 200, "{class}");
    }
}

fn maps_mention(pid: u32, needle: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|maps| maps.contains(needle))
}

#[test]
fn preload_opens_the_library_in_the_master_and_not_without() {
    let server = serve("sync", "hello:app", &["-w", "1"]);
    let workers = server.wait_workers(1, 10.0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    assert!(
        maps_mention(workers[0], "libhello.so"),
        "the worker maps the library"
    );
    assert!(
        !maps_mention(server.pid(), "libhello.so"),
        "without --preload the master never opens it"
    );
    drop(server);

    let server = serve("sync", "hello:app", &["-w", "1", "--preload"]);
    let workers = server.wait_workers(1, 10.0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    assert!(
        maps_mention(server.pid(), "libhello.so"),
        "--preload opens it in the master"
    );
    assert!(maps_mention(workers[0], "libhello.so"));
}

#[test]
fn hup_picks_up_a_library_replaced_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libswap.so");
    std::fs::copy(examples().join("libhello.so"), &live).unwrap();
    let server = Server::start([
        "-w",
        "1",
        "-b",
        LOCAL,
        "--chdir",
        &dir.path().display().to_string(),
        "swap:app",
    ]);
    assert_eq!(get(server.addr(), "/").unwrap().text(), "Hello, World!\n");
    // Never write over a mapped library: copy beside it, then rename over.
    let staged = dir.path().join("libswap.so.tmp");
    std::fs::copy(c_examples().join("libcapp.so"), &staged).unwrap();
    std::fs::rename(&staged, &live).unwrap();
    server.signal(Signal::SIGHUP);
    let switched = wait_until(deadline(20.0), || {
        get(server.addr(), "/").is_ok_and(|response| response.text().starts_with("Hello from C"))
    });
    assert!(
        switched,
        "HUP did not pick up the new library:\n{}",
        server.log()
    );
}

/// A tiny upstream: each connection reads one line, waits 300 ms, answers
/// `pong` and closes. It records how many connections it held at once.
struct Upstream {
    addr: SocketAddr,
    peak: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind(LOCAL).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let peak = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicUsize::new(0));
        let (peak_in, stop_in) = (peak.clone(), stop.clone());
        thread::spawn(move || {
            while !stop_in.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (current, peak) = (current.clone(), peak_in.clone());
                        thread::spawn(move || {
                            let now = current.fetch_add(1, Ordering::AcqRel) + 1;
                            peak.fetch_max(now, Ordering::AcqRel);
                            stream.set_nonblocking(false).unwrap();
                            let mut reader = BufReader::new(stream.try_clone().unwrap());
                            let mut line = String::new();
                            let _ = reader.read_line(&mut line);
                            thread::sleep(Duration::from_millis(300));
                            current.fetch_sub(1, Ordering::AcqRel);
                            let _ = (&stream).write_all(b"pong\n");
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Upstream { addr, peak, stop }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[test]
fn the_upstream_example_waits_through_the_host_under_every_class() {
    const CLIENTS: usize = 8;
    let mut figures = Vec::new();
    for class in classes() {
        let upstream = Upstream::start();
        // `--threads` above 1 would turn sync into gthread (Gunicorn's rule).
        let threads = if *class == "sync" { "1" } else { "4" };
        let server = serve(class, "upstream:app", &["-w", "1", "--threads", threads]);
        let addr = server.addr().clone();
        let path = format!("/?addr={}", upstream.addr);
        let started = std::time::Instant::now();
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (addr, path) = (addr.clone(), path.clone());
                thread::spawn(move || {
                    get(&addr, &path).map(|response| (response.status, response.text()))
                })
            })
            .collect();
        for handle in handles {
            let (status, text) = handle.join().unwrap().unwrap();
            assert_eq!((status, text.as_str()), (200, "pong\n"), "{class}");
        }
        let elapsed = started.elapsed();
        let peak = upstream.peak.load(Ordering::Acquire);
        figures.push(format!(
            "{class}: {CLIENTS} requests, peak {peak} upstream connections at once, {elapsed:?}"
        ));
        if *class == "sync" {
            assert_eq!(peak, 1, "sync serves one request at a time");
        } else {
            assert!(
                peak >= 2,
                "{class} should wait on the upstream concurrently, peak {peak}"
            );
        }
    }
    eprintln!(
        "upstream concurrency (1 worker, --threads 4 except sync, 300 ms upstream):\n  {}",
        figures.join("\n  ")
    );
}

#[test]
fn a_library_worker_class_serves_requests() {
    let path = examples().join("libcustom_worker.so");
    let server = Server::start([
        "-k",
        &format!("{}:Worker", path.display()),
        "-b",
        LOCAL,
        "builtin:hello",
    ]);
    let response = get(server.addr(), "/").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-worker-class"), Some("custom"));
    assert_eq!(response.text(), "Hello, World!");
    assert!(
        server.log().contains("Using worker: custom"),
        "{}",
        server.log()
    );
    // On the search path, serving a library app.
    let server = Server::start([
        "-k",
        "custom_worker:Worker",
        "--app-path",
        &examples().display().to_string(),
        "-b",
        LOCAL,
        "echo:app",
    ]);
    let mut conn = Conn::connect(server.addr()).unwrap();
    let response = conn
        .request("POST", "/", &[], b"through two libraries")
        .unwrap();
    assert_eq!(response.header("x-worker-class"), Some("custom"));
    assert_eq!(response.text(), "through two libraries");
}

#[test]
fn a_library_worker_class_recycles_after_a_panicking_app() {
    let path = examples().join("libcustom_worker.so");
    let server = Server::start([
        "-w",
        "1",
        "-k",
        &format!("{}:Worker", path.display()),
        "--app-path",
        &examples().display().to_string(),
        "-b",
        LOCAL,
        "hello:app",
    ]);
    let before = server.wait_workers(1, 10.0);
    assert_eq!(get(server.addr(), "/panic").unwrap().status, 500);
    let recycled = wait_until(deadline(15.0), || {
        let now = server.worker_pids();
        now.len() == 1 && now != before
    });
    assert!(
        recycled,
        "worker {before:?} was not replaced:\n{}",
        server.log()
    );
}

#[test]
fn an_unknown_class_lists_the_built_in_ones() {
    let exited = Launch::new(["-k", "gevnt", "-b", LOCAL, "builtin:hello"]).expect_exit(30.0);
    assert_eq!(exited.code(), 2, "{}", exited.log);
    assert!(exited.log.contains("sync"), "{}", exited.log);
    assert!(
        exited.log.contains("did you mean 'gevent'?"),
        "{}",
        exited.log
    );
    let exited = Launch::new([
        "-k",
        "./nowhere/libnope.so:Worker",
        "-b",
        LOCAL,
        "builtin:hello",
    ])
    .expect_exit(30.0);
    assert_ne!(exited.code(), 0);
    assert!(
        exited
            .log
            .contains("No module named './nowhere/libnope.so'"),
        "{}",
        exited.log
    );
}

#[test]
fn hooks_from_a_library_are_called_where_gunicorn_calls_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let config = dir.path().join("runicorn.toml");
    let mut text = String::new();
    for hook in [
        "on_starting",
        "when_ready",
        "pre_fork",
        "post_fork",
        "post_worker_init",
        "child_exit",
        "worker_exit",
        "nworkers_changed",
        "on_reload",
        "on_exit",
        "pre_request",
        "post_request",
    ] {
        text.push_str(&format!("{hook} = \"hooks:{hook}\"\n"));
    }
    std::fs::write(&config, text).unwrap();
    let mut server = Launch::new([
        "-c",
        &config.display().to_string(),
        "-w",
        "1",
        "--app-path",
        &examples().display().to_string(),
        "-b",
        LOCAL,
        "hooks:app",
    ])
    .env("HOOKS_LOG", &log)
    .start();
    assert_eq!(get(server.addr(), "/").unwrap().text(), "hooks\n");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    // when_ready runs once the first generation has booted.
    assert!(
        wait_until(deadline(10.0), || read().contains("when_ready")),
        "{}",
        read()
    );
    server.signal(Signal::SIGTERM);
    server
        .wait_exit(deadline(20.0))
        .expect("runicorn exits on TERM");
    let lines = read();
    let master = server.pid();
    for (hook, in_master) in [
        ("on_starting", true),
        ("when_ready", true),
        ("pre_fork", true),
        ("post_fork", false),
        ("post_worker_init", false),
        ("nworkers_changed", true),
        ("worker_exit", false),
        ("on_exit", true),
    ] {
        let line = lines
            .lines()
            .find(|line| line.starts_with(&format!("{hook} ")))
            .unwrap_or_else(|| panic!("{hook} was not called:\n{lines}"));
        let called_in_master = line.contains(&format!("pid={master} "));
        assert_eq!(called_in_master, in_master, "{hook}: {line}");
    }
    let order: Vec<&str> = lines
        .lines()
        .filter_map(|line| line.split(' ').next())
        .collect();
    let position = |hook: &str| order.iter().position(|name| *name == hook).unwrap();
    assert!(
        position("on_starting") < position("when_ready"),
        "{order:?}"
    );
    assert!(position("pre_fork") < position("post_fork"), "{order:?}");
    assert!(
        position("post_fork") < position("post_worker_init"),
        "{order:?}"
    );
    assert!(
        position("post_worker_init") < position("when_ready"),
        "{order:?}"
    );
    assert_eq!(order.last(), Some(&"on_exit"), "{order:?}");
    let pre = lines
        .lines()
        .find(|line| line.starts_with("pre_request "))
        .expect("pre_request was called");
    assert!(
        pre.contains("path=/") && !pre.contains(&format!("pid={master} ")),
        "{pre}"
    );
    let post = lines
        .lines()
        .find(|line| line.starts_with("post_request "))
        .expect("post_request was called");
    assert!(post.contains("status=200"), "{post}");
    let _ = proc::alive(master);
}

/// A config file naming `hooks` from the hooks example, in `dir`.
fn hooks_config(dir: &Path, hooks: &[&str]) -> PathBuf {
    let config = dir.join("runicorn.toml");
    let text: String = hooks
        .iter()
        .map(|hook| format!("{hook} = \"hooks:{hook}\"\n"))
        .collect();
    std::fs::write(&config, text).unwrap();
    config
}

/// `runicorn -c CONFIG --app-path EXAMPLES -b 127.0.0.1:0 EXTRA... APP`
/// with the hook lines going to `log`.
fn serve_with_hooks(config: &Path, log: &Path, extra: &[&str], app: &str) -> Launch {
    let mut args: Vec<String> = vec![
        "-c".into(),
        config.display().to_string(),
        "--app-path".into(),
        examples().display().to_string(),
        "-b".into(),
        LOCAL.into(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(app.into());
    Launch::new(args).env("HOOKS_LOG", log)
}

fn hook_line(log: &Path, hook: &str, pid: u32) -> Option<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(&format!("{hook} pid={pid} ")))
        .map(str::to_owned)
}

fn signal_pid(pid: u32, signal: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

#[test]
fn worker_int_runs_in_the_worker_then_it_exits_under_every_class() {
    for (index, class) in classes().iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("hooks.log");
        let config = hooks_config(dir.path(), &["worker_int"]);
        let server =
            serve_with_hooks(&config, &log, &["-k", class, "-w", "1"], "hooks:app").start();
        let worker = server.wait_workers(1, 20.0)[0];
        assert_eq!(get(server.addr(), "/").unwrap().text(), "hooks\n");
        // Gunicorn calls worker_int on INT and on QUIT: both, alternately.
        let signal = [Signal::SIGINT, Signal::SIGQUIT][index % 2];
        signal_pid(worker, signal);
        assert!(
            wait_until(deadline(10.0), || hook_line(&log, "worker_int", worker)
                .is_some()),
            "{class}: worker_int did not run in pid {worker}:\n{}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            server.log()
        );
        let line = hook_line(&log, "worker_int", worker).unwrap();
        assert!(
            line.contains(&format!("worker_pid={worker} ")),
            "{class}: {line}"
        );
        assert!(
            wait_until(deadline(10.0), || !server.worker_pids().contains(&worker)),
            "{class}: the worker did not exit after worker_int:\n{}",
            server.log()
        );
        // A quick stop after the hook: exit 0, no signal, and a new worker.
        let log_text = server.log();
        assert!(
            !log_text.contains(&format!("(pid:{worker}) exited with code"))
                && !log_text.contains(&format!("(pid:{worker}) was sent")),
            "{class}: {log_text}"
        );
        server.wait_workers(1, 20.0);
        assert_eq!(get(server.addr(), "/").unwrap().text(), "hooks\n");
    }
}

/// A request that sleeps past `-t 1` on a sync worker: the master's SIGABRT.
fn time_out_one_request(server: &Server) -> thread::JoinHandle<()> {
    let addr = server.addr().clone();
    thread::spawn(move || {
        // The worker dies under it: an error (or a 500) is the expected end.
        let _ = get(&addr, "/?ms=30000");
    })
}

#[test]
fn worker_abort_runs_on_the_timeout_then_the_worker_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    // Hooks from the hooks library, the app a built-in one that sleeps.
    let config = hooks_config(dir.path(), &["worker_abort"]);
    let args = ["-k", "sync", "-w", "1", "-t", "1"];
    let server = serve_with_hooks(&config, &log, &args, "builtin:sleep").start();
    let worker = server.wait_workers(1, 20.0)[0];
    let request = time_out_one_request(&server);
    server.expect_log(&format!("WORKER TIMEOUT (pid:{worker})"), 20.0);
    assert!(
        wait_until(deadline(10.0), || hook_line(&log, "worker_abort", worker)
            .is_some()),
        "worker_abort did not run in pid {worker}:\n{}",
        server.log()
    );
    server.expect_log(&format!("Worker (pid:{worker}) exited with code 1"), 10.0);
    assert!(!server.log().contains("SIGKILL"), "{}", server.log());
    request.join().unwrap();
    server.wait_workers(1, 20.0);
}

#[test]
fn without_worker_abort_a_timeout_exits_1_without_a_core_dump() {
    let server = Server::start([
        "-k",
        "sync",
        "-w",
        "1",
        "-t",
        "1",
        "-b",
        LOCAL,
        "builtin:sleep",
    ]);
    let worker = server.wait_workers(1, 20.0)[0];
    let request = time_out_one_request(&server);
    server.expect_log(&format!("Worker (pid:{worker}) exited with code 1"), 20.0);
    let log = server.log();
    assert!(
        !log.contains("SIGABRT!") && !log.contains("SIGKILL"),
        "{log}"
    );
    request.join().unwrap();
}

#[test]
fn a_hung_worker_int_still_dies_by_the_masters_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let config = hooks_config(dir.path(), &["worker_int", "worker_abort"]);
    let args = [
        "-k",
        "sync",
        "-w",
        "1",
        "-t",
        "1",
        "--graceful-timeout",
        "2",
    ];
    let mut server = serve_with_hooks(&config, &log, &args, "hooks:app")
        .env("HOOKS_HANG", "worker_int")
        .start();
    // INT to the worker: it stops serving, the hook hangs, the heartbeat
    // stops; SIGABRT finds the watcher busy, so the master's SIGKILL ends it.
    let worker = server.wait_workers(1, 20.0)[0];
    // Booted (its signal handling installed) once it has served a request.
    assert_eq!(get(server.addr(), "/").unwrap().text(), "hooks\n");
    signal_pid(worker, Signal::SIGINT);
    assert!(
        wait_until(deadline(10.0), || hook_line(&log, "worker_int", worker)
            .is_some()),
        "{}",
        server.log()
    );
    server.expect_log(
        &format!("Worker (pid:{worker}) was sent SIGKILL! (by the master"),
        20.0,
    );
    // INT to the master: QUIT to the new worker, whose hook hangs too; the
    // master kills it after --graceful-timeout and exits.
    let worker =
        wait_for_new_worker(&server, worker).expect("a new worker replaced the killed one");
    server.signal(Signal::SIGINT);
    assert!(
        wait_until(deadline(10.0), || hook_line(&log, "worker_int", worker)
            .is_some()),
        "{}",
        server.log()
    );
    assert!(
        server.wait_exit(deadline(20.0)).is_some(),
        "{}",
        server.log()
    );
    assert!(!proc::alive(worker), "worker {worker} outlived the master");
}

fn wait_for_new_worker(server: &Server, old: u32) -> Option<u32> {
    runicorn_tests::wait::wait_for(deadline(20.0), || {
        let pids = server.worker_pids();
        (pids.len() == 1 && pids[0] != old).then(|| pids[0])
    })
}
