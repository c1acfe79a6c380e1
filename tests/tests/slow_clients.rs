//! Slow and greedy clients (issue 16), under every worker class: the
//! deadlines the connection engine (`http::ConnState`) puts on a head
//! (`--header-timeout`), a body (`--body-timeout`, `--body-min-rate`) and a
//! write (`--write-timeout`), 413 before any body byte, and a client that
//! pipelines and never reads closed with the worker's memory bounded.
//!
//! Each deadline is set to a couple of seconds and the bounds asserted are
//! generous, but below the default the setting replaces, so each test
//! fails without its setting.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use runicorn_tests::{Class, Conn, Launch, Server, LOCAL};

runicorn_tests::class_matrix![
    a_head_dripped_a_byte_a_second_gets_408_at_the_header_timeout,
    a_connection_that_sends_nothing_is_closed_silently_at_the_header_timeout,
    a_slow_post_gets_408_and_the_app_never_sees_a_whole_body,
    a_body_under_the_minimum_rate_gets_408_after_its_grace,
    a_body_over_the_limit_gets_413_before_any_body_byte,
    a_chunked_body_gets_413_as_it_crosses_the_limit,
    a_never_reading_client_is_closed_at_the_write_timeout,
    a_pipelining_client_that_never_reads_keeps_the_worker_small,
    a_python_app_sees_a_read_error_for_a_slow_body,
];

/// A raw TCP connection to `server`, with a read timeout of `secs`.
fn connect(server: &Server, secs: u64) -> TcpStream {
    let stream = TcpStream::connect(server.addr().tcp()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .expect("read timeout");
    stream
}

/// Everything the server sends until it closes (or resets), and when that was.
fn read_until_closed(stream: &mut TcpStream) -> (String, Instant) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(count) => bytes.extend_from_slice(&buf[..count]),
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => break,
            Err(err) => panic!(
                "the server did not close in time ({err}); got {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    (String::from_utf8_lossy(&bytes).into_owned(), Instant::now())
}

/// Writes `bytes` one at a time, a second apart, until the server closes.
fn drip(mut stream: TcpStream, bytes: &'static [u8]) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for byte in bytes {
            if stream.write_all(std::slice::from_ref(byte)).is_err() {
                return;
            }
            thread::sleep(Duration::from_secs(1));
        }
    })
}

fn seconds(since: Instant, at: Instant) -> f64 {
    at.duration_since(since).as_secs_f64()
}

fn a_head_dripped_a_byte_a_second_gets_408_at_the_header_timeout(class: Class) {
    let server = class.start(&["--header-timeout", "2"], "builtin:hello");
    let start = Instant::now();
    let mut stream = connect(&server, 30);
    let dripper = drip(
        stream.try_clone().unwrap(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 0123456789\r\n\r\n",
    );
    let (text, closed) = read_until_closed(&mut stream);
    let took = seconds(start, closed);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text:?}\n{}",
        server.log()
    );
    assert!(text.contains("Connection: close\r\n"), "{text:?}");
    // The deadline is 2 s from the accept; the default (10 s) is far.
    assert!(
        (1.5..8.0).contains(&took),
        "answered after {took:.1}s\n{}",
        server.log()
    );
    drop(stream);
    dripper.join().unwrap();
    // The worker serves on.
    assert_eq!(runicorn_tests::get(server.addr(), "/").unwrap().status, 200);
}

fn a_connection_that_sends_nothing_is_closed_silently_at_the_header_timeout(class: Class) {
    let server = class.start(&["--header-timeout", "2"], "builtin:hello");
    let start = Instant::now();
    let mut stream = connect(&server, 30);
    let (text, closed) = read_until_closed(&mut stream);
    let took = seconds(start, closed);
    assert_eq!(text, "", "nothing sent, nothing answered");
    assert!(
        (1.5..8.0).contains(&took),
        "closed after {took:.1}s\n{}",
        server.log()
    );
    assert_eq!(runicorn_tests::get(server.addr(), "/").unwrap().status, 200);
}

/// A POST of 100 bytes of which only 10 come.
const SHORT_POST: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789";

fn a_slow_post_gets_408_and_the_app_never_sees_a_whole_body(class: Class) {
    let server = class.start(
        &["--body-timeout", "2", "--body-min-rate", "0"],
        "builtin:echo",
    );
    let mut stream = connect(&server, 30);
    stream.write_all(SHORT_POST).unwrap();
    let sent = Instant::now();
    let (text, closed) = read_until_closed(&mut stream);
    let took = seconds(sent, closed);
    // builtin:echo answers 200 with the body it read: it never answered.
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text:?}\n{}",
        server.log()
    );
    assert!(!text.contains("body_b64"), "{text:?}");
    // The default body timeout is half of --timeout: 15 s.
    assert!(
        (1.5..10.0).contains(&took),
        "answered after {took:.1}s\n{}",
        server.log()
    );
    assert_eq!(runicorn_tests::get(server.addr(), "/").unwrap().status, 200);
}

fn a_body_under_the_minimum_rate_gets_408_after_its_grace(class: Class) {
    // 1 s of grace, then 1,000 B/s; the client sends 2 B/s (each wait
    // far under the idle --body-timeout, 15 s by default).
    let server = class.start(
        &["--body-min-rate", "1000", "--body-min-rate-grace", "1"],
        "builtin:echo",
    );
    let mut stream = connect(&server, 30);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    let sent = Instant::now();
    let writer = stream.try_clone().unwrap();
    let dripper = thread::spawn(move || {
        let mut writer = writer;
        for _ in 0..100 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(500));
        }
    });
    let (text, closed) = read_until_closed(&mut stream);
    let took = seconds(sent, closed);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text:?}\n{}",
        server.log()
    );
    // The default (500 B/s after 20 s of grace) would wait 20 s.
    assert!(
        (0.8..12.0).contains(&took),
        "answered after {took:.1}s\n{}",
        server.log()
    );
    drop(stream);
    dripper.join().unwrap();
}

fn a_body_over_the_limit_gets_413_before_any_body_byte(class: Class) {
    let server = class.start(&["--limit-request-body", "1000"], "builtin:echo");
    let mut stream = connect(&server, 10);
    // The head only: no body byte is ever sent.
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        .unwrap();
    let (text, _) = read_until_closed(&mut stream);
    assert!(
        text.starts_with("HTTP/1.1 413 Request Entity Too Large\r\n")
            || text.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{text:?}\n{}",
        server.log()
    );
    // A body at the limit is served.
    let mut conn = Conn::connect(server.addr()).unwrap();
    let response = conn.request("POST", "/", &[], &[b'x'; 1000]).unwrap();
    assert_eq!(response.status, 200);
}

fn a_chunked_body_gets_413_as_it_crosses_the_limit(class: Class) {
    let server = class.start(&["--limit-request-body", "1000"], "builtin:echo");
    let mut stream = connect(&server, 10);
    let chunk = format!("258\r\n{}\r\n", "x".repeat(600));
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    stream.write_all(chunk.as_bytes()).unwrap();
    stream.write_all(chunk.as_bytes()).unwrap();
    // 1,200 bytes sent, and the body not ended: the answer comes anyway.
    let (text, _) = read_until_closed(&mut stream);
    assert!(
        text.starts_with("HTTP/1.1 413 "),
        "{text:?}\n{}",
        server.log()
    );
}

/// Peak resident set of `pid`, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Sends `request` over and over without reading anything back, until the
/// server closes the connection (a write fails) or `secs` pass; when the
/// writes stopped going anywhere, seconds after the start.
fn pipeline_until_closed(server: &Server, request: &[u8], secs: f64) -> Option<f64> {
    let mut stream = connect(server, 30);
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let batch = request.repeat(64);
    let start = Instant::now();
    while seconds(start, Instant::now()) < secs {
        match stream.write(&batch) {
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(seconds(start, Instant::now())),
        }
    }
    None
}

fn a_never_reading_client_is_closed_at_the_write_timeout(class: Class) {
    let server = class.start(&["--write-timeout", "2"], "builtin:stream");
    server.wait_workers(1, 10.0);
    // 64 MiB answers, never read: the first one fills every buffer.
    let closed =
        pipeline_until_closed(&server, b"GET /?kb=65536 HTTP/1.1\r\nHost: x\r\n\r\n", 40.0);
    let closed = closed.unwrap_or_else(|| panic!("not closed in 40 s\n{}", server.log()));
    // The default write timeout is 15 s.
    assert!(closed < 12.0, "closed after {closed:.1}s\n{}", server.log());
    assert_eq!(
        runicorn_tests::get(server.addr(), "/?kb=1").unwrap().status,
        200
    );
}

fn a_pipelining_client_that_never_reads_keeps_the_worker_small(class: Class) {
    let server = class.start(&["--write-timeout", "2"], "builtin:hello");
    let worker = server.wait_workers(1, 10.0)[0];
    assert_eq!(runicorn_tests::get(server.addr(), "/").unwrap().status, 200);
    let before = peak_rss_kib(worker);
    // Small requests as fast as the socket takes them, answers never read:
    // without a bound the worker would buffer answers for as long as it
    // could read requests.
    let closed = pipeline_until_closed(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 40.0);
    let closed = closed.unwrap_or_else(|| panic!("not closed in 40 s\n{}", server.log()));
    assert!(closed < 12.0, "closed after {closed:.1}s\n{}", server.log());
    let after = peak_rss_kib(worker);
    assert!(
        after < before + 16 * 1024,
        "the worker's peak RSS grew from {before} to {after} KiB"
    );
    assert_eq!(runicorn_tests::get(server.addr(), "/").unwrap().status, 200);
}

/// A WSGI app that reads its whole body and says on stderr what it got.
const READER_APP: &str = r#"
import sys

def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        body = environ["wsgi.input"].read(length)
    except Exception as exc:
        sys.stderr.write("READ FAILED: %s: %s\n" % (type(exc).__name__, exc))
        sys.stderr.flush()
        raise
    sys.stderr.write("READ %d BYTES\n" % len(body))
    sys.stderr.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"read %d bytes" % len(body)]
"#;

fn python_launch(class: Class, dir: &Path, extra: &[&str]) -> Launch {
    let mut args = vec!["-k", class.name(), "-b", LOCAL];
    args.extend_from_slice(extra);
    args.push("reader:app");
    Launch::new(args)
        .current_dir(dir)
        .env("VIRTUAL_ENV", "")
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

fn a_python_app_sees_a_read_error_for_a_slow_body(class: Class) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("reader.py"), READER_APP).expect("write app");
    let server = python_launch(
        class,
        dir.path(),
        &["--body-timeout", "2", "--body-min-rate", "0"],
    )
    .start();
    let mut stream = connect(&server, 30);
    stream.write_all(SHORT_POST).unwrap();
    let (text, _) = read_until_closed(&mut stream);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text:?}\n{}",
        server.log()
    );
    let line = server.expect_log("READ FAILED: OSError", 10.0);
    assert!(line.contains("error reading the request body"), "{line}");
    assert_eq!(server.log_count("READ 100 BYTES"), 0, "{}", server.log());
    assert_eq!(server.log_count("READ 10 BYTES"), 0, "{}", server.log());
    // A whole body is read whole.
    let mut conn = Conn::connect(server.addr()).unwrap();
    let response = conn.request("POST", "/", &[], &[b'x'; 100]).unwrap();
    assert_eq!(response.text(), "read 100 bytes");
}

#[test]
fn sync_cuts_a_header_timeout_its_heartbeat_would_not_outlast() {
    // A sync worker does not beat while it waits for a head: a 20 s
    // deadline under --timeout 4 would have the master kill it first.
    let server = Class::Sync.start(
        &["--timeout", "4", "--header-timeout", "20"],
        "builtin:hello",
    );
    let line = server.expect_log(
        "--header-timeout 20s is cut to 2s with -k sync, half of --timeout 4s",
        10.0,
    );
    assert!(line.contains("[WARNING]"), "{line}");
    let worker = server.wait_workers(1, 10.0)[0];
    let start = Instant::now();
    let mut stream = connect(&server, 30);
    stream.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let (text, closed) = read_until_closed(&mut stream);
    let took = seconds(start, closed);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "{text:?}\n{}",
        server.log()
    );
    assert!(took < 4.0, "answered after {took:.1}s\n{}", server.log());
    assert_eq!(server.worker_pids(), vec![worker], "{}", server.log());
    assert_eq!(
        server.log_count("WORKER TIMEOUT (pid"),
        0,
        "{}",
        server.log()
    );
    let fine = Class::Sync.start(
        &["--timeout", "4", "--header-timeout", "2"],
        "builtin:hello",
    );
    fine.expect_log("Booting worker", 10.0);
    assert_eq!(fine.log_count("--header-timeout"), 0, "{}", fine.log());
}

#[test]
fn sync_warns_of_body_and_write_timeouts_its_timeout_cuts_first() {
    // The master kills a sync worker whose request outlives --timeout, so
    // a body or write timeout at or past it never fires: said at start.
    let server = Class::Sync.start(
        &[
            "--timeout",
            "4",
            "--body-timeout",
            "10",
            "--write-timeout",
            "4",
        ],
        "builtin:hello",
    );
    for flag in ["--body-timeout 10s", "--write-timeout 4s"] {
        let line = server.expect_log(
            &format!("{flag} is not reached with -k sync under --timeout 4s"),
            10.0,
        );
        assert!(line.contains("[WARNING]"), "{line}");
    }
    let fine = Class::Sync.start(
        &[
            "--timeout",
            "4",
            "--body-timeout",
            "3",
            "--write-timeout",
            "1",
        ],
        "builtin:hello",
    );
    fine.expect_log("Booting worker", 10.0);
    assert_eq!(fine.log_count("is not reached"), 0, "{}", fine.log());
}
