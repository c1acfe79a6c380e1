//! End-to-end tests of the gthread worker (issue 4): the real binary over
//! loopback, real signals. Every server binds `127.0.0.1:0` and is killed
//! (its whole process group) when the test ends, also on failure. Timing
//! bounds are generous and only where the issue asks for one.

use std::time::{Duration, Instant};

use runicorn_tests::{deadline, get, keepalive, Class, ClientLoop, Conn, InFlight, Server};

/// `runicorn -k gthread -b 127.0.0.1:0 EXTRA... APP`.
fn gthread(extra: &[&str], app: &str) -> Server {
    Class::Gthread.start(extra, app)
}

#[test]
fn idle_keep_alive_connections_do_not_delay_a_new_client() {
    let server = gthread(
        &["-w", "1", "--threads", "2", "--keep-alive", "60"],
        "builtin:hello",
    );
    let mut idle: Vec<Conn> = (0..100)
        .map(|n| {
            let mut conn = Conn::connect(server.addr()).expect("connect");
            let response = conn
                .get("/")
                .unwrap_or_else(|err| panic!("idle {n}: {err}"));
            assert!(!response.closes());
            conn
        })
        .collect();
    // A hundred idle clients, two threads: a new client is still served at once.
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let response = get(server.addr(), "/").expect("GET with 100 idle connections open");
        fastest = fastest.min(started.elapsed());
        assert_eq!(response.status, 200);
    }
    assert!(
        fastest < Duration::from_millis(100),
        "a new client took {fastest:?} with 100 idle keep-alive connections"
    );
    // The idle connections were parked, not dropped.
    for (n, conn) in idle.iter_mut().enumerate().step_by(10) {
        let response = conn
            .get("/again")
            .unwrap_or_else(|err| panic!("idle {n} again: {err}"));
        assert_eq!(response.status, 200);
    }
}

#[test]
fn a_worker_with_every_thread_busy_leaves_new_clients_to_another_worker() {
    let server = gthread(
        &["-w", "2", "--threads", "2", "--log-level", "debug"],
        "builtin:sleep",
    );
    server.wait_workers(2, 10.0);
    // Three long sleeps, one at a time: by then one worker has both threads
    // busy and the other one free thread.
    let paths: Vec<String> = (0..3).map(|n| format!("/sleeper{n}?ms=6000")).collect();
    let sleepers = InFlight::start(&server, &paths);
    // Had the busy worker accepted any of these, it would wait for a sleep.
    for n in 0..6 {
        let started = Instant::now();
        let response = get(server.addr(), &format!("/quick{n}?ms=0")).expect("quick request");
        assert_eq!(response.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "quick request {n} waited {:?} behind a busy worker",
            started.elapsed()
        );
    }
    sleepers.answered(&server);
}

#[test]
fn max_requests_recycles_workers_under_keep_alive_load_without_losing_a_request() {
    let server = gthread(
        &[
            "-w",
            "2",
            "--threads",
            "4",
            "--max-requests",
            "60",
            "--max-requests-jitter",
            "20",
        ],
        "builtin:hello",
    );
    let report = keepalive(server.addr(), 8, 100, "/");
    assert_eq!(report.failed, 0, "{report:?}\n{}", server.log());
    assert_eq!(report.ok, 800);
    assert!(
        server.log_count("Autorestarting worker after current request.") >= 4,
        "expected recycling:\n{}",
        server.log()
    );
}

#[test]
fn an_unread_body_is_never_parsed_as_the_next_request() {
    let server = gthread(&["-w", "1", "--threads", "2"], "builtin:hello");
    let mut conn = Conn::connect(server.addr()).expect("connect");
    // hello never reads the body; it looks like a request of its own.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = conn
        .request("POST", "/", &[], smuggled.as_bytes())
        .expect("POST");
    assert_eq!(response.status, 200);
    let next = conn
        .get("/next")
        .expect("the next request on the connection");
    assert_eq!(next.status, 200);
    // Exactly two responses: nothing more is waiting.
    conn.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(
        conn.at_eof().is_err(),
        "no third response (the body was drained, not parsed)"
    );
}

#[test]
fn silent_clients_hold_no_thread_and_are_closed_at_the_head_deadline() {
    let server = gthread(
        &["-w", "1", "--threads", "1", "--header-timeout", "2"],
        "builtin:hello",
    );
    let mut silent: Vec<Conn> = (0..5)
        .map(|_| Conn::connect(server.addr()).expect("connect"))
        .collect();
    let started = Instant::now();
    let response = get(server.addr(), "/").expect("GET beside five silent clients");
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a silent client held the only thread: {:?}",
        started.elapsed()
    );
    for conn in &mut silent {
        conn.set_timeout(Duration::from_secs(10)).unwrap();
        assert!(conn.at_eof().expect("the silent client is closed"));
    }
}

#[test]
fn at_the_connection_cap_the_oldest_idle_connection_makes_room() {
    let server = gthread(
        &[
            "-w",
            "1",
            "--threads",
            "2",
            "--worker-connections",
            "10",
            "--keep-alive",
            "60",
        ],
        "builtin:hello",
    );
    let mut kept: Vec<Conn> = (0..10)
        .map(|n| {
            let mut conn = Conn::connect(server.addr()).expect("connect");
            conn.get(&format!("/kept{n}")).expect("kept-alive request");
            conn
        })
        .collect();
    let response = get(server.addr(), "/new").expect("a new client at the cap");
    assert_eq!(response.status, 200);
    kept[0].set_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        kept[0]
            .at_eof()
            .expect("the oldest idle connection was closed"),
        "the oldest idle connection is still open"
    );
    let newest = kept[9]
        .get("/still-here")
        .expect("the newest kept connection");
    assert_eq!(newest.status, 200);
}

#[test]
fn a_saturated_worker_still_takes_a_client_no_other_worker_can() {
    let server = gthread(
        &["-w", "1", "--threads", "2", "--keep-alive", "30"],
        "builtin:sleep",
    );
    // Four kept-alive clients on two threads: a thread never frees up.
    let busy = ClientLoop::start_keepalive(server.addr(), "/busy?ms=50", 4);
    assert!(busy.wait_ok(20, deadline(20.0)), "{:?}", busy.report());
    let started = Instant::now();
    let response = get(server.addr(), "/new?ms=0").expect("a new client is not starved");
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the new client waited {:?}",
        started.elapsed()
    );
    let report = busy.stop();
    assert_eq!(report.failed, 0, "{report:?}");
}

/// Sockets `pid` holds (listeners, client connections), from /proc.
fn sockets(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

#[test]
fn saturated_workers_share_a_burst_of_keep_alive_clients() {
    // 24 kept-alive clients at once, 2 workers of 2 threads, 200 ms each:
    // every thread is busy and most clients wait in the kernel queue, which
    // the saturated workers take a pool's worth per look. A kept-alive
    // connection stays where it landed, so each worker must end up with
    // enough to keep its threads busy, not whatever the first look left.
    let server = gthread(
        &["-w", "2", "--threads", "2", "--keep-alive", "60"],
        "builtin:sleep",
    );
    let workers = server.wait_workers(2, 10.0);
    let baseline: Vec<usize> = workers.iter().map(|pid| sockets(*pid)).collect();
    let clients = 24;
    let load = ClientLoop::start_keepalive(server.addr(), "/?ms=200", clients);
    let held = || -> Vec<usize> {
        workers
            .iter()
            .zip(&baseline)
            .map(|(pid, base)| sockets(*pid).saturating_sub(*base))
            .collect()
    };
    let all_in =
        runicorn_tests::wait_until(deadline(20.0), || held().iter().sum::<usize>() >= clients);
    let split = held();
    let report = load.stop();
    assert!(all_in, "only {split:?} of {clients} clients were taken");
    assert_eq!(report.failed, 0, "{report:?}");
    // The split itself depends on scheduling (other tests run beside this
    // one), so the assertion is the property throughput needs: no worker is
    // left with fewer kept-alive clients than it has threads (2) while the
    // others queue them. Taking the whole queue at one look (the old rule)
    // left a worker with none.
    let threads = 2;
    assert!(
        split.iter().all(|&held| held >= threads),
        "the workers hold {split:?} of {clients} kept-alive connections"
    );
}

#[test]
fn a_request_that_waited_for_a_busy_thread_past_its_head_deadline_is_served() {
    // The only thread is held for 4 s; clients that send their whole
    // request meanwhile wait on the server, not the other way round. The
    // worker takes them from the queue (a saturated worker does, behind its
    // busy thread) with a 1 s head deadline from that accept: at it their
    // bytes sit unread in the socket, and they are served once the thread
    // frees up, never closed unanswered (nginx saw it as a 502 when TERM
    // drained a queue of long requests).
    let server = gthread(
        &[
            "-w",
            "1",
            "--threads",
            "1",
            "--header-timeout",
            "1",
            "--log-level",
            "debug",
        ],
        "builtin:sleep",
    );
    let held = InFlight::start(&server, &["/held?ms=4000"]);
    let queued: Vec<_> = (0..3)
        .map(|n| {
            let addr = server.addr().clone();
            std::thread::spawn(move || {
                let mut conn = Conn::connect(&addr)?;
                conn.set_timeout(Duration::from_secs(20))?;
                conn.get(&format!("/queued{n}?ms=0"))
            })
        })
        .collect();
    for (n, client) in queued.into_iter().enumerate() {
        let response = client.join().unwrap().unwrap_or_else(|err| {
            panic!(
                "queued request {n} was not answered: {err}\n{}",
                server.log()
            )
        });
        assert_eq!(response.status, 200, "{}", server.log());
    }
    for response in held.answered(&server) {
        assert_eq!(response.status, 200);
    }
    assert_eq!(server.log_count("PROXY"), 0, "{}", server.log());
}
