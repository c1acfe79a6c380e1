//! End-to-end tests of the async worker class (issue 6): the real binary,
//! loopback and unix sockets, real signals. Every server binds
//! `127.0.0.1:0` or a unix socket in a temp dir and is killed (its whole
//! process group) when the test ends, also on failure.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use runicorn_tests::{
    concurrent, exit_code, get, scenario, wait_replaced, Class, Conn, Server, Signal,
};

/// `runicorn -k async -b 127.0.0.1:0 ARGS... APP`.
fn serve(args: &[&str], app: &str) -> Server {
    Class::Async.start(args, app)
}

#[test]
fn a_thousand_sleeping_requests_share_one_worker() {
    const CLIENTS: usize = 1000;
    let server = serve(&["-w", "1"], "builtin:sleep");
    server.wait_workers(1, 10.0);
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, start) = (server.addr().clone(), Arc::clone(&start));
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    start.wait();
                    get(&addr, "/?ms=200").map(|response| (response.status, response.text()))
                })
                .expect("spawn a client thread")
        })
        .collect();
    start.wait();
    let started = Instant::now();
    let mut failures = Vec::new();
    for handle in handles {
        match handle.join().expect("client thread") {
            Ok((200, text)) if text == "slept 200 ms\n" => {}
            other => failures.push(format!("{other:?}")),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} failed, first: {:?}\n{}",
        failures.len(),
        failures.first(),
        server.log()
    );
    // Served one at a time they would take 200 s.
    assert!(
        elapsed < Duration::from_secs(10),
        "{CLIENTS} sleeps of 200 ms took {elapsed:?}"
    );
    eprintln!("{CLIENTS} concurrent 200 ms sleeps on one async worker: {elapsed:?}");
}

/// `builtin:cpu` has no async entry, so it runs on the blocking pool: a long
/// computation there must not stop the event loop from answering a short
/// request of the same app (`?n=1`, as cheap as `builtin:hello`).
#[test]
fn a_sync_app_on_the_pool_does_not_stall_the_event_loop() {
    let server = serve(&["-w", "1", "--log-level", "debug"], "builtin:cpu");
    server.wait_workers(1, 10.0);
    let addr = server.addr().clone();
    let long = thread::spawn(move || get(&addr, "/?n=3000000"));
    server.expect_log("GET /?n=3000000", 10.0);
    for attempt in 0..5 {
        let response = get(server.addr(), "/?n=1")
            .unwrap_or_else(|err| panic!("short request {attempt}: {err}\n{}", server.log()));
        assert_eq!(response.status, 200);
        assert!(response.text().starts_with("cpu 1 rounds: "));
    }
    assert!(
        !long.is_finished(),
        "the long computation ended before the short requests; the test proves nothing"
    );
    drop(server);
    let _ = long.join();
}

#[test]
fn worker_connections_caps_the_open_connections() {
    let server = serve(
        &["-w", "1", "--worker-connections", "2", "--keep-alive", "30"],
        "builtin:hello",
    );
    server.wait_workers(1, 10.0);
    let mut first = Conn::connect(server.addr()).unwrap();
    let mut second = Conn::connect(server.addr()).unwrap();
    for conn in [&mut first, &mut second] {
        let response = conn.get("/").unwrap();
        assert_eq!(response.status, 200);
        assert!(!response.closes());
    }
    // Both permits are held by idle keep-alive connections: the third
    // connection waits in the kernel's queue, unanswered.
    let mut third = Conn::connect(server.addr()).unwrap();
    third.set_timeout(Duration::from_secs(1)).unwrap();
    third
        .send(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        third.read_response(false).is_err(),
        "a third connection was served past --worker-connections 2"
    );
    // One closes, its permit frees, and the third is accepted and answered.
    drop(first);
    third.set_timeout(Duration::from_secs(10)).unwrap();
    let response = third
        .read_response(false)
        .expect("answered once a permit frees");
    assert_eq!(response.text(), "Hello, World!");
    assert_eq!(second.get("/").unwrap().status, 200);
}

#[test]
fn http_1_0_connections_are_kept_alive_when_asked() {
    let server = serve(&["-w", "1"], "builtin:hello");
    let mut old = Conn::connect(server.addr()).unwrap();
    for _ in 0..3 {
        old.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let response = old.read_response(false).unwrap();
        assert_eq!(response.text(), "Hello, World!");
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }
    // Without the header, 1.0 closes.
    old.send(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let response = old.read_response(false).unwrap();
    assert!(response.closes());
    old.set_timeout(Duration::from_secs(5)).unwrap();
    assert!(old.at_eof().unwrap(), "the 1.0 connection was not closed");
}

#[test]
fn the_async_entry_of_an_app_pipelines_in_order() {
    // The async entry of hello pipelines as the sync entry of echo does
    // (classes.rs).
    let hello = serve(&["-w", "1"], "builtin:hello");
    let mut conn = Conn::connect(hello.addr()).unwrap();
    conn.send(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(50))
        .unwrap();
    for _ in 0..50 {
        assert_eq!(conn.read_response(false).unwrap().text(), "Hello, World!");
    }
}

#[test]
fn max_requests_recycles_the_worker_without_losing_a_request() {
    let server = serve(&["-w", "1", "--max-requests", "20"], "builtin:hello");
    let first = server.wait_workers(1, 10.0);
    let report = concurrent(server.addr(), 4, 25, "/");
    assert_eq!(report.ok, 100, "{report:?}\n{}", server.log());
    assert_eq!(report.failed, 0, "{report:?}");
    let recycled = wait_replaced(&server, &first, 15.0);
    assert!(
        recycled,
        "worker {first:?} was not recycled:\n{}",
        server.log()
    );
    assert!(
        server.log_count("Autorestarting worker after current request.") >= 2,
        "{}",
        server.log()
    );
}

#[test]
fn a_unix_socket_serves_with_keep_alive() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("async.sock");
    let bind = format!("unix:{}", socket.display());
    let mut server = Server::start(["-k", "async", "-w", "1", "-b", &bind, "builtin:sleep"]);
    let response = get(server.addr(), "/?ms=1").unwrap();
    assert_eq!(response.text(), "slept 1 ms\n");
    let mut conn = Conn::connect(server.addr()).unwrap();
    for _ in 0..3 {
        let response = conn.get("/?ms=1").unwrap();
        assert_eq!(response.status, 200);
        assert!(!response.closes());
    }
    drop(conn);
    server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut server, 40.0), 0, "{}", server.log());
    assert!(!socket.exists(), "unix socket left behind");
}

#[test]
fn the_builtin_apps_answer_over_the_async_worker() {
    // echo (sync, on the pool): a chunked body with a trailer.
    let echo = serve(&["-w", "1"], "builtin:echo");
    let chunked = b"POST /e?k=v HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT-Rail: z\r\n\r\n";
    let response = runicorn_tests::raw_response(echo.addr(), chunked).unwrap();
    assert_eq!(response.status, 200);
    let json = response.json();
    assert_eq!(json["body_b64"], "YWJj");
    assert_eq!(json["trailers"], serde_json::json!([["T-Rail", "z"]]));
    // A body larger than the socket buffers, read through the pool thread.
    let body = vec![b'x'; 300 * 1024];
    let mut conn = Conn::connect(echo.addr()).unwrap();
    let response = conn.request("POST", "/big", &[], &body).unwrap();
    assert_eq!(response.status, 200);
    assert!(response.text().contains("\"body_b64\":\"eHh4"));

    // stream (sync, chunked, larger than the flush threshold).
    let stream = serve(&["-w", "1"], "builtin:stream");
    let response = get(stream.addr(), "/?kb=200").unwrap();
    assert!(response.chunked);
    assert_eq!(response.body.len(), 200 * 1024);

    // upstream (sync): its connection is the pool thread's blocking one.
    let (upstream_addr, peer) = scenario::pong_upstream();
    let relay = serve(&["-w", "1"], "builtin:upstream");
    let response = get(relay.addr(), &format!("/?addr={upstream_addr}")).unwrap();
    assert_eq!(response.text(), "pong: ping from runicorn\n");
    peer.join().unwrap();

    // HEAD gets the headers of GET and no body.
    let hello = serve(&["-w", "1"], "builtin:hello");
    let mut conn = Conn::connect(hello.addr()).unwrap();
    let response = conn.request("HEAD", "/", &[], b"").unwrap();
    assert_eq!(response.header("content-length"), Some("13"));
    assert!(response.body.is_empty());
    assert_eq!(conn.get("/").unwrap().text(), "Hello, World!");
}
