//! Scenarios every worker class must pass, written once and parameterised
//! by the running server: keep-alive loops, pipelining, TERM with requests
//! in flight, QUIT cutting them, a hung request named and its worker
//! replaced, workers outliving no master. `tests/tests/classes.rs` runs
//! them as one matrix over every class ([`Class::ALL`]), starting each
//! server the way the class needs (`-k`, `--threads`, the app); the
//! per-class files keep only what that class alone does.
//!
//! Every scenario panics with the server's log on failure and waits on
//! conditions with deadlines, never on bare sleeps.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nix::sys::signal::Signal;

use crate::client::{get, Conn, Response, Reuse};
use crate::load::{ClientLoop, LoadReport};
use crate::proc;
use crate::server::{Launch, Server};
use crate::wait::{deadline, wait_until};

/// Where every e2e server binds: loopback, a port the kernel picks.
pub const LOCAL: &str = "127.0.0.1:0";

/// A built-in worker class, as `-k` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `-k sync`.
    Sync,
    /// `-k gthread`.
    Gthread,
    /// `-k green`.
    Green,
    /// `-k async`.
    Async,
}

/// One module per built-in class, one test per scenario in each:
/// `runicorn_tests::class_matrix![a, b]` in a test file makes the tests
/// `sync::a`, `gthread::a`, `green::a`, `async::a`, `sync::b`, ..., each
/// calling the file's `fn a(class: Class)` with its class. A scenario left
/// off the list is dead code (which clippy refuses), and the generated
/// `the_matrix_lists_every_class` fails when a class of [`Class::ALL`] is
/// missing here: a class added gets every scenario of every matrix file.
#[macro_export]
macro_rules! class_matrix {
    ($($scenario:ident),* $(,)?) => {
        $crate::class_matrix!(
            @classes [sync => Sync, gthread => Gthread, green => Green, r#async => Async],
            [$($scenario),*]
        );
    };
    (@classes [$($module:ident => $variant:ident),*], $scenarios:tt) => {
        #[test]
        fn the_matrix_lists_every_class() {
            let matrix: &[$crate::scenario::Class] = &[$($crate::scenario::Class::$variant),*];
            assert_eq!(
                matrix,
                &$crate::scenario::Class::ALL[..],
                "every class in Class::ALL runs every scenario: add it to runicorn_tests::class_matrix!"
            );
        }
        $(
            mod $module {
                $crate::class_matrix!(@tests $crate::scenario::Class::$variant, $scenarios);
            }
        )*
    };
    (@tests $class:expr, [$($scenario:ident),*]) => {
        $(
            #[test]
            fn $scenario() {
                super::$scenario($class);
            }
        )*
    };
}

impl Class {
    /// Every built-in class, for checks that must hold under each.
    pub const ALL: [Class; 4] = [Class::Sync, Class::Gthread, Class::Green, Class::Async];

    /// The name `-k` selects the class by.
    pub fn name(self) -> &'static str {
        match self {
            Class::Sync => "sync",
            Class::Gthread => "gthread",
            Class::Green => "green",
            Class::Async => "async",
        }
    }

    /// `runicorn -k CLASS -b 127.0.0.1:0 EXTRA... APP`, not yet started.
    pub fn launch(self, extra: &[&str], app: &str) -> Launch {
        let mut args = vec!["-k", self.name(), "-b", LOCAL];
        args.extend_from_slice(extra);
        args.push(app);
        Launch::new(args)
    }

    /// `runicorn -k CLASS -b 127.0.0.1:0 EXTRA... APP`, started.
    pub fn start(self, extra: &[&str], app: &str) -> Server {
        self.launch(extra, app).start()
    }
}

/// The exit code of a master expected to exit within `secs`; panics with
/// the log if it was killed by a signal or is still running.
pub fn exit_code(server: &mut Server, secs: f64) -> i32 {
    match server.wait_exit(deadline(secs)) {
        Some(status) => status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status}\n{}", server.log())),
        None => panic!("runicorn did not exit within {secs}s:\n{}", server.log()),
    }
}

/// Waits up to `secs` until the workers `old` are replaced: as many live
/// workers as before, and not the same ones.
pub fn wait_replaced(server: &Server, old: &[u32], secs: f64) -> bool {
    wait_until(deadline(secs), || {
        let now = server.worker_pids();
        now.len() == old.len() && now != old
    })
}

/// Requests started one after another, each on its own keep-alive-capable
/// connection, and each seen in the server's access log (which needs
/// `--log-level debug`) before the next is sent.
#[derive(Debug)]
pub struct InFlight {
    clients: Vec<(String, JoinHandle<io::Result<Response>>)>,
}

impl InFlight {
    /// Sends `GET path` for each of `paths` and waits (10 s each) until the
    /// server logged it. A path may repeat: its n-th copy waits for the
    /// n-th log line.
    pub fn start<S: AsRef<str>>(server: &Server, paths: &[S]) -> InFlight {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let clients = paths
            .iter()
            .map(|path| {
                let path = path.as_ref();
                let addr = server.addr().clone();
                let target = path.to_owned();
                let handle = thread::spawn(move || Conn::connect(&addr)?.get(&target));
                let count = seen.entry(path).or_default();
                *count += 1;
                let pattern = format!("GET {path}");
                if server
                    .wait_for_log_count(&pattern, *count, deadline(10.0))
                    .is_none()
                {
                    panic!(
                        "request {count} of {pattern:?} did not start within 10s:\n{}",
                        server.log()
                    );
                }
                (path.to_owned(), handle)
            })
            .collect();
        InFlight { clients }
    }

    /// Like [`InFlight::start`], but each client first gets `warm` on its
    /// connection and sends its path on the same, kept-alive connection:
    /// requests in flight on reused connections, as behind a proxy.
    pub fn start_reused<S: AsRef<str>>(server: &Server, warm: &str, paths: &[S]) -> InFlight {
        let clients = paths
            .iter()
            .map(|path| {
                let path = path.as_ref();
                let addr = server.addr().clone();
                let (target, warm) = (path.to_owned(), warm.to_owned());
                let handle = thread::spawn(move || {
                    let mut conn = Conn::connect(&addr)?;
                    let first = conn.get(&warm)?;
                    if first.closes() {
                        return Err(io::Error::other(format!(
                            "the warm-up request closed its connection: {first:?}"
                        )));
                    }
                    conn.get(&target)
                });
                let pattern = format!("GET {path}");
                if server.wait_for_log(&pattern, deadline(10.0)).is_none() {
                    panic!("{pattern:?} did not start within 10s:\n{}", server.log());
                }
                (path.to_owned(), handle)
            })
            .collect();
        InFlight { clients }
    }

    /// Joins every client; each must have been answered with 200.
    pub fn answered(self, server: &Server) -> Vec<Response> {
        self.clients
            .into_iter()
            .map(|(path, handle)| {
                let response = handle
                    .join()
                    .expect("client thread panicked")
                    .unwrap_or_else(|err| {
                        panic!("in-flight GET {path} unanswered: {err}\n{}", server.log())
                    });
                assert_eq!(response.status, 200, "GET {path}: {response:?}");
                response
            })
            .collect()
    }

    /// Joins every client; each must have been cut (an I/O error), not
    /// answered.
    pub fn cut(self) {
        for (path, handle) in self.clients {
            let outcome = handle.join().expect("client thread panicked");
            assert!(outcome.is_err(), "GET {path} was answered: {outcome:?}");
        }
    }
}

/// Sends `bytes` on a fresh connection and reads one response, which must
/// say `Connection: close` and be followed by the end of the stream (nothing
/// after the refused request is answered). Returns the response.
pub fn answered_then_closed(server: &Server, bytes: &[u8]) -> Response {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    conn.send(bytes).expect("send the request");
    let response = conn
        .read_final_response(false)
        .unwrap_or_else(|err| panic!("no response: {err}\n{}", server.log()));
    assert!(response.closes(), "{response:?}");
    let closed = match conn.at_eof() {
        Ok(eof) => eof,
        Err(err) => err.kind() == io::ErrorKind::ConnectionReset,
    };
    assert!(
        closed,
        "the connection stayed open after {response:?}\n{}",
        server.log()
    );
    response
}

/// `requests` requests on one connection to `builtin:hello`, each answered
/// and none closing the connection.
pub fn keep_alive(server: &Server, requests: usize) {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    for n in 0..requests {
        let response = conn
            .get(&format!("/{n}"))
            .unwrap_or_else(|err| panic!("request {n} on the kept connection: {err}"));
        assert_eq!(response.status, 200, "request {n}");
        assert_eq!(response.text(), "Hello, World!", "request {n}");
        assert!(
            !response.closes(),
            "request {n} closed: {:?}",
            response.headers
        );
    }
}

/// `requests` POSTs to `builtin:echo` sent in one write; the answers come
/// back in order, each describing its own request (path and body).
pub fn pipelined_in_order(server: &Server, requests: usize) {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    let mut batch = Vec::new();
    for n in 0..requests {
        let body = format!("request {n}");
        write!(
            batch,
            "POST /{n} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write to a Vec");
    }
    conn.send(&batch).expect("send the pipelined batch");
    for n in 0..requests {
        let response = conn
            .read_final_response(false)
            .unwrap_or_else(|err| panic!("pipelined response {n}: {err}\n{}", server.log()));
        assert_eq!(response.status, 200, "response {n}");
        let json = response.json();
        assert_eq!(json["path"], format!("/{n}"), "response {n}: {json}");
        assert_eq!(
            json["body_b64"],
            STANDARD.encode(format!("request {n}")),
            "response {n}: {json}"
        );
    }
}

/// TERM with `paths` in flight (a sleeping app, `--log-level debug`): each
/// is answered with 200, then the master exits 0 within 30 s. Returns the
/// answers for the class's own checks.
pub fn term_answers_in_flight<S: AsRef<str>>(server: &mut Server, paths: &[S]) -> Vec<Response> {
    let in_flight = InFlight::start(server, paths);
    server.signal(Signal::SIGTERM);
    let answers = in_flight.answered(server);
    assert_eq!(exit_code(server, 30.0), 0, "{}", server.log());
    answers
}

/// TERM with requests in flight on kept-alive connections (`paths` on
/// `builtin:sleep`, each sent after `warm` on the same connection, with
/// `--log-level debug`): every one is answered with 200 and
/// `Connection: close`, and the master exits 0. Returns how long after
/// TERM the last answer came and how long after it the master exited.
pub fn term_answers_kept_alive_in_flight<S: AsRef<str>>(
    server: &mut Server,
    warm: &str,
    paths: &[S],
) -> (Duration, Duration) {
    let in_flight = InFlight::start_reused(server, warm, paths);
    let term = Instant::now();
    server.signal(Signal::SIGTERM);
    let answers = in_flight.answered(server);
    let answered = term.elapsed();
    for response in &answers {
        assert!(
            response.closes(),
            "an answer after TERM says Connection: close: {:?}",
            response.headers
        );
    }
    assert_eq!(exit_code(server, 30.0), 0, "{}", server.log());
    let exit = term.elapsed().saturating_sub(answered);
    // Nothing is left to wait for once the last answer is out (gthread
    // used to wait 3 s more).
    assert!(
        exit < Duration::from_secs(2),
        "the master exited {exit:?} after the last answer:\n{}",
        server.log()
    );
    (answered, exit)
}

/// What [`term_serves_the_backlog`] measured.
#[derive(Debug, Clone, Copy)]
pub struct BacklogFigures {
    /// Requests sent before TERM.
    pub sent: usize,
    /// Of those, answered with 200.
    pub answered: usize,
    /// From TERM to the last answer.
    pub last_answer: Duration,
    /// From TERM to the master's exit.
    pub exit: Duration,
    /// Connections tried after TERM before one was refused; each of the
    /// others was served.
    pub served_after_term: usize,
}

/// `clients` clients each send one `GET path` (a slow request) to a server
/// whose workers hold `capacity` of them at once (the rest wait in the
/// listen backlog, accepted by the kernel); once all are sent and
/// `capacity` are in flight (`--log-level debug`), TERM. Every one is
/// answered with 200 (the queued ones too: a stopping worker takes what
/// the kernel queued before it closes its listener), connections tried
/// after TERM are served (`GET quick`) until one is refused (the listener
/// is closed everywhere), none accepted and reset, and the master exits 0.
pub fn term_serves_the_backlog(
    server: &mut Server,
    clients: usize,
    path: &str,
    quick: &str,
    capacity: usize,
) -> BacklogFigures {
    let addr = server.addr().clone();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let handles: Vec<JoinHandle<io::Result<Response>>> = (0..clients)
        .map(|_| {
            let (addr, path, sent) = (addr.clone(), path.to_owned(), sent_tx.clone());
            thread::spawn(move || {
                let mut conn = Conn::connect(&addr)?;
                conn.set_timeout(Duration::from_secs(60))?;
                let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                conn.send(head.as_bytes())?;
                let _ = sent.send(());
                conn.read_final_response(false)
            })
        })
        .collect();
    for _ in 0..clients {
        sent_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("a client could not send:\n{}", server.log()));
    }
    let pattern = format!("GET {}", path.split('?').next().unwrap_or(path));
    if server
        .wait_for_log_count(&pattern, capacity, deadline(10.0))
        .is_none()
    {
        panic!("{capacity} requests did not start:\n{}", server.log());
    }
    let term = Instant::now();
    server.signal(Signal::SIGTERM);
    // New connections: taken (and served) while some worker has not yet
    // drained its queue, then refused.
    let mut late = Vec::new();
    let refused = wait_until(deadline(10.0), || match Conn::connect(&addr) {
        Err(err) => {
            assert_eq!(
                err.kind(),
                io::ErrorKind::ConnectionRefused,
                "a connection after TERM: {err}\n{}",
                server.log()
            );
            true
        }
        Ok(mut conn) => {
            let quick = quick.to_owned();
            late.push(thread::spawn(move || {
                conn.set_timeout(Duration::from_secs(60))?;
                conn.get(&quick)
            }));
            false
        }
    });
    assert!(
        refused,
        "connections were still accepted 10 s after TERM:\n{}",
        server.log()
    );
    let served_after_term = late.len();
    for handle in late {
        let response = handle
            .join()
            .expect("client thread panicked")
            .unwrap_or_else(|err| {
                panic!(
                    "a connection accepted after TERM was not served: {err}\n{}",
                    server.log()
                )
            });
        assert_eq!(response.status, 200, "{response:?}");
    }
    let mut answered = 0;
    for handle in handles {
        let response = handle
            .join()
            .expect("client thread panicked")
            .unwrap_or_else(|err| panic!("a request sent before TERM: {err}\n{}", server.log()));
        assert_eq!(response.status, 200, "{response:?}");
        answered += 1;
    }
    let last_answer = term.elapsed();
    assert_eq!(exit_code(server, 60.0), 0, "{}", server.log());
    BacklogFigures {
        sent: clients,
        answered,
        last_answer,
        exit: term.elapsed(),
        served_after_term,
    }
}

/// `reloads` HUPs, each once the previous reload completed, while eight
/// clients send `GET /` on kept-alive connections (`builtin:hello`). What
/// they saw; the caller asserts no failure and no retry.
pub fn reloads_under_keep_alive_load(server: &Server, reloads: usize) -> LoadReport {
    let clients = ClientLoop::start_keepalive(server.addr(), "/", 8);
    assert!(
        clients.wait_ok(200, deadline(20.0)),
        "the clients did not get going: {:?}\n{}",
        clients.report(),
        server.log()
    );
    for reload in 1..=reloads {
        server.signal(Signal::SIGHUP);
        if server
            .wait_for_log_count("Reload complete", reload, deadline(20.0))
            .is_none()
        {
            panic!("reload {reload} did not complete:\n{}", server.log());
        }
        let before = clients.report().ok;
        assert!(
            clients.wait_ok(before + 50, deadline(20.0)),
            "no progress after reload {reload}: {:?}",
            clients.report()
        );
    }
    clients.stop()
}

/// Eight clients send `GET /` on kept-alive connections to a server that
/// recycles its workers (`--max-requests`), until `recycles` workers have
/// retired (or 20 s passed). What they saw; the caller asserts no failure
/// and no retry.
pub fn recycling_under_keep_alive_load(server: &Server, recycles: usize) -> LoadReport {
    let clients = ClientLoop::start_keepalive(server.addr(), "/", 8);
    let recycled = server.wait_for_log_count(
        "Autorestarting worker after current request.",
        recycles,
        deadline(20.0),
    );
    let report = clients.stop();
    assert!(
        recycled.is_some(),
        "fewer than {recycles} recycles: {report:?}\n{}",
        server.log()
    );
    report
}

/// A kept-alive connection idle when its worker starts to stop (TERM to a
/// one-worker `builtin:hello` server with `--keep-alive 5`): a request sent
/// on it 500 ms later, a client's think time, is answered with
/// `Connection: close` instead of finding the connection closed or reset;
/// then the master exits 0.
pub fn idle_connection_is_answered_after_term(server: &mut Server) {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    let first = conn.get("/").expect("the first request");
    assert!(!first.closes(), "{first:?}");
    server.signal(Signal::SIGTERM);
    server.expect_log("Handling signal: term", 10.0);
    thread::sleep(Duration::from_millis(500));
    match conn.get_reused("/") {
        Reuse::Answered(Ok(response)) => {
            assert_eq!(response.status, 200, "{response:?}");
            assert!(response.closes(), "{:?}", response.headers);
        }
        other => panic!(
            "the idle connection's next request after TERM: {other:?}\n{}",
            server.log()
        ),
    }
    assert_eq!(exit_code(server, 10.0), 0, "{}", server.log());
}

/// A kept-alive connection idle at TERM (a one-worker `builtin:hello`
/// server with `--keep-alive 2 --graceful-timeout 30`) whose client sends
/// nothing more: it is not closed under its client at TERM but at its
/// keep-alive deadline, and the master exits then, long before the
/// graceful timeout. Returns how long after TERM the master exited.
pub fn idle_connection_holds_the_stop_until_keep_alive(server: &mut Server) -> Duration {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    let first = conn.get("/").expect("the first request");
    assert!(!first.closes(), "{first:?}");
    let term = Instant::now();
    server.signal(Signal::SIGTERM);
    conn.set_timeout(Duration::from_secs(20))
        .expect("set the client timeout");
    let closed = conn.at_eof().unwrap_or(true);
    let held = term.elapsed();
    assert!(closed, "the idle connection got bytes after TERM");
    assert!(
        held >= Duration::from_secs(1),
        "the idle connection was closed {held:?} after TERM, before its keep-alive ran out"
    );
    assert_eq!(exit_code(server, 20.0), 0, "{}", server.log());
    let exit = term.elapsed();
    assert!(
        exit < Duration::from_secs(15),
        "the stop took {exit:?}: the graceful timeout, not --keep-alive"
    );
    exit
}

/// TERM to a one-worker `builtin:sleep` server of `class` (`EXTRA` added,
/// `--graceful-timeout 1`) with a 20 s request in flight: the request
/// outlives the graceful timeout, and its client gets a 500 with
/// `Connection: close` (the master's SIGABRT, or the worker's own graceful
/// timeout, answers it) rather than a reset; the master exits 0.
pub fn request_past_the_graceful_timeout_gets_a_500(class: Class, extra: &[&str]) -> Response {
    let mut args = vec!["-w", "1", "--log-level", "debug", "--graceful-timeout", "1"];
    args.extend_from_slice(extra);
    let mut server = class.start(&args, "builtin:sleep");
    let in_flight = InFlight::start(&server, &["/?ms=20000"]);
    server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut server, 15.0), 0, "{}", server.log());
    let (path, handle) = in_flight.clients.into_iter().next().expect("one client");
    let response = handle
        .join()
        .expect("client thread panicked")
        .unwrap_or_else(|err| panic!("GET {path} got no answer: {err}\n{}", server.log()));
    assert_eq!(response.status, 500, "{response:?}");
    assert!(response.closes(), "{response:?}");
    response
}

/// `signal` (INT or QUIT) to a one-worker `builtin:sleep` server of
/// `class` (`EXTRA` added, `--graceful-timeout 30`) with a 20 s request in
/// flight: the master exits within 5 s, not 20 (a quick stop does not wait
/// for requests), its whole process group is gone within 5 s more, and the
/// request is cut rather than answered. Returns how long the master took.
pub fn quick_stop_cuts_a_request_in_flight(
    class: Class,
    extra: &[&str],
    signal: Signal,
) -> Duration {
    let mut args = vec![
        "-w",
        "1",
        "--log-level",
        "debug",
        "--graceful-timeout",
        "30",
    ];
    args.extend_from_slice(extra);
    let mut server = class.start(&args, "builtin:sleep");
    let in_flight = InFlight::start(&server, &["/?ms=20000"]);
    let started = Instant::now();
    server.signal(signal);
    exit_code(&mut server, 10.0);
    let took = started.elapsed();
    // Far below the request's 20 s and the graceful timeout's 30 s, with
    // room for a loaded machine (1.3 s was seen at load 11).
    assert!(
        took < Duration::from_secs(5),
        "{signal} took {took:?}:\n{}",
        server.log()
    );
    assert!(
        wait_until(deadline(5.0), || server.group().is_empty()),
        "left behind: {:?}",
        server.group()
    );
    in_flight.cut();
    took
}

/// On a `--keep-alive 1` server of `builtin:hello`: requests in quick
/// succession keep one connection open, and silence then closes it after
/// about a second (0.5 s..8 s, long before the client's own 10 s timeout).
pub fn idle_connection_closes_after_keep_alive(server: &Server) {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    for n in 0..3 {
        let response = conn
            .get("/")
            .unwrap_or_else(|err| panic!("request {n} on the kept connection: {err}"));
        assert_eq!(response.status, 200, "request {n}");
        assert!(!response.closes(), "request {n}: {:?}", response.headers);
    }
    let idle_since = Instant::now();
    conn.set_timeout(Duration::from_secs(10))
        .expect("set the client timeout");
    assert!(
        conn.at_eof()
            .expect("the server closes the idle connection"),
        "the idle connection was kept"
    );
    let idle_for = idle_since.elapsed();
    assert!(
        idle_for >= Duration::from_millis(500) && idle_for < Duration::from_secs(8),
        "closed after {idle_for:?} with --keep-alive 1"
    );
}

/// One worker (`-w 1`, a short `--timeout`) gets `path`, which never ends
/// in time: within `secs` a `WORKER TIMEOUT` line names the request, the
/// worker's pid and its class, and says what to do, the client gets a 500 with `Connection: close` before its
/// connection closes (not a reset), and a new worker takes the old one's
/// place within 15 s. Returns that answer.
pub fn hung_request_is_named(server: &Server, path: &str, secs: f64) -> Response {
    let old = server.wait_workers(1, 10.0);
    let addr = server.addr().clone();
    let target = path.to_owned();
    let client = thread::spawn(move || get(&addr, &target));
    let line = server.expect_log("WORKER TIMEOUT", secs);
    assert!(
        line.contains(&format!("GET {path}")),
        "the log does not name the request: {line}"
    );
    // Gunicorn's level: alerting rules match `[CRITICAL]`.
    assert!(line.contains("] [CRITICAL] WORKER TIMEOUT"), "{line}");
    assert!(line.contains(&format!("pid:{}", old[0])), "{line}");
    // It names the class, and says what to do, starting with the slow call.
    assert!(
        Class::ALL
            .iter()
            .any(|class| line.contains(&format!(" {} worker", class.name()))),
        "the log does not name the class: {line}"
    );
    assert!(
        line.to_lowercase().contains("find the slow call") || line.contains("find it first"),
        "the log does not say what to do: {line}"
    );
    let response = client
        .join()
        .expect("client thread panicked")
        .unwrap_or_else(|err| {
            panic!(
                "the client of the timed-out request got no answer: {err}\n{}",
                server.log()
            )
        });
    assert_eq!(response.status, 500, "{response:?}");
    assert!(response.closes(), "{response:?}");
    assert!(
        wait_replaced(server, &old, 15.0),
        "the hung worker {old:?} was not replaced:\n{}",
        server.log()
    );
    response
}

/// SIGKILL to the master: every one of its `workers` workers exits within
/// 15 s.
pub fn workers_exit_with_the_master(server: &Server, workers: usize) {
    let pids = server.wait_workers(workers, 10.0);
    server.signal(Signal::SIGKILL);
    let gone = wait_until(deadline(15.0), || pids.iter().all(|pid| !proc::alive(*pid)));
    assert!(gone, "workers {pids:?} outlived their master");
}

/// A one-shot upstream on loopback for `builtin:upstream`: it reads one
/// line and answers `pong: LINE`. Join the handle once the request is done.
pub fn pong_upstream() -> (SocketAddr, JoinHandle<()>) {
    let upstream = TcpListener::bind(LOCAL).expect("bind the upstream");
    let addr = upstream.local_addr().expect("upstream address");
    let peer = thread::spawn(move || {
        let (stream, _) = upstream.accept().expect("accept the relay");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("read the relayed line");
        (&stream)
            .write_all(format!("pong: {line}").as_bytes())
            .expect("answer the relay");
    });
    (addr, peer)
}
