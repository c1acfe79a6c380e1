//! The error log's formats and destinations, end to end: `--log-format
//! json` lines that parse, from the master and from the workers of every
//! class; local time with the real UTC offset (`TZ`); syslog over UDP, a
//! unix datagram socket and TCP, with Gunicorn's PRI and program name.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use runicorn_tests::scenario::{exit_code, LOCAL};
use runicorn_tests::{deadline, get, wait_until, Class, Conn, Launch, Server, Signal};
use serde_json::Value;

runicorn_tests::class_matrix![json_lines_parse, access_lines_in_json];

/// Stops the server with TERM and returns its whole log.
fn stop(mut server: Server) -> String {
    server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut server, 30.0), 0, "{}", server.log());
    server.log()
}

/// Every line of `log` as a JSON object; panics naming a line that is not.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line:?}\n{log}"));
            assert!(value.is_object(), "not an object: {line}");
            value
        })
        .collect()
}

fn json_lines_parse(class: Class) {
    let server = class.start(&["-w", "2", "--log-format", "json"], "builtin:hello");
    let workers = server.wait_workers(2, 30.0);
    // The master notes a boot on its next pass after the first heartbeat.
    server.expect_log("\"Ready: 2 workers booted in ", 30.0);
    assert_eq!(get(server.addr(), "/").expect("GET /").status, 200);
    let master = server.pid();
    let log = stop(server);
    let lines = json_lines(&log);
    for line in &lines {
        for key in ["time", "level", "pid", "role", "message"] {
            assert!(line.get(key).is_some(), "no {key:?} in {line}");
        }
        let time = line["time"].as_str().expect("time is text");
        // RFC 3339 with an offset: 2026-11-25T20:30:00.042+05:30.
        assert_eq!(&time[10..11], "T", "{time}");
        assert!(matches!(&time[23..24], "+" | "-"), "{time}");
        let role = line["role"].as_str().expect("role is text");
        let pid = line["pid"].as_u64().expect("pid is a number") as u32;
        match role {
            "master" => assert_eq!(pid, master, "{line}"),
            "worker" => assert_ne!(pid, master, "{line}"),
            other => panic!("role {other:?} in {line}"),
        }
    }
    let listening = lines
        .iter()
        .find(|line| {
            line["message"]
                .as_str()
                .unwrap()
                .starts_with("Listening at: ")
        })
        .expect("a Listening at line");
    assert!(listening["listen"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    for worker in workers {
        let booting = lines
            .iter()
            .find(|line| line["message"] == format!("Booting worker with pid: {worker}"))
            .unwrap_or_else(|| panic!("no boot line of {worker}:\n{log}"));
        assert_eq!(booting["role"], "worker");
        assert_eq!(booting["pid"], worker);
        assert_eq!(booting["worker_pid"], worker);
        let booted = lines
            .iter()
            .find(|line| {
                line["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("Worker (pid:{worker}) booted in "))
            })
            .unwrap_or_else(|| panic!("no booted line of {worker}:\n{log}"));
        assert_eq!(booted["role"], "master");
        assert_eq!(booted["worker_pid"], worker);
        assert!(booted["boot_seconds"].is_f64(), "{booted}");
        let exiting = lines
            .iter()
            .find(|line| line["message"] == format!("Worker exiting (pid: {worker})"))
            .unwrap_or_else(|| panic!("no exit line of {worker}:\n{log}"));
        assert_eq!(exiting["worker_pid"], worker);
        assert_eq!(exiting["level"], "INFO");
    }
}

#[test]
fn log_times_carry_the_local_offset() {
    for (zone, text, json) in [
        ("Asia/Kolkata", "+0530", "+05:30"),
        ("UTC", "+0000", "+00:00"),
    ] {
        let server = Launch::new(["-b", LOCAL, "builtin:hello"])
            .env("TZ", zone)
            .start();
        server.wait_workers(1, 30.0);
        let log = stop(server);
        for line in log.lines().filter(|line| !line.is_empty()) {
            // `[2026-11-25 20:30:00 +0530] [pid] [INFO] ...`
            assert_eq!(
                line.get(21..27),
                Some(&*format!("{text}]")),
                "TZ={zone}: {line}"
            );
        }
        let server = Launch::new(["-b", LOCAL, "--log-format", "json", "builtin:hello"])
            .env("TZ", zone)
            .start();
        server.wait_workers(1, 30.0);
        for line in json_lines(&stop(server)) {
            assert!(
                line["time"].as_str().unwrap().ends_with(json),
                "TZ={zone}: {line}"
            );
        }
    }
}

/// Reads datagrams until one contains `needle`; returns every one read.
fn datagrams_until(
    mut recv: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    needle: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match recv(&mut buf) {
            Ok(size) => {
                let text = String::from_utf8_lossy(&buf[..size]).into_owned();
                let found = text.contains(needle);
                seen.push(text);
                if found {
                    return seen;
                }
            }
            Err(err) => panic!("no syslog message containing {needle:?} ({err}); got {seen:#?}"),
        }
    }
}

/// A UDP socket on loopback for syslog datagrams (reads wait up to 20 s)
/// and the `--log-syslog-to` value naming it.
fn udp_receiver() -> (UdpSocket, String) {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    receiver
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let to = format!("udp://{}", receiver.local_addr().unwrap());
    (receiver, to)
}

#[test]
fn syslog_over_udp_has_gunicorns_priority_and_program_name() {
    let (receiver, to) = udp_receiver();
    let server = Launch::new([
        "-b",
        LOCAL,
        "--log-syslog",
        "--log-syslog-to",
        &to,
        "--log-syslog-facility",
        "local3",
        "--log-syslog-prefix",
        "shop",
        "builtin:hello",
    ])
    .start();
    let worker = server.wait_workers(1, 30.0)[0];
    let seen = datagrams_until(|buf| receiver.recv(buf), "Booting worker");
    let master = server.pid();
    // local3 (19) * 8 + INFO (6) = 158; Python's SysLogHandler ends with NUL.
    assert!(
        seen.contains(&format!(
            "<158>runicorn.shop.error: [{master}] Starting runicorn 0.1.0\0"
        )),
        "{seen:#?}"
    );
    assert_eq!(
        seen.last().unwrap(),
        &format!("<158>runicorn.shop.error: [{worker}] Booting worker with pid: {worker}\0")
    );
    // Stderr still gets every line.
    let log = stop(server);
    assert!(log.contains("Starting runicorn"), "{log}");
}

#[test]
fn syslog_over_a_unix_datagram_socket_defaults_to_the_app_name() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&path).expect("bind a unix datagram socket");
    receiver
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let to = format!("unix://{}", path.display());
    let server = Launch::new([
        "-b",
        LOCAL,
        "--log-syslog",
        "--log-syslog-to",
        &to,
        "--log-syslog-facility",
        "daemon",
        "builtin:hello",
    ])
    .start();
    let master = server.pid();
    let worker = server.wait_workers(1, 30.0)[0];
    // INFO lines: daemon (3) * 8 + 6 = 30, under the process name (the
    // app, `:` made `.`).
    let seen = datagrams_until(|buf| receiver.recv(buf), "Booting worker");
    assert!(
        seen.contains(&format!(
            "<30>runicorn.builtin.hello.error: [{master}] Using worker: sync\0"
        )),
        "{seen:#?}"
    );
    // A worker killed by a signal the master did not send: an ERROR line,
    // 3 * 8 + 3 = 27.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker as i32), Signal::SIGKILL).unwrap();
    let seen = datagrams_until(|buf| receiver.recv(buf), "SIGKILL");
    assert!(
        seen.last().unwrap().starts_with(&format!(
            "<27>runicorn.builtin.hello.error: [{master}] Worker (pid:{worker}) was sent SIGKILL!"
        )),
        "{seen:#?}"
    );
    stop(server);
}

#[test]
fn syslog_over_tcp_gets_every_process_on_its_own_connection() {
    let receiver = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
    let to = format!("tcp://{}", receiver.local_addr().unwrap());
    let server = Launch::new([
        "-b",
        LOCAL,
        "-w",
        "2",
        "--log-syslog",
        "--log-syslog-to",
        &to,
        "--log-format",
        "json",
        "builtin:hello",
    ])
    .start();
    let workers = server.wait_workers(2, 30.0);
    // The master's connection and one per worker, each a stream of
    // NUL-terminated messages.
    let mut messages = Vec::new();
    for _ in 0..3 {
        let (mut stream, _) = receiver.accept().expect("a syslog connection");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        while !bytes.ends_with(b"\0") {
            let read = stream.read(&mut buf).expect("a syslog message");
            assert!(read > 0, "connection closed after {bytes:?}");
            bytes.extend_from_slice(&buf[..read]);
        }
        for message in bytes
            .split(|byte| *byte == 0)
            .filter(|part| !part.is_empty())
        {
            messages.push(String::from_utf8_lossy(message).into_owned());
        }
    }
    for worker in workers {
        let body = messages
            .iter()
            .find_map(|message| {
                let body = message.strip_prefix("<14>runicorn.builtin.hello.error: ")?;
                let value: Value = serde_json::from_str(body).ok()?;
                (value["worker_pid"] == worker).then_some(value)
            })
            .unwrap_or_else(|| panic!("no boot message of {worker}: {messages:#?}"));
        assert_eq!(body["pid"], worker);
        assert_eq!(body["role"], "worker");
    }
    stop(server);
}

#[test]
fn bad_log_settings_are_one_line_and_exit_2() {
    for (args, said) in [
        (vec!["--log-format", "xml"], "text or json"),
        (
            vec!["--log-syslog-to", "syslog.example:514"],
            "udp://HOST:PORT",
        ),
        (vec!["--log-syslog-facility", "local9"], "syslog facility"),
    ] {
        let mut all = vec!["-b", LOCAL];
        all.extend(args);
        all.push("builtin:hello");
        let exited = Server::start_expect_exit(all);
        assert_eq!(exited.code(), 2, "{}", exited.log);
        assert!(exited.log.contains(said), "{}", exited.log);
    }
}

fn access_lines_in_json(class: Class) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let access = dir.path().join("access.log");
    let access_arg = access.display().to_string();
    let server = class.start(
        &[
            "--log-format",
            "json",
            "--access-logfile",
            &access_arg,
            "--request-id-header",
            "X-Request-ID",
        ],
        "builtin:hello",
    );
    let worker_pids = server.wait_workers(1, 30.0);
    let mut conn = Conn::connect(server.addr()).expect("connect");
    let response = conn
        .request(
            "GET",
            "/x?a=1",
            &[
                ("User-Agent", "probe/1.0 \"quoted\""),
                ("X-Request-ID", "req-42"),
                ("Connection", "close"),
            ],
            b"",
        )
        .expect("GET /x?a=1");
    assert_eq!(response.status, 200);
    let body_len = response.body.len() as u64;
    stop(server);
    let text = std::fs::read_to_string(&access).expect("the access log");
    let lines = json_lines(&text);
    assert_eq!(lines.len(), 1, "{text}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["role"], "worker");
    assert!(
        worker_pids.contains(&(line["pid"].as_u64().unwrap() as u32)),
        "{line}"
    );
    assert!(line["time"].as_str().unwrap().contains('T'), "{line}");
    let message = line["message"].as_str().unwrap();
    assert!(message.starts_with("127.0.0.1 - - ["), "{message}");
    assert!(
        message.contains(&format!(
            "\"GET /x?a=1 HTTP/1.1\" 200 {body_len} \"-\" \"probe/1.0 \\\"quoted\\\"\""
        )),
        "{message}"
    );
    assert_eq!(line["remote_addr"], "127.0.0.1");
    assert!(
        line["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    assert_eq!(line["request"], "GET /x?a=1 HTTP/1.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/x");
    assert_eq!(line["query"], "a=1");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], body_len);
    assert!(line["duration"].as_f64().unwrap() >= 0.0, "{line}");
    assert_eq!(line["referer"], Value::Null);
    assert_eq!(line["user_agent"], "probe/1.0 \"quoted\"");
    assert_eq!(line["request_id"], "req-42");
}

#[test]
fn access_lines_go_to_syslog_unless_disabled() {
    let (receiver, to) = udp_receiver();
    // No --access-logfile: syslog alone turns the access log on (Gunicorn).
    let server = Launch::new([
        "-b",
        LOCAL,
        "--log-syslog",
        "--log-syslog-to",
        &to,
        "builtin:hello",
    ])
    .start();
    let worker = server.wait_workers(1, 30.0)[0];
    let body_len = get(server.addr(), "/y").expect("GET /y").body.len();
    let seen = datagrams_until(|buf| receiver.recv(buf), "GET /y");
    let access = seen.last().unwrap();
    // user (1) * 8 + INFO (6) = 14, the access logger's name.
    let head = format!("<14>runicorn.builtin.hello.access: [{worker}] 127.0.0.1 - - [");
    assert!(access.starts_with(&head), "{access:?}");
    assert!(
        access.ends_with(&format!("\"GET /y HTTP/1.1\" 200 {body_len} \"-\" \"-\"\0")),
        "{access:?}"
    );
    stop(server);

    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("access.log");
    let server = Launch::new([
        "-b",
        LOCAL,
        "--log-syslog",
        "--log-syslog-to",
        &to,
        "--disable-redirect-access-to-syslog",
        "--access-logfile",
        &file.display().to_string(),
        "builtin:hello",
    ])
    .start();
    let worker = server.wait_workers(1, 30.0)[0];
    get(server.addr(), "/z").expect("GET /z");
    // The line is written (to the file, flushed within a second) before
    // the stop, so syslog would have had it by then.
    assert!(wait_until(deadline(20.0), || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.contains("GET /z"))
    }));
    server.signal(Signal::SIGTERM);
    let seen = datagrams_until(
        |buf| receiver.recv(buf),
        &format!("Worker exiting (pid: {worker})"),
    );
    assert!(
        seen.iter().all(|message| !message.contains(".access:")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|message| message.contains(".error: ")),
        "{seen:#?}"
    );
    stop(server);
}

#[test]
fn the_reload_watchers_lines_reach_syslog_too() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let to = format!("udp://{}", receiver.local_addr().unwrap());
    let dir = tempfile::tempdir().expect("a temp dir");
    let extra = dir.path().join("extra.txt");
    std::fs::write(&extra, "one\n").unwrap();
    let extra_arg = extra.display().to_string();
    let server = Launch::new([
        "-b",
        LOCAL,
        "--log-format",
        "json",
        "--log-syslog",
        "--log-syslog-to",
        &to,
        "--reload",
        "--reload-extra-file",
        &extra_arg,
        "builtin:hello",
    ])
    .start();
    server.expect_log("Reload watcher", 20.0);
    // The watcher's inotify watch may lag its start: touch until it tells.
    let mut seen = Vec::new();
    let found = wait_until(deadline(30.0), || {
        std::fs::write(&extra, "two\n").unwrap();
        let mut buf = [0u8; 65536];
        while let Ok(size) = receiver.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..size]).into_owned());
        }
        seen.iter().any(|message| message.contains("Reloading: "))
    });
    assert!(
        found,
        "no Reloading line in syslog: {seen:#?}\n{}",
        server.log()
    );
    let message = seen
        .iter()
        .find(|message| message.contains("Reloading: "))
        .unwrap();
    let body = message
        .strip_prefix("<14>runicorn.builtin.hello.error: ")
        .and_then(|body| body.strip_suffix('\0'))
        .unwrap_or_else(|| panic!("{message:?}"));
    let value: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(value["role"], "watcher", "{value}");
    stop(server);
}
