//! End-to-end tests of the green worker class (issue 5): the real binary
//! with `-k green`, loopback and unix sockets, real signals. Every server
//! binds `127.0.0.1:0` or a unix socket in a temp dir and is killed (its
//! whole process group) when the test ends, also on failure.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::thread;
use std::time::{Duration, Instant};

use runicorn_tests::{
    concurrent, deadline, get, keepalive, proc, rlimit, wait_until, Class, ClientLoop, Conn,
    InFlight, Server, LOCAL,
};

/// `runicorn -k green -b 127.0.0.1:0 EXTRA... APP`.
fn green(extra: &[&str], app: &str) -> Server {
    Class::Green.start(extra, app)
}

#[test]
fn a_thousand_concurrent_sleeps_share_one_thread() {
    // 1,000 client sockets here and 1,000 in the worker (which inherits the
    // limit), plus the listeners and pipes.
    let limit = rlimit::raise_nofile(4096);
    assert!(
        limit >= 2200,
        "RLIMIT_NOFILE is {limit}: the test needs ~2,200 descriptors"
    );
    let server = green(&["-w", "1", "--threads", "1"], "builtin:sleep");
    server.wait_workers(1, 10.0);
    let started = Instant::now();
    let report = concurrent(server.addr(), 1000, 1, "/?ms=200");
    let took = started.elapsed();
    eprintln!("1,000 concurrent sleeps of 200 ms on one may thread took {took:?}");
    assert_eq!(report.ok, 1000, "{report:?}\n{}", server.log());
    // Served one after another this would take 200 s; a generous bound, not
    // a benchmark figure.
    assert!(
        took < Duration::from_secs(10),
        "1,000 sleeps of 200 ms took {took:?}"
    );
}

#[test]
fn worker_connections_caps_concurrency() {
    let server = green(
        &[
            "-w",
            "1",
            "--worker-connections",
            "10",
            "--log-level",
            "debug",
        ],
        "builtin:sleep",
    );
    server.wait_workers(1, 10.0);
    let addr = server.addr().clone();
    let slow = InFlight::start(&server, &["/?ms=3000"; 10]);
    // The 11th connects (the kernel queues it) but is not accepted while
    // the 10 hold every permit.
    let mut eleventh = Conn::connect(&addr).expect("connect the 11th");
    eleventh.set_timeout(Duration::from_millis(1000)).unwrap();
    let early = eleventh.get("/?ms=1");
    match early {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the 11th connection was served while 10 were busy: {other:?}"),
    }
    eleventh.set_timeout(Duration::from_secs(10)).unwrap();
    let late = eleventh
        .read_final_response(false)
        .expect("the 11th is served once a slot frees");
    assert_eq!(late.status, 200);
    assert_eq!(late.text(), "slept 1 ms\n");
    slow.answered(&server);
}

#[test]
fn a_slow_pipelined_request_holds_back_the_quick_ones_behind_it() {
    let server = green(&["-w", "1"], "builtin:sleep");
    let mut conn = Conn::connect(server.addr()).unwrap();
    let host = server.addr().host_header();
    let pipelined = format!(
        "GET /?ms=150 HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /?ms=1 HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /?ms=2 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    conn.send(pipelined.as_bytes()).unwrap();
    for expected in ["slept 150 ms\n", "slept 1 ms\n", "slept 2 ms\n"] {
        let response = conn.read_final_response(false).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), expected);
    }
    assert!(conn.at_eof().unwrap(), "the server closes after `close`");
}

#[test]
fn max_requests_recycling_loses_no_request() {
    let server = green(
        &[
            "-w",
            "1",
            "--max-requests",
            "15",
            "--max-requests-jitter",
            "5",
        ],
        "builtin:hello",
    );
    let mut seen: BTreeSet<u32> = server.wait_workers(1, 10.0).into_iter().collect();
    let clients = ClientLoop::start(server.addr(), "/", 4);
    let recycled = wait_until(deadline(30.0), || {
        seen.extend(server.worker_pids());
        seen.len() >= 3
    });
    let report = clients.stop();
    assert!(
        recycled,
        "fewer than two recycles, workers seen {seen:?}, {report:?}:\n{}",
        server.log()
    );
    assert!(report.ok >= 30, "{report:?}");
    assert_eq!(
        report.failed,
        0,
        "requests lost across recycling: {report:?}\n{}",
        server.log()
    );
}

#[test]
fn worker_pinning_is_off() {
    let me = std::process::id();
    let ours = proc::cpus_allowed(me, me).expect("the test's own Cpus_allowed_list");
    if !ours.contains(['-', ',']) {
        eprintln!("SKIPPED: this test process may only run on CPU {ours}, so pinning cannot show");
        return;
    }
    let server = green(&["-w", "2", "--threads", "2"], "builtin:hello");
    server.expect_log("worker pinning off", 10.0);
    let workers = server.wait_workers(2, 10.0);
    // main + may's timer thread + 2 may workers, at least.
    let started = wait_until(deadline(10.0), || {
        workers.iter().all(|pid| proc::threads(*pid).len() >= 4)
    });
    assert!(started, "may's threads did not start in {workers:?}");
    for pid in workers {
        for tid in proc::threads(pid) {
            let Some(list) = proc::cpus_allowed(pid, tid) else {
                continue;
            };
            assert_eq!(
                list, ours,
                "thread {tid} of worker {pid} is pinned to {list} (the process may use {ours})"
            );
        }
    }
    // Two may threads per worker serve keep-alive traffic correctly.
    let report = keepalive(server.addr(), 8, 50, "/");
    assert_eq!(report.ok, 400, "{report:?}\n{}", server.log());
}

#[test]
fn the_head_deadline_is_enforced() {
    // A started head must be complete within --header-timeout.
    let server = green(
        &["-w", "1", "--header-timeout", "1", "--keep-alive", "1"],
        "builtin:hello",
    );
    let mut slow = Conn::connect(server.addr()).unwrap();
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let response = slow
        .read_final_response(false)
        .expect("a 408 for an unfinished head");
    assert_eq!(response.status, 408);
    assert!(response.closes());
}

#[test]
fn upstream_waits_yield_the_coroutine() {
    // An upstream that answers each connection after 500 ms, one thread per
    // connection, so only the worker can serialise the requests.
    let upstream = std::net::TcpListener::bind(LOCAL).unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    thread::spawn(move || {
        for stream in upstream.incoming().take(40) {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut line = String::new();
                let _ = BufReader::new(&stream).read_line(&mut line);
                thread::sleep(Duration::from_millis(500));
                let _ = stream.write_all(b"pong\n");
            });
        }
    });
    let server = green(&["-w", "1", "--threads", "1"], "builtin:upstream");
    server.wait_workers(1, 10.0);
    let started = Instant::now();
    let report = concurrent(server.addr(), 40, 1, &format!("/?addr={upstream_addr}"));
    let took = started.elapsed();
    assert_eq!(report.ok, 40, "{report:?}\n{}", server.log());
    // Serialised this would take 20 s.
    assert!(
        took < Duration::from_secs(10),
        "40 upstream calls took {took:?}"
    );
}

#[test]
fn echo_and_stream_run_on_coroutine_stacks() {
    let echo = green(&["-w", "1"], "builtin:echo");
    let mut conn = Conn::connect(echo.addr()).unwrap();
    let body = vec![b'x'; 200 * 1024];
    let response = conn.request("POST", "/e?q=1", &[], &body).unwrap();
    assert_eq!(response.status, 200, "{}", echo.log());
    assert!(response.text().contains("\"query\":\"q=1\""));
    let stream = green(&["-w", "1"], "builtin:stream");
    let response = get(stream.addr(), "/?kb=256").unwrap();
    assert_eq!(response.status, 200);
    assert!(response.chunked);
    assert_eq!(response.body.len(), 256 * 1024);
}
