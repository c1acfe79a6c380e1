//! The green class run in this test process (no fork, no binary): the
//! worker's whole life on a thread, against a test app whose sleep goes
//! through the host and which panics on `/panic`. One test, because may's
//! runtime is configured once per process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use runicorn_app::{App, AppError, Application, Call};
use runicorn_worker::{Ending, Listener, Settings, Shutdown, Slot, Worker, WorkerClass};
use runicorn_worker_green::GreenWorker;

/// `/sleep` sleeps 300 ms through the host, `/panic` panics, the rest says hi.
struct TestApp;

impl App for TestApp {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let body: &[u8] = match call.head().path() {
            "/sleep" => {
                call.host().sleep(Duration::from_millis(300));
                b"slept"
            }
            "/panic" => panic!("the test app panics on purpose"),
            _ => b"hi",
        };
        let length = body.len().to_string();
        call.start_response(200, &[("Content-Length", length.as_bytes())])?;
        call.write(body)?;
        Ok(())
    }
}

/// One request on a fresh connection; the raw response.
fn request(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

#[test]
fn sleeps_yield_and_a_panic_retires_the_worker_after_its_response() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let slot = Slot::local();
    let settings = Settings {
        threads: 1,
        worker_connections: 100,
        timeout: Duration::from_secs(4),
        graceful_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    let worker = Worker {
        listeners: vec![Listener::Tcp(listener)],
        settings: Arc::new(settings),
        app: Application {
            name: "test:app".to_owned(),
            sync: Arc::new(TestApp),
            asynch: None,
        },
        slot: slot.clone(),
        shutdown: Shutdown::new().unwrap(),
        age: 1,
        max_requests: 0,
    };
    let running = thread::spawn(move || GreenWorker.run(worker));

    assert!(request(addr, "/").ends_with("\r\n\r\nhi"));

    // 40 sleeps of 300 ms on one may thread: about 0.3 s, not 12 s.
    let started = Instant::now();
    let sleepers: Vec<_> = (0..40)
        .map(|_| thread::spawn(move || request(addr, "/sleep")))
        .collect();
    for sleeper in sleepers {
        let response = sleeper.join().unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("slept"), "{response}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "40 sleeps took {took:?}");
    assert_eq!(slot.requests_served(), 41);

    // The heartbeat coroutine beats while the worker idles.
    let first = slot.last_heartbeat().expect("a heartbeat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while slot.last_heartbeat() == Some(first) {
        assert!(Instant::now() < deadline, "the heartbeat stopped");
        thread::sleep(Duration::from_millis(20));
    }

    // A panic is a 500 that closes its connection, and the worker retires.
    let response = request(addr, "/panic");
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !running.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the worker did not retire after a panic"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(running.join().unwrap(), Ending::Stopped);
}
