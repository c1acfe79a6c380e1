//! The scenarios every worker class must pass, as one matrix: each scenario
//! below runs under each class of `runicorn_tests::class_matrix!`, as a test of its own
//! named `CLASS::SCENARIO` (`cargo test --test classes -- green::` runs one
//! class, `-- ::keep_alive` one scenario everywhere).
//!
//! A class added to the matrix (and `Class::ALL`) gets every scenario, and
//! `the_matrix_lists_every_class` fails until `Class::ALL` and the matrix
//! agree. A scenario written here but left out of the list is dead code,
//! which the build refuses (`-D warnings`). What a scenario must know of a
//! class (its threads, whether it keeps connections alive, what hangs it)
//! is in [`Setup`]; what only one class does stays in that class's file
//! (`sync.rs`, `gthread.rs`, `green.rs`, `async.rs`).

use runicorn_tests::scenario::{self, answered_then_closed};
use runicorn_tests::{get, Class, Conn, Server};

/// What the scenarios need to know about a class.
struct Setup {
    /// Added to every server of the class (its threads).
    extra: &'static [&'static str],
    /// Whether it keeps connections alive (the sync worker closes each
    /// connection after one response, as Gunicorn's does).
    keeps_alive: bool,
    /// How many requests one worker has in flight at once for the TERM
    /// scenario.
    in_flight: usize,
    /// Fifty requests in flight on kept-alive connections (four for the
    /// sync class, on fresh ones): the server's arguments and the count.
    many_in_flight: (&'static [&'static str], usize),
    /// How many requests four workers (with `extra`) run at once.
    four_workers_hold: usize,
    /// What makes the class miss its heartbeat.
    hang: Hang,
}

/// A request that hangs a worker of the class past `-t`.
struct Hang {
    /// Added to the class's `extra` (the timeout, threads).
    extra: &'static [&'static str],
    /// The app and the path that never ends in time.
    app: &'static str,
    path: &'static str,
    /// A quick request to the same app, for the replacement worker.
    quick: &'static str,
    /// How long the master may take to name it.
    secs: f64,
    /// The binary that serves `app`, when not `runicorn` itself.
    program: Option<&'static str>,
}

fn setup(class: Class) -> Setup {
    match class {
        Class::Sync => Setup {
            extra: &[],
            keeps_alive: false,
            in_flight: 1,
            many_in_flight: (&["-w", "4"], 4),
            four_workers_hold: 4,
            hang: Hang {
                extra: &["-t", "1"],
                app: "builtin:sleep",
                path: "/?ms=3000",
                quick: "/?ms=0",
                secs: 10.0,
                program: None,
            },
        },
        Class::Gthread => Setup {
            extra: &["--threads", "4"],
            keeps_alive: true,
            in_flight: 3,
            many_in_flight: (&["-w", "2", "--threads", "25"], 50),
            four_workers_hold: 16,
            hang: Hang {
                // A sleeping pool thread: the poller beats on, the request's
                // own age past --timeout retires the worker, which leaves
                // after --graceful-timeout.
                extra: &["--timeout", "2", "--graceful-timeout", "1"],
                app: "builtin:sleep",
                path: "/stuck?ms=30000",
                quick: "/after?ms=0",
                secs: 15.0,
                program: None,
            },
        },
        Class::Green => Setup {
            extra: &[],
            keeps_alive: true,
            in_flight: 20,
            many_in_flight: (&["-w", "2"], 50),
            four_workers_hold: 20,
            hang: Hang {
                // A sleep yields the coroutine; only a spinning handler
                // holds the one may thread (far more rounds than 2 s).
                extra: &["--threads", "1", "-t", "2"],
                app: "builtin:cpu",
                path: "/?n=4000000000",
                quick: "/?n=1",
                secs: 30.0,
                program: None,
            },
        },
        Class::Async => Setup {
            extra: &[],
            keeps_alive: true,
            in_flight: 20,
            many_in_flight: (&["-w", "2"], 50),
            four_workers_hold: 20,
            hang: Hang {
                // A sync app runs on the blocking pool by design; an async
                // app that blocks holds its runtime's thread (the test
                // binary's linked `stall:app`). With two runtimes the other
                // keeps ticking: the beat must still stop.
                extra: &["--threads", "2", "-t", "2"],
                app: "stall:app",
                path: "/?secs=60",
                quick: "/?secs=0",
                secs: 20.0,
                program: Some(env!("CARGO_BIN_EXE_runicorn-linked")),
            },
        },
    }
}

/// `runicorn -k CLASS -b 127.0.0.1:0 -w WORKERS EXTRA... (the class's) APP`.
fn start(class: Class, workers: &str, extra: &[&str], app: &str) -> Server {
    let mut args = vec!["-w", workers];
    args.extend_from_slice(setup(class).extra);
    args.extend_from_slice(extra);
    class.start(&args, app)
}

/// The request a class without keep-alive answers once and then closes.
const ONE_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// Many requests on one connection; a class without keep-alive answers
/// the first with `Connection: close` and closes.
fn keep_alive(class: Class) {
    let server = start(class, "1", &[], "builtin:hello");
    if setup(class).keeps_alive {
        scenario::keep_alive(&server, 200);
    } else {
        let response = answered_then_closed(&server, &ONE_GET.repeat(2));
        assert_eq!(response.text(), "Hello, World!");
    }
}

/// The same over a unix socket.
fn keep_alive_over_a_unix_socket(class: Class) {
    let dir = tempfile::tempdir().unwrap();
    let bind = format!("unix:{}", dir.path().join("runicorn.sock").display());
    let mut args = vec!["-k", class.name(), "-w", "1", "-b", &bind];
    args.extend_from_slice(setup(class).extra);
    args.push("builtin:hello");
    let server = Server::start(args);
    if setup(class).keeps_alive {
        scenario::keep_alive(&server, 20);
    } else {
        let response = answered_then_closed(&server, ONE_GET);
        assert_eq!(response.text(), "Hello, World!");
    }
}

/// Requests sent in one write are answered in order; a class without
/// keep-alive answers the first and closes.
fn pipelined_in_order(class: Class) {
    let server = start(class, "1", &[], "builtin:echo");
    if setup(class).keeps_alive {
        scenario::pipelined_in_order(&server, 10);
    } else {
        let response = answered_then_closed(&server, &ONE_GET.repeat(3));
        assert_eq!(response.json()["path"], "/");
    }
}

/// With `--keep-alive 1` an idle connection is closed after about a second.
fn idle_connection_closes_after_keep_alive(class: Class) {
    let server = start(class, "1", &["--keep-alive", "1"], "builtin:hello");
    if setup(class).keeps_alive {
        scenario::idle_connection_closes_after_keep_alive(&server);
    } else {
        answered_then_closed(&server, ONE_GET);
    }
}

/// TERM with requests in flight: each is answered, saying
/// `Connection: close`, then the master exits 0.
fn term_answers_in_flight(class: Class) {
    let mut server = start(
        class,
        "1",
        &["--log-level", "debug", "--graceful-timeout", "20"],
        "builtin:sleep",
    );
    server.wait_workers(1, 10.0);
    let paths: Vec<String> = (0..setup(class).in_flight)
        .map(|n| format!("/inflight{n}?ms=1500"))
        .collect();
    for response in scenario::term_answers_in_flight(&mut server, &paths) {
        assert_eq!(response.text(), "slept 1500 ms\n");
        assert!(
            response.closes(),
            "a response after TERM says Connection: close: {:?}",
            response.headers
        );
    }
}

/// TERM with fifty requests in flight on kept-alive connections (four on
/// fresh ones for the sync class): every one is answered with
/// `Connection: close`, and the master exits 0 right after the last answer.
fn term_answers_fifty_kept_alive_in_flight(class: Class) {
    let (args, count) = setup(class).many_in_flight;
    let mut all = args.to_vec();
    all.extend_from_slice(&["--log-level", "debug", "--graceful-timeout", "20"]);
    let mut server = class.start(&all, "builtin:sleep");
    let paths: Vec<String> = (0..count)
        .map(|n| format!("/inflight{n}?ms=1500"))
        .collect();
    let (answered, exit) = if setup(class).keeps_alive {
        scenario::term_answers_kept_alive_in_flight(&mut server, "/warm?ms=0", &paths)
    } else {
        let started = std::time::Instant::now();
        scenario::term_answers_in_flight(&mut server, &paths);
        (started.elapsed(), std::time::Duration::ZERO)
    };
    eprintln!(
        "FIGURES {} term-in-flight: {count} in flight, last answer {:.2}s after TERM, master exit {:.2}s after it",
        class.name(),
        answered.as_secs_f64(),
        exit.as_secs_f64()
    );
}

/// Four workers, twenty clients each sending one 2-second request, TERM
/// once the workers are busy: all twenty are answered (the ones queued in
/// the listen backlog too), new connections are refused, not reset, and
/// the master exits 0.
fn term_serves_the_backlog(class: Class) {
    let mut server = start(
        class,
        "4",
        &["--log-level", "debug", "--graceful-timeout", "60"],
        "builtin:sleep",
    );
    server.wait_workers(4, 10.0);
    let hold = setup(class).four_workers_hold;
    let figures = scenario::term_serves_the_backlog(&mut server, 20, "/?ms=2000", "/?ms=1", hold);
    eprintln!("FIGURES {} term-backlog: {figures:?}", class.name());
    assert_eq!(figures.answered, 20);
}

/// TERM leaves nothing behind: the unix socket and the pidfile are removed,
/// and the TCP port can be bound again at once.
fn term_leaves_nothing_behind(class: Class) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("runicorn.sock");
    let pidfile = dir.path().join("runicorn.pid");
    let unix = format!("unix:{}", socket.display());
    let pid = pidfile.display().to_string();
    let mut server = start(class, "2", &["-b", &unix, "-p", &pid], "builtin:hello");
    server.wait_workers(2, 10.0);
    assert!(socket.exists() && pidfile.exists());
    let mut conn = Conn::connect(server.addr()).expect("connect");
    assert_eq!(conn.get("/").expect("GET").status, 200);
    server.signal(runicorn_tests::Signal::SIGTERM);
    assert_eq!(
        runicorn_tests::exit_code(&mut server, 10.0),
        0,
        "{}",
        server.log()
    );
    assert!(!socket.exists(), "the unix socket is left behind");
    assert!(!pidfile.exists(), "the pidfile is left behind");
    std::net::TcpListener::bind(server.addr().tcp())
        .unwrap_or_else(|err| panic!("the port cannot be bound again: {err}"));
}

/// A kept-alive connection idle at TERM still gets its next request
/// answered (with `Connection: close`), however long the client thinks
/// before sending it, within `--keep-alive`.
fn an_idle_connection_is_answered_after_term(class: Class) {
    let mut server = start(class, "1", &["--keep-alive", "5"], "builtin:hello");
    if setup(class).keeps_alive {
        scenario::idle_connection_is_answered_after_term(&mut server);
    } else {
        answered_then_closed(&server, ONE_GET);
    }
}

/// An idle kept-alive connection holds a stopping worker until its
/// keep-alive deadline (never closed under its client), not until
/// `--graceful-timeout`.
fn an_idle_connection_holds_the_stop_only_until_keep_alive(class: Class) {
    let mut server = start(
        class,
        "1",
        &["--keep-alive", "2", "--graceful-timeout", "30"],
        "builtin:hello",
    );
    if setup(class).keeps_alive {
        let exit = scenario::idle_connection_holds_the_stop_until_keep_alive(&mut server);
        eprintln!(
            "FIGURES {} idle-at-term: master exit {:.2}s after TERM (--keep-alive 2)",
            class.name(),
            exit.as_secs_f64()
        );
    } else {
        answered_then_closed(&server, ONE_GET);
    }
}

/// Ten HUPs under keep-alive load on four workers: no request fails, and
/// none needs a retry on a new connection.
fn reloads_under_keep_alive_load_lose_nothing(class: Class) {
    let server = start(class, "4", &[], "builtin:hello");
    server.wait_workers(4, 10.0);
    let report = scenario::reloads_under_keep_alive_load(&server, 10);
    eprintln!(
        "FIGURES {} hup-x10: sent {} failed {} retried {}",
        class.name(),
        report.total(),
        report.failed,
        report.retried
    );
    assert_eq!(
        (report.failed, report.retried),
        (0, 0),
        "{report:?}\n{}",
        server.log()
    );
}

/// `--max-requests 50 --max-requests-jitter 10` on two workers under
/// keep-alive load: workers recycle, no request fails, and none needs a
/// retry on a new connection.
fn recycling_under_keep_alive_load_loses_nothing(class: Class) {
    let server = start(
        class,
        "2",
        &["--max-requests", "50", "--max-requests-jitter", "10"],
        "builtin:hello",
    );
    let report = scenario::recycling_under_keep_alive_load(&server, 12);
    eprintln!(
        "FIGURES {} max-requests: sent {} failed {} retried {}",
        class.name(),
        report.total(),
        report.failed,
        report.retried
    );
    assert_eq!(
        (report.failed, report.retried),
        (0, 0),
        "{report:?}\n{}",
        server.log()
    );
}

/// INT and QUIT cut a request in flight and the master leaves at once
/// (bounded at 5 s, far below the request's 20 s and the 30 s graceful
/// timeout; the figure is printed).
fn int_cuts_a_request_in_flight(class: Class) {
    let took = scenario::quick_stop_cuts_a_request_in_flight(
        class,
        setup(class).extra,
        runicorn_tests::Signal::SIGINT,
    );
    eprintln!("FIGURES {} int: {:.3}s", class.name(), took.as_secs_f64());
}

/// The same with QUIT.
fn quit_cuts_a_request_in_flight(class: Class) {
    let took = scenario::quick_stop_cuts_a_request_in_flight(
        class,
        setup(class).extra,
        runicorn_tests::Signal::SIGQUIT,
    );
    eprintln!("FIGURES {} quit: {:.3}s", class.name(), took.as_secs_f64());
}

/// A request still running at `--graceful-timeout` after TERM: its client
/// gets a 500, not a reset.
fn a_request_past_the_graceful_timeout_gets_a_500(class: Class) {
    scenario::request_past_the_graceful_timeout_gets_a_500(class, setup(class).extra);
}

/// A request that hangs its worker is named in `WORKER TIMEOUT`, its client
/// gets a 500 before the connection closes (not a reset), the worker is
/// replaced, and the new one serves.
fn hung_request_is_named(class: Class) {
    let hang = setup(class).hang;
    let mut args = vec!["-w", "1"];
    args.extend_from_slice(setup(class).extra);
    args.extend_from_slice(hang.extra);
    let mut launch = class.launch(&args, hang.app);
    if let Some(program) = hang.program {
        launch = launch.program(program);
    }
    let server = launch.start();
    let answer = scenario::hung_request_is_named(&server, hang.path, hang.secs);
    eprintln!(
        "FIGURES {} timeout: the client got {} {}",
        class.name(),
        answer.status,
        answer.reason
    );
    let response = get(server.addr(), hang.quick).expect("the new worker serves");
    assert_eq!(response.status, 200);
}

/// The workloads of `runicorn bench` that no other scenario serves:
/// `builtin:mixed` waits then burns and answers, a bad query gets a 400;
/// `builtin:upload` reads a 1 MiB body to its end, Content-Length or
/// chunked, and says how much it got.
fn bench_workloads_mixed_and_upload_are_served(class: Class) {
    let mixed = start(class, "1", &[], "builtin:mixed");
    let response = get(mixed.addr(), "/?ms=5&n=10").expect("GET mixed");
    assert_eq!(response.status, 200, "{}", mixed.log());
    assert!(
        response.text().starts_with("mixed 5 ms, 10 rounds: "),
        "{}",
        response.text()
    );
    let response = get(mixed.addr(), "/?ms=x").expect("GET mixed with a bad ms");
    assert_eq!(response.status, 400);

    let upload = start(class, "1", &[], "builtin:upload");
    let body = vec![b'u'; 1 << 20];
    let mut conn = Conn::connect(upload.addr()).expect("connect");
    let response = conn.request("POST", "/", &[], &body).expect("POST 1 MiB");
    assert_eq!(response.status, 200, "{}", upload.log());
    assert_eq!(response.text(), "received 1048576 bytes\n");
    let mut chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..16 {
        chunked.extend_from_slice(b"10000\r\n");
        chunked.extend_from_slice(&body[..0x10000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let response =
        runicorn_tests::raw_response(upload.addr(), &chunked).expect("POST 1 MiB chunked");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "received 1048576 bytes\n");
}

/// SIGKILL to the master: its workers leave, even one holding a client's
/// connection.
fn workers_exit_with_the_master(class: Class) {
    let server = start(class, "2", &[], "builtin:hello");
    server.wait_workers(2, 10.0);
    let mut conn = Conn::connect(server.addr()).expect("connect");
    assert_eq!(conn.get("/").expect("GET").status, 200);
    scenario::workers_exit_with_the_master(&server, 2);
}

runicorn_tests::class_matrix![
    keep_alive,
    keep_alive_over_a_unix_socket,
    pipelined_in_order,
    idle_connection_closes_after_keep_alive,
    term_answers_in_flight,
    term_answers_fifty_kept_alive_in_flight,
    term_serves_the_backlog,
    term_leaves_nothing_behind,
    an_idle_connection_is_answered_after_term,
    an_idle_connection_holds_the_stop_only_until_keep_alive,
    reloads_under_keep_alive_load_lose_nothing,
    recycling_under_keep_alive_load_loses_nothing,
    int_cuts_a_request_in_flight,
    quit_cuts_a_request_in_flight,
    hung_request_is_named,
    a_request_past_the_graceful_timeout_gets_a_500,
    workers_exit_with_the_master,
    bench_workloads_mixed_and_upload_are_served,
];
