//! Every accepted setting changes what runicorn does (issue 11's audit):
//! the settings whose effect no other test file shows, each shown here by
//! what a user would see, and the settings runicorn refuses, refused with
//! the reason. Servers bind `127.0.0.1:0` or a unix socket in a temp dir;
//! every process is killed with its group when the test ends, also on
//! failure.

use std::io::Write as _;
use std::net::SocketAddrV4;
use std::os::fd::OwnedFd;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};
use runicorn_tests::examples::examples;
use runicorn_tests::python;
use runicorn_tests::{
    deadline, get, proc, wait_until, Class, Conn, Launch, Response, Server, LOCAL,
};

/// A TCP socket with `SO_REUSEPORT`, bound to `addr`: `Err` when the port
/// cannot be shared.
fn bind_shared(addr: std::net::SocketAddr) -> Result<OwnedFd, Errno> {
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("tests bind IPv4 loopback");
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(*v4.ip(), v4.port())),
    )?;
    Ok(fd)
}

#[test]
fn reuse_port_lets_another_socket_share_the_listening_port() {
    let shared = Server::start(["-b", LOCAL, "--reuse-port", "builtin:hello"]);
    let also = bind_shared(shared.addr().tcp());
    assert!(also.is_ok(), "{also:?}");
    let exclusive = Server::start(["-b", LOCAL, "builtin:hello"]);
    assert_eq!(
        bind_shared(exclusive.addr().tcp()).err(),
        Some(Errno::EADDRINUSE)
    );
}

/// The accept-queue length of the listener on `port`, as `ss` reports it
/// (its Send-Q column for a listening socket).
fn listen_queue(port: u16) -> u32 {
    let output = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) is needed to read a listen queue length");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next().unwrap_or_else(|| panic!("ss: {text}"));
    // State Recv-Q Send-Q Local Peer
    line.split_whitespace()
        .nth(2)
        .and_then(|queue| queue.parse().ok())
        .unwrap_or_else(|| panic!("ss: {line}"))
}

#[test]
fn backlog_sets_the_listen_queue_length() {
    let server = Server::start(["-b", LOCAL, "--backlog", "7", "builtin:hello"]);
    assert_eq!(listen_queue(server.addr().tcp().port()), 7);
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096);
    let default = Server::start(["-b", LOCAL, "builtin:hello"]);
    assert_eq!(
        listen_queue(default.addr().tcp().port()),
        2048.min(somaxconn)
    );
}

/// The status a server answers `bytes` with on a fresh connection.
fn status_of(server: &Server, bytes: &[u8]) -> u16 {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    conn.send(bytes).expect("send");
    conn.read_final_response(false)
        .map_or(0, |response: Response| response.status)
}

#[test]
fn the_request_limits_are_enforced_under_every_class() {
    for class in Class::ALL {
        let server = class.start(
            &[
                "--limit-request-line",
                "40",
                "--limit-request-fields",
                "3",
                "--limit-request-body",
                "10",
            ],
            "builtin:echo",
        );
        // "GET /aaa... HTTP/1.1" is 40 and 41 bytes.
        let line = |length: usize| {
            let path = "a".repeat(length - "GET / HTTP/1.1".len());
            format!("GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n")
        };
        assert_eq!(status_of(&server, line(40).as_bytes()), 200, "{class:?}");
        assert_eq!(status_of(&server, line(41).as_bytes()), 414, "{class:?}");
        let fields = |count: usize| {
            let extra: String = (1..count).map(|n| format!("X-{n}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
        };
        assert_eq!(status_of(&server, fields(3).as_bytes()), 200, "{class:?}");
        assert_eq!(status_of(&server, fields(4).as_bytes()), 431, "{class:?}");
        let body = |length: usize| {
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{}",
                "b".repeat(length)
            )
        };
        assert_eq!(status_of(&server, body(10).as_bytes()), 200, "{class:?}");
        assert_eq!(status_of(&server, body(11).as_bytes()), 413, "{class:?}");
        let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n";
        assert_eq!(status_of(&server, chunked), 413, "{class:?}");
    }
    // Gunicorn's 0: no limit on the line, 32768 fields (not the default 100).
    let many: String = (1..=150).map(|n| format!("X-{n}: v\r\n")).collect();
    let request = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n{many}\r\n",
        "p".repeat(5000)
    );
    let default = Class::Sync.start(&[], "builtin:echo");
    assert_eq!(status_of(&default, request.as_bytes()), 414);
    let unlimited = Class::Sync.start(
        &["--limit-request-line", "0", "--limit-request-fields", "0"],
        "builtin:echo",
    );
    assert_eq!(status_of(&unlimited, request.as_bytes()), 200);
    let fields_only = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(status_of(&default, fields_only.as_bytes()), 431);
}

/// The green worker's virtual size (KiB) while `count` connections each
/// hold a coroutine (each answered one request and waits for the next).
fn green_size_with_connections(stack: &str, count: usize) -> u64 {
    let server = Class::Green.start(
        &["-w", "1", "--green-stack-size", stack, "--keep-alive", "30"],
        "builtin:hello",
    );
    let worker = server.wait_workers(1, 10.0)[0];
    let mut held = Vec::new();
    for _ in 0..count {
        let mut conn = Conn::connect(server.addr()).expect("connect");
        assert_eq!(conn.get("/").expect("served").status, 200);
        held.push(conn);
    }
    let size = proc::status_kib(worker, "VmSize").expect("VmSize");
    drop(held);
    size
}

#[test]
fn green_stack_size_is_the_stack_of_each_connections_coroutine() {
    // 100 live coroutines (and any stacks may keeps ready in its pool)
    // reserve at least 100 x (1 MiB - 16 KiB) more with 1 MiB stacks.
    let small = green_size_with_connections("16384", 100);
    let large = green_size_with_connections("1048576", 100);
    assert!(
        large >= small + 90 * 1024,
        "16 KiB stacks: {small} KiB, 1 MiB stacks: {large} KiB"
    );
}

#[test]
fn blocking_threads_bound_how_many_sync_calls_the_async_class_runs_at_once() {
    // `sleep:app` has no async entry: each request holds a pool thread
    // while it sleeps. With two, a third request waits for one of the
    // twenty-second sleeps; with three, it is answered at once.
    let app_path = examples().display().to_string();
    for (threads, third_answered) in [("2", false), ("3", true)] {
        let server = Class::Async.start(
            &[
                "-w",
                "1",
                "--threads",
                "1",
                "--blocking-threads",
                threads,
                "--log-level",
                "debug",
                "--app-path",
                &app_path,
            ],
            "sleep:app",
        );
        let holders = runicorn_tests::InFlight::start(&server, &["/?ms=20000", "/?ms=20000"]);
        let mut third = Conn::connect(server.addr()).expect("connect");
        third
            .set_timeout(std::time::Duration::from_secs(3))
            .expect("timeout");
        let answer = third.get("/?ms=0");
        assert_eq!(
            answer.is_ok(),
            third_answered,
            "--blocking-threads {threads}: {answer:?}"
        );
        drop(holders);
    }
}

#[test]
fn max_requests_jitter_raises_each_workers_limit() {
    // --max-requests 1 alone: every request retires its worker. With a
    // jitter of a million, a worker's limit is 1 + rand(0..=1000000): three
    // requests almost surely (odds of failure about 3 in a million) leave
    // it running.
    for (jitter, restarts) in [(None, 3), (Some("1000000"), 0)] {
        let mut args = vec!["-w", "1", "--max-requests", "1"];
        if let Some(jitter) = jitter {
            args.extend(["--max-requests-jitter", jitter]);
        }
        let server = Class::Sync.start(&args, "builtin:hello");
        for _ in 0..3 {
            server.wait_workers(1, 10.0);
            let served = wait_until(deadline(10.0), || get(server.addr(), "/").is_ok());
            assert!(served, "{}", server.log());
        }
        if restarts > 0 {
            assert!(
                wait_until(deadline(10.0), || {
                    server.log_count("Autorestarting worker after current request.") >= restarts
                }),
                "{}",
                server.log()
            );
        } else {
            assert_eq!(
                server.log_count("Autorestarting worker after current request."),
                0,
                "{}",
                server.log()
            );
        }
    }
}

#[test]
fn pythonpath_adds_directories_python_imports_the_app_from() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::File::create(lib.join("deep_app.py"))
        .and_then(|mut file| {
            file.write_all(
                b"def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'found on the path']\n",
            )
        })
        .unwrap();
    let chdir = dir.path().display().to_string();
    let launch = |extra: &[&str]| {
        let mut args = vec!["-w", "1", "-b", LOCAL, "--chdir", chdir.as_str()];
        args.extend_from_slice(extra);
        args.push("deep_app:app");
        Launch::new(args)
            .env("VIRTUAL_ENV", python::venv())
            .env("PYTHONDONTWRITEBYTECODE", "1")
    };
    let server = launch(&["--pythonpath", "lib"]).start();
    assert_eq!(
        get(server.addr(), "/").expect("served").text(),
        "found on the path"
    );
    let exited = launch(&[]).expect_exit(30.0);
    assert_ne!(exited.code(), 0, "{}", exited.log);
    assert!(
        exited.log.contains("No module named 'deep_app'"),
        "{}",
        exited.log
    );
}

#[test]
fn settings_the_class_does_not_use_get_one_warning_each() {
    let server = Server::start([
        "-k",
        "sync",
        "-b",
        LOCAL,
        "--keep-alive",
        "5",
        "--worker-connections",
        "10",
        "--green-stack-size",
        "32768",
        "--blocking-threads",
        "4",
        "builtin:hello",
    ]);
    server.expect_log("Booting worker", 10.0);
    let warnings: Vec<String> = server
        .log()
        .lines()
        .filter(|line| line.contains("[WARNING]"))
        .map(str::to_owned)
        .collect();
    for flag in [
        "--keep-alive 5s",
        "--worker-connections 10",
        "--green-stack-size 32768",
        "--blocking-threads 4",
    ] {
        let expected = format!("{flag} has no effect with -k sync");
        assert_eq!(
            warnings
                .iter()
                .filter(|line| line.contains(&expected))
                .count(),
            1,
            "{expected}: {warnings:?}"
        );
    }
    let green = Server::start([
        "-k",
        "green",
        "-b",
        LOCAL,
        "--keep-alive",
        "5",
        "--worker-connections",
        "10",
        "--green-stack-size",
        "32768",
        "--blocking-threads",
        "4",
        "builtin:hello",
    ]);
    green.expect_log("Booting worker", 10.0);
    assert_eq!(green.log_count("has no effect"), 0, "{}", green.log());
}

#[test]
fn worker_tmp_dir_is_refused_with_the_reason() {
    let exited = Launch::new(["-b", LOCAL, "--worker-tmp-dir", "/dev/shm", "builtin:hello"])
        .expect_exit(20.0);
    assert_eq!(exited.code(), 2, "{}", exited.log);
    assert_eq!(exited.log.trim().lines().count(), 1, "{}", exited.log);
    assert!(
        exited.log.contains("--worker-tmp-dir") && exited.log.contains("shared memory"),
        "{}",
        exited.log
    );
}
