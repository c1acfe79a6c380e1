//! The sync worker's loop in-process, without a master or fork: a real
//! loopback listener, a real scoreboard slot, a shutdown state driven by
//! the test instead of signals.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use runicorn_worker::{Ending, Listener, Settings, Shutdown, Slot, Worker, WorkerClass};
use runicorn_worker_sync::SyncWorker;

struct Running {
    addr: std::net::SocketAddr,
    shutdown: Shutdown,
    slot: Slot,
    thread: thread::JoinHandle<Ending>,
}

fn start(app: &str, max_requests: u64) -> Running {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let slot = Slot::local();
    let shutdown = Shutdown::new().unwrap();
    let settings = Settings {
        timeout: Duration::from_secs(2),
        ..Settings::default()
    };
    let worker = Worker {
        listeners: vec![Listener::Tcp(tcp)],
        settings: Arc::new(settings),
        app: runicorn_app::builtin::lookup(app).unwrap(),
        slot: slot.clone(),
        shutdown: shutdown.clone(),
        age: 1,
        max_requests,
    };
    let thread = thread::spawn(move || SyncWorker.run(worker));
    Running {
        addr,
        shutdown,
        slot,
        thread,
    }
}

fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn join_within(running: Running, secs: u64) -> Ending {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !running.thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the worker loop did not stop within {secs}s"
        );
        thread::sleep(Duration::from_millis(10));
    }
    running.thread.join().unwrap()
}

#[test]
fn serves_one_request_per_connection_and_stops_gracefully() {
    let running = start("hello", 0);
    for _ in 0..3 {
        let response = exchange(running.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("Connection: close"), "{response}");
        assert!(response.ends_with("Hello, World!"), "{response}");
    }
    // A second request on the same connection is never read: the response
    // closes the connection.
    let pipelined = exchange(
        running.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(pipelined.matches("HTTP/1.1 200").count(), 1, "{pipelined}");
    assert_eq!(running.slot.requests_served(), 4);
    assert!(running.slot.last_heartbeat().is_some());
    running.shutdown.request_graceful();
    assert_eq!(join_within(running, 5), Ending::Stopped);
}

#[test]
fn retires_itself_after_max_requests() {
    let running = start("hello", 2);
    for _ in 0..2 {
        assert!(exchange(running.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .starts_with("HTTP/1.1 200"));
    }
    assert_eq!(join_within(running, 5), Ending::Stopped);
}

#[test]
fn a_bad_request_is_answered_400_and_not_counted() {
    let running = start("hello", 0);
    let response = exchange(running.addr, b"GET / HTTP/1.1\r\nbad header line\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert_eq!(running.slot.requests_served(), 0);
    let response = exchange(running.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    running.shutdown.request_graceful();
    assert_eq!(join_within(running, 5), Ending::Stopped);
}

#[test]
fn the_scoreboard_names_the_request_in_flight() {
    let running = start("sleep", 0);
    let addr = running.addr;
    let client = thread::spawn(move || exchange(addr, b"GET /?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some((_, line)) = running.slot.oldest_request() {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "the request never showed in the scoreboard"
        );
        thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(line, "GET /?ms=400 HTTP/1.1");
    // TERM (graceful) now: the in-flight request still gets its answer.
    running.shutdown.request_graceful();
    assert!(client.join().unwrap().ends_with("slept 400 ms\n"));
    assert_eq!(running.slot.in_flight(), 0);
    assert_eq!(join_within(running, 5), Ending::Stopped);
}
