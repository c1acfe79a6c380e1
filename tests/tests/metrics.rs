//! Issue 15, metrics: `--metrics-bind`'s `/metrics`, served by the master
//! from its loop, parsed with Prometheus' own text-format parser (Python's
//! `prometheus_client.parser`, from the test virtual environment), under
//! every worker class: the counters move with traffic, by status class, and
//! a killed worker's requests stay counted after it is replaced; the loop
//! goes on serving signals while a metrics client sends nothing. And
//! StatsD: Gunicorn's metric names, types, prefix and dogstatsd tags, as a
//! UDP or unix datagram socket bound by the test receives them.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use runicorn_tests::client::{self, Addr};
use runicorn_tests::proc;
use runicorn_tests::python;
use runicorn_tests::scenario::{self, Class};
use runicorn_tests::server::{Launch, Server};
use runicorn_tests::wait::{deadline, wait_for};
use serde_json::Value;

runicorn_tests::class_matrix!(
    counters_move_with_traffic,
    a_killed_workers_requests_stay_counted,
    max_requests_restarts_are_counted,
    statsd_gets_gunicorns_metrics,
);

/// The test binary with `status:app` linked in (`?code=N` answers N).
const LINKED: &str = env!("CARGO_BIN_EXE_runicorn-linked");

/// `class` serving `status:app` with metrics on, `extra` added.
fn start(class: Class, extra: &[&str]) -> Server {
    let mut args = vec!["--metrics-bind", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    class.launch(&args, "status:app").program(LINKED).start()
}

/// Where the master serves metrics, from its `Metrics at:` line.
fn metrics_addr(server: &Server) -> Addr {
    let line = server.expect_log("Metrics at: ", 10.0);
    let token = line
        .split("Metrics at: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|url| url.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Addr::parse_listening(token).unwrap_or_else(|| panic!("bad address in {line:?}"))
}

/// One parsed sample: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

/// A scrape, as Prometheus' parser reads it.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    /// Each family's name and type.
    types: Vec<(String, String)>,
}

const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = [], []
for family in text_string_to_metric_families(sys.stdin.read()):
    types.append([family.name, family.type])
    for sample in family.samples:
        samples.append({"name": sample.name, "labels": sample.labels, "value": sample.value})
print(json.dumps({"samples": samples, "types": types}))
"#;

/// Parses Prometheus text with `prometheus_client`; panics when it refuses it.
fn parse(text: &str) -> Scrape {
    let mut child = Command::new(python::venv_bin("python"))
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "prometheus_client refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let samples = parsed["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| Sample {
            name: sample["name"].as_str().unwrap().to_owned(),
            labels: sample["labels"].as_object().unwrap().clone(),
            value: sample["value"].as_f64().unwrap(),
        })
        .collect();
    let types = parsed["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    Scrape { samples, types }
}

/// GET /metrics, checked and parsed.
fn scrape(addr: &Addr) -> Scrape {
    let response = client::get(addr, "/metrics").expect("scrape /metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&response.text())
}

impl Scrape {
    /// The value of the one sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|sample| {
                sample.name == name
                    && labels.iter().all(|(key, value)| {
                        sample.labels.get(*key).and_then(Value::as_str) == Some(*value)
                    })
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    /// Every sample named `name`.
    fn all(&self, name: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .collect()
    }

    fn family_type(&self, family: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|(name, _)| name == family)
            .map(|(_, kind)| kind.as_str())
    }

    fn requests(&self, class: Class, status: &str) -> f64 {
        self.value(
            "runicorn_requests_total",
            &[("class", class.name()), ("status", status)],
        )
    }

    fn restarts(&self, reason: &str) -> f64 {
        self.value("runicorn_worker_restarts_total", &[("reason", reason)])
    }
}

/// `count` requests for `path`, each answered `status`.
fn send(server: &Server, path: &str, count: usize, status: u16) {
    for _ in 0..count {
        let response = client::get(server.addr(), path).expect("request");
        assert_eq!(response.status, status, "{path}");
    }
}

/// N requests move the counters by N, by class and status class (a 404 and
/// a 500 under 4xx and 5xx), the duration histogram by N, and nothing is in
/// flight after them.
fn counters_move_with_traffic(class: Class) {
    let server = start(class, &["-w", "2"]);
    let metrics = metrics_addr(&server);
    server.wait_workers(2, 30.0);
    let before = scrape(&metrics);
    assert_eq!(
        before.family_type("runicorn_request_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(before.family_type("runicorn_requests"), Some("counter"));
    send(&server, "/", 5, 200);
    send(&server, "/?code=404", 2, 404);
    send(&server, "/?code=500", 1, 500);
    send(&server, "/?code=302", 1, 302);
    let after = scrape(&metrics);
    for (status, added) in [
        ("1xx", 0.0),
        ("2xx", 5.0),
        ("3xx", 1.0),
        ("4xx", 2.0),
        ("5xx", 1.0),
    ] {
        assert_eq!(
            after.requests(class, status) - before.requests(class, status),
            added,
            "{status}"
        );
    }
    let count = "runicorn_request_duration_seconds_count";
    let labels = [("class", class.name())];
    assert_eq!(
        after.value(count, &labels) - before.value(count, &labels),
        9.0
    );
    let inf = [("class", class.name()), ("le", "+Inf")];
    let bucket = "runicorn_request_duration_seconds_bucket";
    assert_eq!(after.value(bucket, &inf), after.value(count, &labels));
    assert!(after.value("runicorn_request_duration_seconds_sum", &labels) > 0.0);
    assert_eq!(after.value("runicorn_requests_in_flight", &labels), 0.0);
    assert_eq!(after.value("runicorn_workers", &[("state", "alive")]), 2.0);
    assert_eq!(after.value("runicorn_workers", &[("state", "booted")]), 2.0);
    assert_eq!(after.value("runicorn_workers_target", &[]), 2.0);
    // Each live worker's memory and CPU, by pid.
    let pids = server.worker_pids();
    for pid in &pids {
        let pid = pid.to_string();
        assert!(after.value("runicorn_worker_resident_memory_bytes", &[("pid", &pid)]) > 0.0);
        assert!(after.value("runicorn_worker_cpu_seconds_total", &[("pid", &pid)]) >= 0.0);
    }
    let served: f64 = after
        .all("runicorn_worker_requests_total")
        .iter()
        .map(|sample| sample.value)
        .sum();
    assert!(served >= 9.0, "{served}");
    let build = after.all("runicorn_build_info");
    assert_eq!(build.len(), 1);
    assert_eq!(
        build[0].labels.get("version").and_then(Value::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
}

/// A worker killed with SIGKILL is replaced; the requests it served stay in
/// the totals, and its restart is counted under `signal`.
fn a_killed_workers_requests_stay_counted(class: Class) {
    let server = start(class, &["-w", "1"]);
    let metrics = metrics_addr(&server);
    let old = server.wait_workers(1, 30.0);
    send(&server, "/", 4, 200);
    send(&server, "/?code=404", 1, 404);
    let before = scrape(&metrics);
    assert_eq!(before.restarts("signal"), 0.0);
    proc::signal(old[0], Signal::SIGKILL);
    assert!(
        scenario::wait_replaced(&server, &old, 30.0),
        "{}",
        server.log()
    );
    let after = wait_for(deadline(30.0), || {
        let scraped = scrape(&metrics);
        (scraped.value("runicorn_workers", &[("state", "booted")]) == 1.0).then_some(scraped)
    })
    .expect("the replacement boots");
    assert_eq!(after.restarts("signal"), 1.0, "{}", server.log());
    for status in ["2xx", "4xx"] {
        assert_eq!(
            after.requests(class, status),
            before.requests(class, status),
            "{status} after the replacement"
        );
    }
    send(&server, "/", 1, 200);
    let more = scrape(&metrics);
    assert_eq!(
        more.requests(class, "2xx"),
        before.requests(class, "2xx") + 1.0
    );
}

/// A worker that retires after `--max-requests` is counted under
/// `max_requests`, and its requests stay counted.
fn max_requests_restarts_are_counted(class: Class) {
    let server = start(class, &["-w", "1", "--max-requests", "3"]);
    let metrics = metrics_addr(&server);
    server.wait_workers(1, 30.0);
    send(&server, "/", 3, 200);
    let after = wait_for(deadline(30.0), || {
        let scraped = scrape(&metrics);
        (scraped.restarts("max_requests") >= 1.0).then_some(scraped)
    })
    .unwrap_or_else(|| panic!("no max_requests restart counted:\n{}", server.log()));
    assert_eq!(after.restarts("exit"), 0.0);
    assert!(after.requests(class, "2xx") >= 3.0);
}

/// Connects and sends nothing (or half a head), and never reads.
fn silent_client(addr: &Addr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr.tcp()).expect("connect to /metrics");
    stream.write_all(bytes).unwrap();
    stream
}

/// Metrics clients that connect and say nothing, or half a request, do not
/// hold the master: TTIN, TTOU and HUP are still handled while they are
/// connected, and they are dropped at their deadline so a real scrape is
/// served after them.
#[test]
fn the_master_loop_does_not_wait_for_a_silent_metrics_client() {
    let server = start(Class::Sync, &["-w", "1"]);
    let metrics = metrics_addr(&server);
    server.wait_workers(1, 30.0);
    // More silent clients than the master serves at once.
    let mut silent: Vec<TcpStream> = (0..10)
        .map(|index| {
            let bytes: &[u8] = if index % 2 == 0 { b"" } else { b"GET /metr" };
            silent_client(&metrics, bytes)
        })
        .collect();
    server.signal(Signal::SIGTTIN);
    server.wait_workers(2, 10.0);
    server.signal(Signal::SIGHUP);
    server.expect_log("Reload complete", 20.0);
    server.signal(Signal::SIGTTOU);
    server.wait_workers(1, 20.0);
    // Each was dropped at its deadline: the master closed it.
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "a silent client got {rest:?}"
        );
    }
    let scraped = scrape(&metrics);
    assert_eq!(scraped.value("runicorn_workers_target", &[]), 1.0);
}

/// Other paths are 404 and other methods 405; HEAD has the headers only.
#[test]
fn only_metrics_is_served() {
    let server = start(Class::Sync, &["-w", "1"]);
    let metrics = metrics_addr(&server);
    let response = client::get(&metrics, "/").unwrap();
    assert_eq!(response.status, 404);
    let response = client::get(&metrics, "/metrics/x").unwrap();
    assert_eq!(response.status, 404);
    let response = client::raw_response(
        &metrics,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response.status, 405);
    let head = client::raw(&metrics, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "a HEAD answer has no body: {head}"
    );
}

/// The listen queue of each TCP listener: its limit is `--backlog`, and
/// connections the only (busy) sync worker has not accepted are counted.
#[test]
fn the_listen_queue_is_reported() {
    let server = Launch::new([
        "-k",
        "sync",
        "-w",
        "1",
        "--backlog",
        "64",
        "-b",
        scenario::LOCAL,
        "--metrics-bind",
        "127.0.0.1:0",
        "builtin:sleep",
    ])
    .start();
    let metrics = metrics_addr(&server);
    server.wait_workers(1, 30.0);
    let listener = format!("http://{}", server.addr().tcp());
    let labels = [("listener", listener.as_str())];
    let scraped = scrape(&metrics);
    assert_eq!(scraped.value("runicorn_listen_queue_limit", &labels), 64.0);
    assert_eq!(scraped.value("runicorn_listen_queue", &labels), 0.0);
    // The worker sleeps in one request; three more connections wait.
    let mut busy = TcpStream::connect(server.addr().tcp()).unwrap();
    busy.write_all(b"GET /?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    thread_sleep_until_in_flight(&metrics);
    let _queued: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr().tcp()).unwrap())
        .collect();
    let queued = wait_for(deadline(10.0), || {
        let value = scrape(&metrics).value("runicorn_listen_queue", &labels);
        (value == 3.0).then_some(value)
    });
    assert_eq!(queued, Some(3.0));
}

/// Waits until the one worker has a request in flight.
fn thread_sleep_until_in_flight(metrics: &Addr) {
    let busy = wait_for(deadline(10.0), || {
        let value = scrape(metrics).value("runicorn_requests_in_flight", &[("class", "sync")]);
        (value == 1.0).then_some(())
    });
    assert!(busy.is_some(), "the sleep request never started");
}

/// A unix path, a bad address and an address in use are each one line and
/// a non-zero exit.
#[test]
fn a_bad_metrics_address_is_refused_in_one_line() {
    for (value, expected) in [
        ("unix:/tmp/metrics.sock", "metrics_bind"),
        ("/tmp/metrics.sock", "metrics_bind"),
        ("127.0.0.1", "metrics_bind"),
        ("127.0.0.1:port", "metrics_bind"),
        ("not a host:9100", "metrics_bind"),
    ] {
        let exited = Server::start_expect_exit([
            "-b",
            scenario::LOCAL,
            "--metrics-bind",
            value,
            "builtin:hello",
        ]);
        assert_ne!(exited.code(), 0, "{value}");
        let log = exited.log.trim().to_owned();
        assert_eq!(log.lines().count(), 1, "{value}: {log}");
        assert!(
            log.contains(expected) && log.contains("HOST:PORT"),
            "{value}: {log}"
        );
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let exited = Server::start_expect_exit([
        "-b",
        scenario::LOCAL,
        "--metrics-bind",
        &address,
        "builtin:hello",
    ]);
    assert_eq!(exited.code(), 1);
    let errors: Vec<&str> = exited
        .log
        .lines()
        .filter(|line| line.contains("metrics"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", exited.log);
    assert!(
        errors[0].contains(&address) && errors[0].contains("--metrics-bind"),
        "{}",
        errors[0]
    );
}

/// Receives datagrams on `receive` until every one of `wanted` has come
/// (each as many times as it is listed), or 20 s pass; returns them all.
fn receive_until(
    mut receive: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    wanted: &[&str],
) -> Vec<String> {
    let limit = deadline(20.0);
    let mut received: Vec<String> = Vec::new();
    let mut buffer = [0u8; 2048];
    while !limit.passed() {
        let missing = wanted.iter().any(|line| {
            received.iter().filter(|got| got == line).count()
                < wanted.iter().filter(|other| other == &line).count()
        });
        if !missing {
            break;
        }
        if let Ok(len) = receive(&mut buffer) {
            received.push(String::from_utf8_lossy(&buffer[..len]).into_owned());
        }
    }
    received
}

fn assert_received(received: &[String], wanted: &[&str], log: &str) {
    for line in wanted {
        let want = wanted.iter().filter(|other| *other == line).count();
        let got = received.iter().filter(|got| got == line).count();
        assert!(
            got >= want,
            "{line:?}: {got} of {want} in {received:#?}\n{log}"
        );
    }
}

/// Per request from the workers: the duration timer, the request and its
/// status counters; from the master: the workers gauge; every one with the
/// prefix and the dogstatsd tags, over UDP.
fn statsd_gets_gunicorns_metrics(class: Class) {
    let statsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    statsd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let host = statsd.local_addr().unwrap().to_string();
    let server = class
        .launch(
            &[
                "-w",
                "2",
                "--statsd-host",
                &host,
                "--statsd-prefix",
                "app",
                "--dogstatsd-tags",
                "env:ci,blue",
            ],
            "status:app",
        )
        .program(LINKED)
        .start();
    server.wait_workers(2, 30.0);
    send(&server, "/", 2, 200);
    send(&server, "/?code=404", 1, 404);
    let wanted = [
        "app.runicorn.workers:2|g|#env:ci,blue",
        "app.runicorn.requests:1|c|@1.0|#env:ci,blue",
        "app.runicorn.requests:1|c|@1.0|#env:ci,blue",
        "app.runicorn.requests:1|c|@1.0|#env:ci,blue",
        "app.runicorn.request.status.200:1|c|@1.0|#env:ci,blue",
        "app.runicorn.request.status.200:1|c|@1.0|#env:ci,blue",
        "app.runicorn.request.status.404:1|c|@1.0|#env:ci,blue",
    ];
    let received = receive_until(|buffer| statsd.recv(buffer), &wanted);
    assert_received(&received, &wanted, &server.log());
    let timers: Vec<&String> = received
        .iter()
        .filter(|line| line.starts_with("app.runicorn.request.duration:"))
        .collect();
    assert_eq!(timers.len(), 3, "{received:#?}");
    for timer in timers {
        let value = timer
            .strip_prefix("app.runicorn.request.duration:")
            .and_then(|rest| rest.strip_suffix("|ms|#env:ci,blue"))
            .and_then(|millis| millis.parse::<f64>().ok());
        assert!(value.is_some_and(|millis| millis >= 0.0), "{timer}");
    }
}

/// The same to a unix datagram socket, without prefix or tags; an app's
/// failure is one `runicorn.log.exception`, a worker killed by a foreign
/// SIGKILL one `runicorn.log.error`.
#[test]
fn statsd_over_a_unix_datagram_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statsd.sock");
    let statsd = UnixDatagram::bind(&path).unwrap();
    statsd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let host = format!("unix://{}", path.display());
    let server = Class::Gthread
        .launch(&["-w", "1", "--statsd-host", &host], "status:app")
        .program(LINKED)
        .start();
    let old = server.wait_workers(1, 30.0);
    send(&server, "/?code=500", 1, 500);
    let wanted = [
        "runicorn.workers:1|g",
        "runicorn.requests:1|c|@1.0",
        "runicorn.request.status.500:1|c|@1.0",
    ];
    let received = receive_until(|buffer| statsd.recv(buffer), &wanted);
    assert_received(&received, &wanted, &server.log());
    assert!(
        received
            .iter()
            .any(|line| line.starts_with("runicorn.request.duration:") && line.ends_with("|ms")),
        "{received:#?}"
    );
    // An app that fails: Gunicorn's log.exception line, and its 500.
    send(&server, "/?fail=1", 1, 500);
    let wanted = [
        "runicorn.log.exception:1|c|@1.0",
        "runicorn.request.status.500:1|c|@1.0",
    ];
    let received = receive_until(|buffer| statsd.recv(buffer), &wanted);
    assert_received(&received, &wanted, &server.log());
    assert!(
        !received
            .iter()
            .any(|line| line.starts_with("runicorn.log.error")),
        "an app's failure is an exception, not an error: {received:#?}"
    );
    proc::signal(old[0], Signal::SIGKILL);
    assert!(scenario::wait_replaced(&server, &old, 30.0));
    let wanted = ["runicorn.log.error:1|c|@1.0"];
    let received = receive_until(|buffer| statsd.recv(buffer), &wanted);
    assert_received(&received, &wanted, &server.log());
}

/// A `--statsd-host` that is no address is one line and a non-zero exit.
#[test]
fn a_bad_statsd_host_is_refused_in_one_line() {
    for value in ["host:port", "unix://", "a b:8125"] {
        let exited = Server::start_expect_exit([
            "-b",
            scenario::LOCAL,
            "--statsd-host",
            value,
            "builtin:hello",
        ]);
        assert_ne!(exited.code(), 0, "{value}");
        let log = exited.log.trim().to_owned();
        assert_eq!(log.lines().count(), 1, "{value}: {log}");
        assert!(
            log.contains("statsd_host") && log.contains("unix://PATH"),
            "{value}: {log}"
        );
    }
}

/// A USR2 upgrade with a fixed metrics address: the new master does not
/// fail on the address its old master holds; it leaves the metrics to the
/// old master and serves them once the old master is gone.
#[test]
fn a_usr2_upgrade_hands_the_metrics_address_over() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("runicorn.pid");
    // A port picked by the kernel, then given to runicorn.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let server = Launch::new([
        "-w",
        "1",
        "-b",
        scenario::LOCAL,
        "--pid",
        pidfile.to_str().unwrap(),
        "--graceful-timeout",
        "3",
        "--metrics-bind",
        &address,
        "builtin:hello",
    ])
    .start();
    server.wait_workers(1, 30.0);
    let metrics = Addr::Tcp(address.parse().unwrap());
    let old = server.pid();
    assert_eq!(scrape(&metrics).value("runicorn_workers_target", &[]), 1.0);
    server.signal(Signal::SIGUSR2);
    let mut next = pidfile.as_os_str().to_owned();
    next.push(".2");
    let new = wait_for(deadline(30.0), || {
        proc::read_pid(std::path::Path::new(&next)).filter(|pid| *pid != old)
    })
    .unwrap_or_else(|| panic!("no new master:\n{}", server.log()));
    server.expect_log("left to the old master", 20.0);
    assert!(
        wait_for(deadline(30.0), || (proc::workers_of(new).len() == 1)
            .then_some(()))
        .is_some(),
        "the new master's worker:\n{}",
        server.log()
    );
    assert!(proc::alive(new), "{}", server.log());
    // The old master still answers, then stops; the new one takes over.
    assert_eq!(scrape(&metrics).value("runicorn_workers_target", &[]), 1.0);
    proc::signal(old, Signal::SIGTERM);
    server.expect_log(
        &format!("Metrics at: http://{address}/metrics ({new})"),
        30.0,
    );
    let scraped = scrape(&metrics);
    assert_eq!(
        scraped.value("runicorn_workers", &[("state", "alive")]),
        1.0
    );
    assert_eq!(
        scraped.all("runicorn_worker_requests_total")[0].labels["pid"],
        Value::String(proc::workers_of(new)[0].to_string())
    );
    proc::signal(new, Signal::SIGTERM);
}

/// A HUP whose configuration moves `--metrics-bind` moves the listener:
/// the new address answers, the old one is closed.
#[test]
fn a_hup_moves_the_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runicorn.toml");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (first, second) = (free_port(), free_port());
    let write = |address: std::net::SocketAddr| {
        std::fs::write(&config, format!("metrics_bind = \"{address}\"\n")).unwrap();
    };
    write(first);
    let server = Class::Sync.start(
        &["-w", "1", "-c", config.to_str().unwrap()],
        "builtin:hello",
    );
    server.wait_workers(1, 30.0);
    assert_eq!(metrics_addr(&server), Addr::Tcp(first));
    scrape(&Addr::Tcp(first));
    write(second);
    server.signal(Signal::SIGHUP);
    server.expect_log(&format!("Metrics at: http://{second}/metrics"), 20.0);
    assert_eq!(
        scrape(&Addr::Tcp(second)).value("runicorn_workers_target", &[]),
        1.0
    );
    assert!(
        TcpStream::connect(first).is_err(),
        "the old metrics address is still open"
    );
}
