//! End-to-end tests of the master and the sync worker (issue 3): the real
//! binary, loopback and unix sockets, real signals. Every server binds
//! `127.0.0.1:0` or a unix socket in a temp dir and is killed (its whole
//! process group) when the test ends, also on failure.

use std::net::TcpListener;

use runicorn_tests::{
    deadline, exit_code, get, raw_response, wait_replaced, wait_until, Class, ClientLoop, Launch,
    Server, Signal, LOCAL,
};
use runicorn_tests::{proc, scenario};

/// `runicorn -k sync -w WORKERS -b 127.0.0.1:0 builtin:hello`.
fn hello(workers: &str) -> Server {
    Class::Sync.start(&["-w", workers], "builtin:hello")
}

#[test]
fn two_workers_serve_hello() {
    let server = hello("2");
    let response = get(server.addr(), "/").expect("GET /");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "Hello, World!");
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert!(
        response.closes(),
        "the sync worker closes every connection: {:?}",
        response.headers
    );
    server.wait_workers(2, 10.0);
}

#[test]
fn term_exits_zero_leaving_no_children_pidfile_or_socket() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("runicorn.pid");
    let socket = dir.path().join("runicorn.sock");
    let mut server = Server::start([
        "-w".as_ref(),
        "2".as_ref(),
        "-p".as_ref(),
        pidfile.as_os_str(),
        "-b".as_ref(),
        format!("unix:{}", socket.display()).as_ref(),
        "builtin:hello".as_ref(),
    ]);
    let response = get(server.addr(), "/").expect("GET over the unix socket");
    assert_eq!(response.text(), "Hello, World!");
    let workers = server.wait_workers(2, 10.0);
    let written = std::fs::read_to_string(&pidfile).expect("pidfile written");
    assert_eq!(written.trim(), server.pid().to_string());

    server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut server, 40.0), 0, "{}", server.log());
    assert!(
        wait_until(deadline(5.0), || server.group().is_empty()),
        "left behind: {:?}",
        server.group()
    );
    for pid in workers {
        assert!(!proc::alive(pid), "worker {pid} outlived its master");
    }
    assert!(!pidfile.exists(), "pidfile left behind");
    assert!(!socket.exists(), "unix socket left behind");
}

#[test]
fn hup_replaces_every_worker_without_a_failed_request() {
    let server = hello("2");
    let old = server.wait_workers(2, 10.0);
    let clients = ClientLoop::start(server.addr(), "/", 2);
    assert!(
        clients.wait_ok(20, deadline(20.0)),
        "no traffic before HUP: {:?}",
        clients.report()
    );
    server.signal(Signal::SIGHUP);
    let replaced = wait_until(deadline(30.0), || {
        let now = server.worker_pids();
        now.len() == 2 && now.iter().all(|pid| !old.contains(pid))
    });
    assert!(
        replaced,
        "workers {old:?} not replaced, now {:?}:\n{}",
        server.worker_pids(),
        server.log()
    );
    let before = clients.report().ok;
    assert!(
        clients.wait_ok(before + 20, deadline(20.0)),
        "no traffic after HUP: {:?}",
        clients.report()
    );
    let report = clients.stop();
    assert_eq!(
        report.failed,
        0,
        "requests failed across HUP: {report:?}\n{}",
        server.log()
    );
}

#[test]
fn ttin_and_ttou_change_the_worker_count_never_below_one() {
    let server = hello("2");
    server.wait_workers(2, 10.0);
    server.signal(Signal::SIGTTIN);
    server.wait_workers(3, 10.0);
    server.signal(Signal::SIGTTOU);
    server.wait_workers(2, 10.0);
    server.signal(Signal::SIGTTOU);
    server.wait_workers(1, 10.0);
    // At one worker TTOU does nothing: one TTIN later there are two again.
    server.signal(Signal::SIGTTOU);
    let response = get(server.addr(), "/").expect("GET / with one worker");
    assert_eq!(response.status, 200);
    server.signal(Signal::SIGTTIN);
    server.wait_workers(2, 10.0);
}

#[test]
fn a_killed_worker_is_replaced_and_named_in_the_log() {
    let server = hello("2");
    let old = server.wait_workers(2, 10.0);
    let victim = old[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    let replaced = wait_until(deadline(15.0), || {
        let now = server.worker_pids();
        now.len() == 2 && !now.contains(&victim)
    });
    assert!(replaced, "worker {victim} not replaced:\n{}", server.log());
    server.expect_log(&format!("Worker (pid:{victim}) was sent SIGKILL!"), 5.0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
}

#[test]
fn max_requests_recycles_the_worker() {
    let server = Server::start([
        "-w",
        "1",
        "--max-requests",
        "5",
        "-b",
        LOCAL,
        "builtin:hello",
    ]);
    let first = server.wait_workers(1, 10.0);
    for attempt in 0..12 {
        let response =
            get(server.addr(), "/").unwrap_or_else(|err| panic!("request {attempt}: {err}"));
        assert_eq!(response.status, 200, "request {attempt}");
    }
    let recycled = wait_replaced(&server, &first, 15.0);
    assert!(
        recycled,
        "worker {first:?} not recycled after 12 requests:\n{}",
        server.log()
    );
}

#[test]
fn malformed_requests_get_400_and_the_same_worker_serves_on() {
    let server = Server::start(["-w", "1", "-b", LOCAL, "builtin:hello"]);
    let before = server.wait_workers(1, 10.0);
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"GET / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"\x01\x02 nonsense\r\n\r\n",
    ] {
        let response =
            raw_response(server.addr(), garbage).expect("a response to a malformed request");
        assert_eq!(
            response.status,
            400,
            "for {:?}",
            String::from_utf8_lossy(garbage)
        );
        assert!(response.closes());
    }
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    assert_eq!(
        server.worker_pids(),
        before,
        "a malformed request must not cost a worker"
    );
}

#[test]
fn a_port_in_use_exits_1_with_a_clear_line() {
    let taken = TcpListener::bind(LOCAL).unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let exited = Server::start_expect_exit(["-b", &address, "builtin:hello"]);
    assert_eq!(exited.code(), 1, "{}", exited.log);
    assert!(
        exited
            .log
            .contains(&format!("Connection in use: {address}")),
        "{}",
        exited.log
    );
}

#[test]
fn an_unknown_builtin_app_exits_4_with_gunicorns_words() {
    let exited = Server::start_expect_exit(["-b", LOCAL, "builtin:nope"]);
    assert_eq!(exited.code(), 4, "{}", exited.log);
    assert!(
        exited
            .log
            .contains("Failed to find application object 'nope' in 'builtin'"),
        "{}",
        exited.log
    );
}

#[test]
fn usr1_reopens_the_error_logfile() {
    let dir = tempfile::tempdir().unwrap();
    let logfile = dir.path().join("error.log");
    let server = Launch::new([
        "-w".as_ref(),
        "1".as_ref(),
        "-b".as_ref(),
        LOCAL.as_ref(),
        "--error-logfile".as_ref(),
        logfile.as_os_str(),
        "builtin:hello".as_ref(),
    ])
    .log_file(&logfile)
    .start();
    server.wait_workers(1, 10.0);
    server.expect_log("Booting worker", 10.0);
    let rotated = dir.path().join("error.log.1");
    std::fs::rename(&logfile, &rotated).unwrap();
    server.signal(Signal::SIGUSR1);
    // A line logged after USR1 (a new worker boots) lands in a new file.
    server.signal(Signal::SIGTTIN);
    server.wait_workers(2, 10.0);
    let reopened = wait_until(deadline(10.0), || {
        std::fs::read_to_string(&logfile).is_ok_and(|text| text.contains("Booting worker"))
    });
    assert!(
        reopened,
        "no new {} after USR1:\n{}",
        logfile.display(),
        server.log()
    );
}

/// The master as PID 1 of a PID namespace (as in a container) reaps an
/// orphan that was double-forked: no zombies, ever.
#[test]
fn pid_1_in_a_pid_namespace_reaps_double_forked_orphans() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--map-root-user", "true"])
        .output();
    if !probe.as_ref().is_ok_and(|output| output.status.success()) {
        eprintln!(
            "SKIPPED: `unshare --pid --fork --map-root-user` is not permitted here: {probe:?}"
        );
        return;
    }
    // sh is PID 1; a subshell forks `sleep` and exits at once, so `sleep` is
    // reparented to PID 1, which by then has exec'd into runicorn.
    let script = r#"(sleep 2 &) ; exec "$0" "$@""#;
    let server = Launch::new(["-w", "1", "-b", LOCAL, "builtin:hello"])
        .wrapper([
            "unshare",
            "--pid",
            "--fork",
            "--map-root-user",
            "sh",
            "-c",
            script,
        ])
        .start();
    let master = proc::live_children(server.pid());
    assert_eq!(master.len(), 1, "unshare should have one child, the master");
    let master = master[0];
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    let orphan = wait_until(deadline(10.0), || {
        proc::children(master)
            .iter()
            .any(|child| child.comm == "sleep")
    });
    assert!(
        orphan,
        "the double-forked sleep is not the master's child: {:?}",
        proc::children(master)
    );
    // Once sleep exits, the master must reap it.
    let reaped = wait_until(deadline(15.0), || {
        proc::children(master)
            .iter()
            .all(|child| child.comm != "sleep")
    });
    assert!(
        reaped,
        "zombie left: {:?}\n{}",
        proc::children(master),
        server.log()
    );
    assert!(proc::children(master)
        .iter()
        .all(|child| !child.is_zombie()));
}

#[test]
fn an_unread_request_body_does_not_cost_the_response() {
    // hello never reads the body; the worker must close lingering so the
    // client still receives the answer instead of a reset.
    let server = hello("1");
    let body = vec![b'x'; 256 * 1024];
    let mut conn = runicorn_tests::Conn::connect(server.addr()).unwrap();
    let response = conn
        .request("POST", "/", &[], &body)
        .expect("a response despite the unread body");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "Hello, World!");
}

#[test]
fn the_builtin_apps_answer_over_the_sync_worker() {
    let echo = Server::start(["-b", LOCAL, "builtin:echo"]);
    let chunked = b"POST /e?k=v HTTP/1.1\r\nHost: h\r\nX-Case: A\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT-Rail: z\r\n\r\n";
    let response = raw_response(echo.addr(), chunked).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let json = response.json();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/e");
    assert_eq!(json["query"], "k=v");
    assert_eq!(json["headers"][1], serde_json::json!(["X-Case", "A"]));
    assert_eq!(json["body_b64"], "YWJj");
    assert_eq!(json["trailers"], serde_json::json!([["T-Rail", "z"]]));

    let stream = Server::start(["-b", LOCAL, "builtin:stream"]);
    let response = get(stream.addr(), "/?kb=5").unwrap();
    assert!(response.chunked);
    assert_eq!(response.body.len(), 5 * 1024);

    let cpu = Server::start(["-b", LOCAL, "builtin:cpu"]);
    let response = get(cpu.addr(), "/?n=10").unwrap();
    assert!(
        response.text().starts_with("cpu 10 rounds: "),
        "{}",
        response.text()
    );

    let (upstream_addr, peer) = scenario::pong_upstream();
    let relay = Server::start(["-b", LOCAL, "builtin:upstream"]);
    let response = get(relay.addr(), &format!("/?addr={upstream_addr}")).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "pong: ping from runicorn\n");
    peer.join().unwrap();
}
