//! Slow clients that drip a request head (slowloris, issue 16): what each
//! class buys against them. Under gthread (a slow client's connection is
//! parked, holding no thread), green and async (a parked coroutine or
//! task), 50 clients dripping a head one byte a second do not delay a
//! normal request, and each is closed at the head deadline, with a 408. Under
//! sync, which serves one connection at a time by design, the deadline
//! bounds how long one slow client holds the worker.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use runicorn_tests::{get, Addr, Class, Server};

/// The head deadline the servers run with (`--header-timeout`).
const DEADLINE: Duration = Duration::from_secs(4);
const DEADLINE_ARGS: [&str; 2] = ["--header-timeout", "4"];

/// A head that takes a minute at a byte a second: never complete before
/// the deadline.
const DRIP_HEAD: &[u8] = b"GET /drip HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: a slowloris test client, sending one byte a second\r\n\r\n";

/// How one dripping client ended.
#[derive(Debug)]
struct DripEnd {
    /// From its first byte until the server closed (or reset) the connection.
    after: Duration,
    /// What the server sent before closing.
    answer: String,
    /// Bytes of the head the client had sent.
    sent: usize,
}

/// `count` clients dripping [`DRIP_HEAD`] a byte a second on one thread,
/// watching every 50 ms for the server's answer and close.
struct Drips {
    handle: JoinHandle<Vec<DripEnd>>,
}

impl Drips {
    /// Connects `count` clients and sends each its first byte.
    fn start(addr: &Addr, count: usize) -> Drips {
        let addr = addr.tcp();
        let handle = thread::spawn(move || {
            struct Client {
                stream: TcpStream,
                first: Instant,
                sent: usize,
                answer: Vec<u8>,
                end: Option<Duration>,
            }
            let mut clients: Vec<Client> = (0..count)
                .map(|_| {
                    let mut stream = TcpStream::connect(addr).expect("connect a dripping client");
                    stream.write_all(&DRIP_HEAD[..1]).expect("first byte");
                    stream.set_nonblocking(true).unwrap();
                    Client {
                        stream,
                        first: Instant::now(),
                        sent: 1,
                        answer: Vec::new(),
                        end: None,
                    }
                })
                .collect();
            let started = Instant::now();
            let mut next_drip = started + Duration::from_secs(1);
            let mut buf = [0u8; 1024];
            while clients.iter().any(|client| client.end.is_none())
                && started.elapsed() < Duration::from_secs(50)
            {
                for client in clients.iter_mut().filter(|client| client.end.is_none()) {
                    loop {
                        match client.stream.read(&mut buf) {
                            Ok(0) => client.end = Some(client.first.elapsed()),
                            Ok(read) => {
                                client.answer.extend_from_slice(&buf[..read]);
                                continue;
                            }
                            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                            // Reset: closed.
                            Err(_) => client.end = Some(client.first.elapsed()),
                        }
                        break;
                    }
                }
                if Instant::now() >= next_drip {
                    next_drip += Duration::from_secs(1);
                    for client in clients.iter_mut().filter(|client| client.end.is_none()) {
                        let byte = &DRIP_HEAD[client.sent..=client.sent];
                        match client.stream.write(byte) {
                            Ok(1) => client.sent += 1,
                            Ok(_) => {}
                            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                            Err(_) => client.end = Some(client.first.elapsed()),
                        }
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
            clients
                .into_iter()
                .map(|client| DripEnd {
                    after: client.end.unwrap_or(Duration::MAX),
                    answer: String::from_utf8_lossy(&client.answer).into_owned(),
                    sent: client.sent,
                })
                .collect()
        });
        Drips { handle }
    }

    /// Waits until every client was closed (at most 50 s).
    fn ends(self) -> Vec<DripEnd> {
        self.handle.join().expect("the dripping clients' thread")
    }
}

/// Each slow client was closed at the deadline, not before (the deadline
/// closed it, not something else) and not long after, having been sent a
/// 408 or nothing (a close the client saw as a reset).
fn assert_closed_at_the_deadline(ends: &[DripEnd], server: &Server) {
    let late = DEADLINE + Duration::from_secs(4);
    for (index, end) in ends.iter().enumerate() {
        assert!(
            end.after >= DEADLINE - Duration::from_millis(500) && end.after <= late,
            "slow client {index} closed {:?} after its first byte, {} bytes sent: not at the {DEADLINE:?} deadline\n{}",
            end.after,
            end.sent,
            server.log()
        );
        assert!(
            end.answer.is_empty() || end.answer.starts_with("HTTP/1.1 408 "),
            "slow client {index} was answered {:?}",
            end.answer
        );
        assert!(
            end.sent < DRIP_HEAD.len(),
            "slow client {index} sent its whole head"
        );
    }
    let answered = ends.iter().filter(|end| !end.answer.is_empty()).count();
    assert!(
        answered > 0,
        "no slow client read a 408: {ends:?}\n{}",
        server.log()
    );
}

/// The time each of `count` normal requests took, one after another on
/// fresh connections, `pause` apart.
fn normal_requests(server: &Server, count: usize, pause: Duration) -> Vec<Duration> {
    (0..count)
        .map(|index| {
            let started = Instant::now();
            let response = get(server.addr(), "/")
                .unwrap_or_else(|err| panic!("normal request {index}: {err}\n{}", server.log()));
            assert_eq!(response.status, 200, "normal request {index}");
            let took = started.elapsed();
            thread::sleep(pause);
            took
        })
        .collect()
}

fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort_unstable();
    durations[durations.len() / 2]
}

/// gthread (with two threads), green and async: 50 clients dripping a
/// head a byte a second do not delay normal requests, and are all closed
/// at the head deadline.
fn fifty_slow_clients_do_not_delay_a_normal_request(class: Class) {
    if class == Class::Sync {
        return one_slow_client_holds_a_sync_worker_until_the_deadline();
    }
    let mut extra = vec!["-w", "1"];
    extra.extend(DEADLINE_ARGS);
    if class == Class::Gthread {
        extra.extend(["--threads", "2"]);
    }
    let server = class.start(&extra, "builtin:hello");
    server.wait_workers(1, 10.0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200, "warm-up");
    let drips = Drips::start(server.addr(), 50);
    // Every slow client is in its head (two or three bytes in) before the
    // normal requests start, and they end before the first deadline.
    thread::sleep(Duration::from_millis(1500));
    let took = normal_requests(&server, 7, Duration::from_millis(200));
    let median = median(took.clone());
    assert!(
        median < Duration::from_secs(1),
        "normal requests took {took:?} while 50 clients dripped heads: the slow clients hold the worker\n{}",
        server.log()
    );
    assert_closed_at_the_deadline(&drips.ends(), &server);
    // And the worker serves on.
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
}

/// sync serves one connection at a time (as Gunicorn's sync worker, which
/// wants a buffering proxy in front): a slow client holds the worker, but
/// only until the head deadline; a normal request sent meanwhile is
/// answered once it is closed.
fn one_slow_client_holds_a_sync_worker_until_the_deadline() {
    let mut extra = vec!["-w", "1"];
    extra.extend(DEADLINE_ARGS);
    let server = Class::Sync.start(&extra, "builtin:hello");
    server.wait_workers(1, 10.0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200, "warm-up");
    let drips = Drips::start(server.addr(), 1);
    thread::sleep(Duration::from_millis(1500));
    let took = normal_requests(&server, 1, Duration::ZERO)[0];
    let ends = drips.ends();
    assert_closed_at_the_deadline(&ends, &server);
    assert!(
        took < DEADLINE + Duration::from_secs(3),
        "a normal request waited {took:?} behind one slow client: more than the {DEADLINE:?} head deadline\n{}",
        server.log()
    );
}

runicorn_tests::class_matrix![fifty_slow_clients_do_not_delay_a_normal_request];
