//! The engine against tiny servers written here (std threads on
//! 127.0.0.1:0 or a unix socket in a temp dir), one per behaviour: every
//! response framing, the server closing, each error kind, the open loop's
//! latency from the scheduled send (no coordinated omission), stop,
//! progress and pinning.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use runicorn_loadgen::{
    run, ErrorKind, LoadError, Measurement, Mode, Phase, Plan, Request, Target,
};

/// Serves every accepted connection on its own thread with `handler`.
fn serve<F>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = Arc::clone(&handler);
            thread::spawn(move || handler(stream));
        }
    });
    addr
}

/// Reads one request head (requests here have no body); None at the end.
fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" {
            return Some(head);
        }
        head.push_str(&line);
    }
}

/// Answers every request on a connection with `response`.
fn answer(stream: TcpStream, response: &[u8]) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while read_head(&mut reader).is_some() {
        if writer.write_all(response).is_err() {
            return;
        }
    }
}

fn plan(target: Target, request: Request) -> Plan {
    Plan {
        target,
        requests: vec![request],
        mode: Mode::Closed,
        connections: 2,
        keep_alive: true,
        threads: 1,
        cpus: Vec::new(),
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
    }
}

fn get(path: &str) -> Request {
    Request::build("GET", path, "test", &[], b"", true)
}

fn measure(plan: &Plan) -> Measurement {
    run(plan, &AtomicBool::new(false), &mut |_| {}).unwrap()
}

/// What a failed assertion shows (the histogram's Debug is its every bucket).
fn summary(m: &Measurement) -> String {
    format!(
        "requests {}, elapsed {:?}, p50 {} µs, p99 {} µs, statuses {:?}, errors {:?}, connects {}, max_open {}, sent {}, received {}, cpu {:?}, stopped {}",
        m.requests,
        m.elapsed,
        m.latency.value_at_quantile(0.5),
        m.latency.value_at_quantile(0.99),
        m.statuses,
        m.errors,
        m.connects,
        m.max_open,
        m.bytes_sent,
        m.bytes_received,
        m.client_cpu,
        m.stopped
    )
}

fn errors(measurement: &Measurement) -> BTreeMap<String, u64> {
    measurement
        .errors
        .iter()
        .map(|(kind, count)| (kind.to_string(), *count))
        .collect()
}

/// A clean run: responses all with `status`, counted in the histogram too.
fn assert_clean(measurement: &Measurement, status: u16) {
    assert!(measurement.requests > 10, "{}", summary(measurement));
    assert_eq!(
        errors(measurement),
        BTreeMap::new(),
        "{}",
        summary(measurement)
    );
    assert_eq!(
        measurement.statuses,
        BTreeMap::from([(status, measurement.requests)])
    );
    assert_eq!(measurement.latency.len(), measurement.requests);
    assert!(!measurement.stopped);
    assert_eq!(measurement.elapsed, Duration::from_millis(500));
    assert!(measurement.bytes_sent > 0 && measurement.bytes_received > 0);
}

#[test]
fn keep_alive_content_length() {
    let connections = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&connections);
    let addr = serve(move |stream| {
        counted.fetch_add(1, Ordering::SeqCst);
        answer(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    });
    let measurement = measure(&plan(Target::Tcp(addr), get("/")));
    assert_clean(&measurement, 200);
    // Both connections were opened in the warm-up and kept.
    assert_eq!(measurement.connects, 0);
    assert_eq!(measurement.max_open, 2);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert!(measurement.latency.value_at_quantile(0.5) < 1_000_000);
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let addr = serve(|stream| {
        answer(
            stream,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
        );
    });
    assert_clean(&measure(&plan(Target::Tcp(addr), get("/"))), 200);
}

#[test]
fn large_bodies_in_many_reads() {
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
    response.resize(response.len() + 1_000_000, b'x');
    let response: &'static [u8] = response.leak();
    let addr = serve(move |stream| answer(stream, response));
    let measurement = measure(&plan(Target::Tcp(addr), get("/")));
    assert_clean(&measurement, 200);
    // The counters start with the measured window, so a response read
    // across its start counts as a request with only its later bytes, and
    // one still arriving at its end has bytes and no request yet: at most
    // one of each per open connection (a CI run under load had one).
    let open = measurement.max_open as u64;
    let whole = response.len() as u64;
    assert!(
        measurement.bytes_received >= measurement.requests.saturating_sub(open) * whole,
        "{} bytes for {} responses of {whole} bytes on {open} connections",
        measurement.bytes_received,
        measurement.requests
    );
    assert!(
        measurement.bytes_received <= (measurement.requests + open) * whole,
        "{} bytes for {} responses of {whole} bytes on {open} connections",
        measurement.bytes_received,
        measurement.requests
    );
}

#[test]
fn informational_responses_skipped_and_no_content() {
    let addr = serve(|stream| {
        answer(
            stream,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        );
    });
    assert_clean(&measure(&plan(Target::Tcp(addr), get("/"))), 204);
}

#[test]
fn head_responses_have_no_body() {
    // Content-Length says 5, but a response to HEAD has no body: were the
    // generator to wait for 5 bytes, every request would time out.
    let addr = serve(|stream| answer(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
    let mut plan = plan(
        Target::Tcp(addr),
        Request::build("HEAD", "/", "t", &[], b"", true),
    );
    plan.timeout = Duration::from_millis(300);
    assert_clean(&measure(&plan), 200);
}

/// Answers one request with `response`, then closes the connection.
fn answer_once(stream: TcpStream, response: &[u8]) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    if read_head(&mut reader).is_some() {
        let _ = writer.write_all(response);
    }
}

#[test]
fn close_delimited_bodies() {
    let addr =
        serve(|stream| answer_once(stream, b"HTTP/1.1 200 OK\r\n\r\nthe body ends at the close"));
    let measurement = measure(&plan(Target::Tcp(addr), get("/")));
    assert_clean(&measurement, 200);
    // One connection per response, give or take one per connection at the
    // window's start (opened in the warm-up, answered in the window).
    assert!(
        measurement.connects + u64::from(measurement.max_open) >= measurement.requests,
        "{}",
        summary(&measurement)
    );
}

#[test]
fn connection_close_reconnects_without_errors() {
    // As runicorn's sync class: every response says Connection: close.
    let addr = serve(|stream| {
        answer_once(
            stream,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        );
    });
    let measurement = measure(&plan(Target::Tcp(addr), get("/")));
    assert_clean(&measurement, 200);
    // One connection per response (give or take the ones at the edges).
    assert!(
        measurement.connects + 2 >= measurement.requests,
        "{}",
        summary(&measurement)
    );
    let addr =
        serve(|stream| answer_once(stream, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    assert_clean(&measure(&plan(Target::Tcp(addr), get("/"))), 200);
}

#[test]
fn new_connection_per_request() {
    // The server answers 500 to a second request on a connection and to a
    // request without Connection: close.
    let addr = serve(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut served = 0;
        while let Some(head) = read_head(&mut reader) {
            served += 1;
            let good = served == 1 && head.contains("Connection: close\r\n");
            let response: &[u8] = if good {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            } else {
                b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno"
            };
            if writer.write_all(response).is_err() {
                return;
            }
        }
    });
    let mut plan = plan(
        Target::Tcp(addr),
        Request::build("GET", "/", "t", &[], b"", false),
    );
    plan.keep_alive = false;
    let measurement = measure(&plan);
    assert_clean(&measurement, 200);
    assert!(
        measurement.connects >= measurement.requests,
        "{}",
        summary(&measurement)
    );
}

#[test]
fn unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sock");
    let listener = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while read_head(&mut reader).is_some() {
                    if writer
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let measurement = measure(&plan(Target::Unix(path.clone()), get("/")));
    assert_clean(&measurement, 200);
    // No socket there: each attempt is a connect error.
    let mut plan = plan(Target::Unix(dir.path().join("none.sock")), get("/"));
    plan.duration = Duration::from_millis(300);
    let measurement = measure(&plan);
    assert_eq!(measurement.requests, 0);
    assert!(
        measurement.errors[&ErrorKind::Connect] > 0,
        "{}",
        summary(&measurement)
    );
    drop(UnixStream::connect(&path).unwrap());
}

/// Runs `plan` against a server that makes every request fail as `kind`.
fn failing(addr: SocketAddr, kind: ErrorKind, timeout: Duration) {
    let mut plan = plan(Target::Tcp(addr), get("/"));
    plan.timeout = timeout;
    plan.warmup = Duration::ZERO;
    plan.duration = Duration::from_millis(800);
    let measurement = measure(&plan);
    let only: Vec<ErrorKind> = measurement.errors.keys().copied().collect();
    assert_eq!(only, [kind], "{}", summary(&measurement));
    assert!(measurement.errors[&kind] > 0);
}

#[test]
fn connect_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    failing(addr, ErrorKind::Connect, Duration::from_secs(5));
}

#[test]
fn reset() {
    let addr = serve(|stream| {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        if read_head(&mut reader).is_some() {
            // Closing with unread bytes... none here; linger 0 sends a RST.
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
    });
    failing(addr, ErrorKind::Reset, Duration::from_secs(5));
}

#[test]
fn closed_mid_response() {
    let addr = serve(|stream| {
        answer_once(
            stream,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
        );
    });
    failing(addr, ErrorKind::Closed, Duration::from_secs(5));
    // Closed before any byte of the response.
    let addr = serve(|stream| answer_once(stream, b""));
    failing(addr, ErrorKind::Closed, Duration::from_secs(5));
}

#[test]
fn timeout() {
    let addr = serve(|stream| {
        let mut reader = BufReader::new(stream);
        while read_head(&mut reader).is_some() {}
    });
    failing(addr, ErrorKind::Timeout, Duration::from_millis(150));
}

#[test]
fn bad_response() {
    let addr = serve(|stream| answer(stream, b"SSH-2.0-OpenSSH_9.6\r\n\r\n"));
    failing(addr, ErrorKind::BadResponse, Duration::from_secs(5));
}

#[test]
fn error_statuses_are_responses_and_errors() {
    let addr = serve(|stream| {
        answer(
            stream,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        );
    });
    let measurement = measure(&plan(Target::Tcp(addr), get("/")));
    assert!(measurement.requests > 10);
    assert_eq!(
        measurement.statuses,
        BTreeMap::from([(503, measurement.requests)])
    );
    assert_eq!(
        errors(&measurement),
        BTreeMap::from([("status_5xx".to_string(), measurement.requests)])
    );
    let addr = serve(|stream| {
        answer(
            stream,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        );
    });
    let measurement = measure(&plan(Target::Tcp(addr), get("/")));
    assert_eq!(
        errors(&measurement),
        BTreeMap::from([("status_4xx".to_string(), measurement.requests)])
    );
}

#[test]
fn requests_are_sent_in_turn() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let addr = serve(move |stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        while let Some(head) = read_head(&mut reader) {
            let line = head.lines().next().unwrap_or("").to_string();
            let mut body = Vec::new();
            if line.starts_with("POST") {
                body.resize(3, 0);
                reader.read_exact(&mut body).unwrap();
            }
            log.lock()
                .unwrap()
                .push(format!("{line} {}", String::from_utf8_lossy(&body)));
            if writer
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    });
    let mut plan = plan(Target::Tcp(addr), get("/a"));
    plan.requests
        .push(Request::build("POST", "/b", "t", &[], b"abc", true));
    plan.connections = 1;
    measure(&plan);
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 10);
    for (index, line) in seen.iter().enumerate() {
        let want = if index % 2 == 0 {
            "GET /a HTTP/1.1 "
        } else {
            "POST /b HTTP/1.1 abc"
        };
        assert_eq!(line, want, "request {index}");
    }
}

/// A server that serves one request at a time (over all connections),
/// each taking `service`.
fn one_at_a_time(service: Duration) -> SocketAddr {
    let lock = Arc::new(Mutex::new(()));
    serve(move |stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        while read_head(&mut reader).is_some() {
            let guard = lock.lock().unwrap();
            thread::sleep(service);
            drop(guard);
            if writer
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    })
}

#[test]
fn open_loop_shows_the_queue_closed_loop_hides() {
    // 10 ms per request, one at a time: the server does 100 requests/s.
    let addr = one_at_a_time(Duration::from_millis(10));
    let mut closed = plan(Target::Tcp(addr), get("/"));
    closed.connections = 1;
    closed.warmup = Duration::ZERO;
    closed.duration = Duration::from_secs(2);
    let closed = measure(&closed);
    // The closed loop waits for each answer: its latency is the service time.
    let closed_p99 = closed.latency.value_at_quantile(0.99);
    assert!(closed.requests > 20, "{}", summary(&closed));
    // Asked for 200 requests/s, the server falls behind by 100 every
    // second: requests scheduled late in the window wait for the ones
    // before (up to a second in 2 s), and their latency counts that wait.
    let mut open = plan(Target::Tcp(addr), get("/"));
    open.mode = Mode::Open { rate: 200.0 };
    open.connections = 1;
    open.warmup = Duration::ZERO;
    open.duration = Duration::from_secs(2);
    let open = measure(&open);
    let open_p99 = open.latency.value_at_quantile(0.99);
    let open_p50 = open.latency.value_at_quantile(0.5);
    assert!(
        open_p99 > 400_000 && open_p99 > 10 * closed_p99,
        "open-loop p99 {open_p99} µs, closed-loop p99 {closed_p99} µs"
    );
    assert!(
        open_p50 > 5 * closed.latency.value_at_quantile(0.5),
        "{open_p50}"
    );
    assert_eq!(open.errors, BTreeMap::new());
}

#[test]
fn open_loop_keeps_its_rate() {
    let addr = serve(|stream| answer(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    for threads in [1, 2] {
        let mut plan = plan(Target::Tcp(addr), get("/"));
        plan.mode = Mode::Open { rate: 400.0 };
        plan.connections = 8;
        plan.threads = threads;
        plan.duration = Duration::from_secs(1);
        let measurement = measure(&plan);
        // 400 scheduled in the window; a loaded machine may end a few short.
        assert!(
            (360..=410).contains(&measurement.requests),
            "{threads} threads: {}",
            summary(&measurement)
        );
        assert_eq!(measurement.errors, BTreeMap::new());
        // A fast server needs few connections at once.
        assert!(measurement.max_open <= 8);
    }
}

#[test]
fn open_loop_opens_connections_up_to_the_most() {
    // 50 ms per request, answered in parallel: 100 requests/s need about
    // 5 connections at once; at most 3 may be open.
    let addr = serve(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        while read_head(&mut reader).is_some() {
            thread::sleep(Duration::from_millis(50));
            if writer
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    });
    let mut plan = plan(Target::Tcp(addr), get("/"));
    plan.mode = Mode::Open { rate: 100.0 };
    plan.connections = 3;
    plan.duration = Duration::from_secs(1);
    let measurement = measure(&plan);
    assert_eq!(measurement.max_open, 3, "{}", summary(&measurement));
    // 3 connections serve 60 requests/s of the 100 asked: the queue grows.
    assert!(measurement.requests < 80, "{}", summary(&measurement));
    assert!(measurement.latency.value_at_quantile(0.99) > 200_000);
}

#[test]
fn stop_returns_what_was_measured() {
    let addr = serve(|stream| answer(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    let mut plan = plan(Target::Tcp(addr), get("/"));
    plan.warmup = Duration::from_millis(350);
    plan.duration = Duration::from_secs(20);
    let stop = AtomicBool::new(false);
    let mut calls = Vec::new();
    let measurement = run(&plan, &stop, &mut |progress| {
        calls.push((progress.phase, progress.requests));
        if progress.phase == Phase::Measure && progress.elapsed > Duration::from_millis(300) {
            stop.store(true, Ordering::Relaxed);
        }
    })
    .unwrap();
    assert!(measurement.stopped);
    assert!(
        measurement.elapsed < Duration::from_secs(5),
        "{}",
        summary(&measurement)
    );
    assert!(measurement.requests > 0);
    assert!(
        calls.iter().any(|(phase, _)| *phase == Phase::Warmup),
        "{calls:?}"
    );
    // Stopped in the warm-up: nothing measured.
    let stop = AtomicBool::new(true);
    plan.warmup = Duration::from_secs(20);
    let measurement = run(&plan, &stop, &mut |_| {}).unwrap();
    assert!(measurement.stopped);
    assert_eq!(
        (measurement.requests, measurement.elapsed),
        (0, Duration::ZERO)
    );
}

#[test]
fn pinning_and_cpu_time() {
    let addr = serve(|stream| answer(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    let mut plan = plan(Target::Tcp(addr), get("/"));
    plan.cpus = vec![0];
    plan.threads = 2;
    let measurement = measure(&plan);
    assert_clean(&measurement, 200);
    assert!(measurement.client_cpu > Duration::ZERO);
    assert!(measurement.client_cpu < Duration::from_secs(2));
    plan.cpus = vec![100_000];
    let error = run(&plan, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, LoadError::Pin { cpu: 100_000, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("CPU 100000"), "{error}");
}

#[test]
fn invalid_plans() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut plan = plan(Target::Tcp(addr), get("/"));
    plan.connections = 0;
    let error = run(&plan, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid load plan: connections must be at least 1"
    );
    plan.connections = 1;
    plan.mode = Mode::Open { rate: 0.0 };
    let error = run(&plan, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("rate"), "{error}");
}
