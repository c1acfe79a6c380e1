//! `runicorn bench`, end to end: the real binary runs the bench, which
//! starts the real binary as the server under each class (or drives a
//! server the test started, with `--url`), and prints its report as JSON.
//! Every run here is short (`-d 1s`, a short warm-up); nothing asserts a
//! figure as performance, only that what was measured is there and
//! consistent (requests counted, CPU and memory read, statuses 200).
//!
//! The bench runs in its own process group; on drop (also on panic) the
//! groups of the servers it started and its own are killed.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use runicorn_tests::server::HERMETIC_ENV;
use runicorn_tests::wait::wait_for;
use runicorn_tests::{deadline, proc, runicorn_bin, Class};
use serde_json::Value;

/// A running `runicorn bench`.
struct Bench {
    child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
    reaped: bool,
}

/// How a bench ended.
#[derive(Debug)]
struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Done {
    /// The report it printed (`--output json`).
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "not a JSON report ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn expect_code(&self, code: i32) -> &Done {
        assert_eq!(self.code, Some(code), "{self:#?}");
        self
    }
}

impl Bench {
    fn start(args: &[&str]) -> Bench {
        Bench::start_with(args, &[])
    }

    fn start_with(args: &[&str], envs: &[(&str, &Path)]) -> Bench {
        let out = tempfile::NamedTempFile::new().expect("a file for stdout");
        let err = tempfile::NamedTempFile::new().expect("a file for stderr");
        let mut command = Command::new(runicorn_bin());
        command.arg("bench").args(args);
        for key in HERMETIC_ENV {
            command.env_remove(key);
        }
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.reopen().expect("reopen stdout file"))
            .stderr(err.reopen().expect("reopen stderr file"))
            .process_group(0)
            .spawn()
            .expect("spawn runicorn bench");
        Bench {
            child,
            out,
            err,
            reaped: false,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The masters the bench started that run now (its children).
    fn servers(&self) -> Vec<u32> {
        proc::live_children(self.pid())
    }

    /// Waits for the bench to exit (the test fails after `secs`).
    fn wait(mut self, secs: f64) -> Done {
        let status = wait_for(deadline(secs), || self.child.try_wait().ok().flatten());
        let stderr = fs::read_to_string(self.err.path()).unwrap_or_default();
        let Some(status) = status else {
            panic!("runicorn bench did not exit within {secs}s; stderr:\n{stderr}");
        };
        self.reaped = true;
        let stdout = fs::read_to_string(self.out.path()).unwrap_or_default();
        let code = status.code();
        assert!(
            code.is_some(),
            "bench killed by signal {:?}: {stderr}",
            status.signal()
        );
        Done {
            code,
            stdout,
            stderr,
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // The servers run in groups of their own: kill them first, while
        // they can still be found as the bench's children.
        for server in proc::live_children(self.pid()) {
            let _ = killpg(Pid::from_raw(server as i32), Signal::SIGKILL);
        }
        let _ = killpg(Pid::from_raw(self.pid() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Runs `runicorn bench ARGS... --output json` to its end (120 s at most).
fn bench(args: &[&str]) -> Done {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    Bench::start(&all).wait(120.0)
}

fn runs(report: &Value) -> &Vec<Value> {
    report["runs"].as_array().expect("runs is an array")
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"))
}

/// A run's requests all answered 200, none failed.
fn assert_clean(run: &Value) {
    let requests = u(&run["requests"]);
    assert!(requests > 0, "no request answered: {run}");
    assert_eq!(run["errors"], serde_json::json!({}), "{run}");
    assert_eq!(
        run["statuses"],
        serde_json::json!({ "200": requests }),
        "{run}"
    );
}

#[test]
fn every_class_serves_hello_and_is_measured() {
    let done = bench(&[
        "-k",
        "sync,gthread,green,async",
        "-w",
        "2",
        "-c",
        "1,4",
        "-d",
        "1s",
        "--warmup",
        "0.2s",
    ]);
    done.expect_code(0);
    // stderr is not a terminal here: no progress bars, nothing at all.
    assert_eq!(done.stderr, "");
    let report = done.report();
    assert_eq!(report["format"], 1);
    assert_eq!(report["failures"], serde_json::json!([]));
    assert_eq!(report["interrupted"], false);
    assert!(u(&report["machine"]["cpus"]) >= 1);
    assert!(u(&report["machine"]["memory_kib"]) > 0);
    assert_eq!(report["settings"]["workers"], 2);
    assert_eq!(report["settings"]["mode"], "closed");
    assert_eq!(report["settings"]["keep_alive"], true);
    assert_eq!(report["settings"]["transport"], "tcp");
    let runs = runs(&report);
    let seen: Vec<(String, u64)> = runs
        .iter()
        .map(|run| {
            (
                run["class"].as_str().unwrap().to_owned(),
                u(&run["connections"]),
            )
        })
        .collect();
    let mut wanted = Vec::new();
    for class in ["sync", "gthread", "green", "async"] {
        for connections in [1, 4] {
            wanted.push((class.to_owned(), connections));
        }
    }
    assert_eq!(seen, wanted);
    for run in runs {
        assert_clean(run);
        assert_eq!(run["workload"], "hello");
        assert_eq!(run["app"], "builtin:hello");
        assert_eq!(run["request"], "GET /");
        assert!((f(&run["duration_s"]) - 1.0).abs() < 0.2, "{run}");
        let rps = f(&run["rps"]);
        assert!((rps - u(&run["requests"]) as f64 / f(&run["duration_s"])).abs() < 1.0);
        assert!(
            f(&run["server_cpu_s"]) > 0.0,
            "server CPU not measured: {run}"
        );
        assert!(f(&run["cpu_per_request_us"]) > 0.0, "{run}");
        let rss = run["worker_rss_kib"].as_array().unwrap();
        assert_eq!(rss.len(), 2, "one RSS per worker: {run}");
        assert!(rss.iter().all(|kib| u(kib) > 0), "{run}");
        assert!(u(&run["master_rss_kib"]) > 0, "{run}");
        let latency = &run["latency"];
        assert!(u(&latency["p50"]) > 0 && u(&latency["p50"]) <= u(&latency["p99"]));
        assert!(u(&latency["p99"]) <= u(&latency["max"]));
        // hello is not IO-bound: no Little's-law limit.
        assert!(run["little_limit_rps"].is_null(), "{run}");
        assert_eq!(run["interrupted"], false);
    }
}

#[test]
fn io_workload_gets_the_little_limit_of_each_class() {
    // Capacity: gthread 1 x --threads 2; green 1 x --worker-connections 3
    // (separately: gthread's connections are capped by
    // --worker-connections too, as Gunicorn's are).
    // sync: one request at a time per worker (the bench must not give it
    // --threads, which would make it gthread).
    for (class, flag, value, capacity) in [
        ("sync", "-w", "1", 1.0),
        ("gthread", "--threads", "2", 2.0),
        ("green", "--worker-connections", "3", 3.0),
    ] {
        let done = bench(&[
            "--workload",
            "io",
            "-k",
            class,
            flag,
            value,
            "-c",
            "1,8",
            "-d",
            "1s",
            "--warmup",
            "0.2s",
        ]);
        done.expect_code(0);
        let report = done.report();
        let runs = runs(&report);
        assert_eq!(runs.len(), 2);
        for run in runs {
            assert_clean(run);
            assert_eq!(run["app"], "builtin:sleep");
            assert_eq!(run["request"], "GET /?ms=50");
            let limit = f(&run["little_limit_rps"]);
            let concurrent = if u(&run["connections"]) == 1 {
                1.0
            } else {
                capacity
            };
            // The service time is a measured p50 (50 ms and a little more).
            let ideal = concurrent / 50e-3;
            assert!(
                limit <= ideal && limit > ideal * 0.5,
                "{limit} vs {ideal}: {run}"
            );
        }
    }
}

#[test]
fn builtin_workloads_run() {
    let done = bench(&[
        "--workload",
        "cpu,stream",
        "-k",
        "gthread",
        "-c",
        "2",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(0);
    let report = done.report();
    let runs = runs(&report);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["app"], "builtin:cpu");
    assert_eq!(runs[0]["request"], "GET /?n=1000");
    assert_eq!(runs[1]["app"], "builtin:stream");
    assert_eq!(runs[1]["request"], "GET /?kb=64");
    for run in runs {
        assert_clean(run);
    }
}

#[test]
fn a_table_with_the_recommendation_by_default() {
    let done = Bench::start(&[
        "-k",
        "sync,gthread",
        "-c",
        "1,4",
        "-d",
        "1s",
        "--warmup",
        "0",
    ])
    .wait(120.0);
    done.expect_code(0);
    assert!(
        done.stdout.contains("== hello: builtin:hello"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("recommendation for hello"),
        "{}",
        done.stdout
    );
    let rows = done
        .stdout
        .lines()
        .filter(|line| {
            line.trim_start().starts_with("sync ") || line.trim_start().starts_with("gthread ")
        })
        .count();
    assert!(rows >= 4, "{}", done.stdout);
}

#[test]
fn progress_bars_on_a_terminal() {
    // `script` gives the bench a terminal; the typescript holds what it drew.
    let dir = tempfile::tempdir().unwrap();
    let typescript = dir.path().join("typescript");
    let command = format!(
        "'{}' bench -k gthread -c 3 -d 1s --warmup 0.5s --output json",
        runicorn_bin().display()
    );
    let mut script = Command::new("script");
    script
        .args(["-qefc", &command])
        .arg(&typescript)
        .env("TERM", "xterm");
    for key in HERMETIC_ENV {
        script.env_remove(key);
    }
    let finished =
        runicorn_tests::command::run_bounded("script runicorn bench", &mut script, 120.0);
    assert!(finished.status.success(), "{}", finished.output);
    let drawn = fs::read_to_string(&typescript).unwrap_or_default();
    assert!(drawn.contains("hello gthread c=3"), "{drawn}");
    assert!(drawn.contains("measuring"), "{drawn}");
    assert!(drawn.contains("req/s"), "{drawn}");
}

#[test]
fn url_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let bind = format!("unix:{}", socket.display());
    let server = runicorn_tests::Server::start(["-k", "async", "-b", &bind, "builtin:hello"]);
    let done = bench(&[
        "--url",
        &bind,
        "--server-pid",
        &server.pid().to_string(),
        "-c",
        "2",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(0);
    let report = done.report();
    assert_eq!(report["settings"]["transport"], "unix");
    let run = &runs(&report)[0];
    assert_clean(run);
    assert!(f(&run["server_cpu_s"]) > 0.0, "{run}");
}

#[test]
fn unix_socket() {
    let bench = Bench::start(&[
        "--unix", "-k", "sync", "-c", "2", "-d", "2s", "--warmup", "0", "--output", "json",
    ]);
    // The server listens on a socket in a directory of the bench's
    // (the only test here with --unix), as the kernel's table shows.
    let socket = wait_for(deadline(60.0), || {
        let table = fs::read_to_string("/proc/net/unix").ok()?;
        table
            .lines()
            .filter_map(|line| line.split_whitespace().nth(7))
            .find(|path| path.contains("/runicorn-bench-") && path.ends_with("/s.sock"))
            .map(str::to_owned)
    })
    .expect("a unix socket of the bench's server");
    assert!(!bench.servers().is_empty());
    let done = bench.wait(60.0);
    done.expect_code(0);
    let report = done.report();
    assert_eq!(report["settings"]["transport"], "unix");
    assert_clean(&runs(&report)[0]);
    // The socket's directory went with the server.
    let dir = Path::new(&socket).parent().unwrap().to_owned();
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn a_class_that_cannot_start_is_a_failure_and_the_others_run() {
    let done = bench(&[
        "-k",
        "sync,nosuch,gthread",
        "-c",
        "1",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(1);
    let line = done
        .stderr
        .lines()
        .find(|line| line.contains("nosuch"))
        .unwrap_or_else(|| panic!("no reason on stderr: {}", done.stderr));
    assert!(line.contains("unknown worker class 'nosuch'"), "{line}");
    let report = done.report();
    let classes: Vec<&str> = runs(&report)
        .iter()
        .map(|run| run["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["sync", "gthread"]);
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["class"], "nosuch");
    assert_eq!(failures[0]["workload"], "hello");
    assert!(failures[0]["reason"]
        .as_str()
        .unwrap()
        .contains("unknown worker class"));

    // --from reads it back as it was written (and ran nothing: exit 0).
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("report.json");
    fs::write(&saved, &done.stdout).unwrap();
    let again = bench(&["--from", saved.to_str().unwrap()]);
    again.expect_code(0);
    assert_eq!(again.report(), report);
    let broken = dir.path().join("broken.json");
    fs::write(&broken, "{").unwrap();
    let refused = Bench::start(&["--from", broken.to_str().unwrap()]).wait(30.0);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("is not a runicorn bench report"),
        "{}",
        refused.stderr
    );
}

#[test]
fn an_app_that_fails_to_load_is_named() {
    let done = bench(&[
        "builtin:nosuch",
        "-k",
        "sync,async",
        "-c",
        "1",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(1);
    let report = done.report();
    assert!(runs(&report).is_empty());
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{report}");
    for failure in failures {
        let reason = failure["reason"].as_str().unwrap();
        assert!(
            reason.contains("Failed to find application object 'nosuch'"),
            "{reason}"
        );
        assert_eq!(failure["workload"], "app");
    }
    assert_eq!(
        done.stderr
            .lines()
            .filter(|line| line.contains("could not serve"))
            .count(),
        2,
        "{}",
        done.stderr
    );
}

#[test]
fn ctrl_c_prints_what_was_measured_and_leaves_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let access_log = dir.path().join("access.log");
    let bench = Bench::start(&[
        "-k",
        "sync,gthread",
        "-c",
        "1,2",
        "-d",
        "30s",
        "--warmup",
        "0",
        "--output",
        "json",
        "--",
        "--access-logfile",
        access_log.to_str().unwrap(),
    ]);
    let server =
        wait_for(deadline(60.0), || bench.servers().first().copied()).expect("the server started");
    // Once requests are being answered, and a little after (the generator
    // reports progress every 100 ms).
    let answered = wait_for(deadline(60.0), || {
        let log = fs::read_to_string(&access_log).ok()?;
        (log.lines().count() > 100).then_some(())
    });
    assert!(answered.is_some(), "no request answered");
    thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(bench.pid() as i32), Signal::SIGINT).expect("SIGINT the bench");
    let done = bench.wait(30.0);
    done.expect_code(130);
    let report = done.report();
    assert_eq!(report["interrupted"], true);
    let runs = runs(&report);
    assert_eq!(runs.len(), 1, "{report}");
    assert_eq!(runs[0]["interrupted"], true);
    assert_eq!(runs[0]["class"], "sync");
    assert!(u(&runs[0]["requests"]) > 0);
    assert!(f(&runs[0]["duration_s"]) < 29.0);
    assert!(
        proc::group(server).is_empty(),
        "the server's group is still there: {:?}",
        proc::group(server)
    );
}

/// A request as the recorder saw it: its head, and its body.
type Recorded = (String, Vec<u8>);

/// A plain HTTP/1.1 server in the test: answers `ok` to every request,
/// keeps the connection open unless the request says `Connection: close`,
/// and records every request and how many connections it accepted.
struct Recorder {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    accepted: Arc<Mutex<u64>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let (seen, count) = (Arc::clone(&requests), Arc::clone(&accepted));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                *count.lock().unwrap() += 1;
                let seen = Arc::clone(&seen);
                thread::spawn(move || serve_recorded(stream, &seen));
            }
        });
        Recorder {
            addr,
            requests,
            accepted,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn accepted(&self) -> u64 {
        *self.accepted.lock().unwrap()
    }
}

fn serve_recorded(stream: TcpStream, seen: &Mutex<Vec<Recorded>>) {
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let lower = head.to_ascii_lowercase();
        let length: usize = lower
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map(|value| value.trim().parse().expect("a Content-Length"))
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let close = lower.contains("\r\nconnection: close\r\n");
        seen.lock().unwrap().push((head, body));
        let answer: &[u8] = if close {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        if writer.write_all(answer).is_err() || close {
            return;
        }
    }
}

#[test]
fn url_sends_the_request_described() {
    let recorder = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.json");
    fs::write(&body_file, b"{\"from\": \"file\"}").unwrap();
    let url = recorder.url("/ignored");
    let done = bench(&[
        "--url",
        &url,
        "--label",
        "recorder",
        "-m",
        "PUT",
        "--path",
        "/items?x=1",
        "-H",
        "X-Test: yes",
        "--body",
        &format!("@{}", body_file.display()),
        "-c",
        "2",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(0);
    let report = done.report();
    let run = &runs(&report)[0];
    assert_clean(run);
    assert_eq!(run["class"], "recorder");
    assert_eq!(run["workload"], "app");
    assert_eq!(run["app"], url.as_str());
    assert_eq!(run["request"], "PUT /items?x=1");
    // No --server-pid: nothing to measure the server with.
    assert_eq!(f(&run["server_cpu_s"]), 0.0);
    let requests = recorder.requests();
    assert!(requests.len() as u64 >= u(&run["requests"]));
    let (head, body) = &requests[0];
    assert!(head.starts_with("PUT /items?x=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nX-Test: yes\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("\r\nhost: {}\r\n", recorder.addr)),
        "{head}"
    );
    assert_eq!(body, b"{\"from\": \"file\"}");
    // Keep-alive: two connections carried every request.
    assert!(
        recorder.accepted() <= 2,
        "{} connections",
        recorder.accepted()
    );

    // The --url's own path when --path is not given; a string body.
    let recorder = Recorder::start();
    let done = bench(&[
        "--url",
        &recorder.url("/from-url"),
        "--body",
        "abc",
        "-c",
        "1",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(0);
    let (head, body) = &recorder.requests()[0];
    assert!(head.starts_with("GET /from-url HTTP/1.1\r\n"), "{head}");
    assert_eq!(body, b"abc");
    assert_eq!(runs(&done.report())[0]["class"], "url");
}

#[test]
fn url_with_a_requests_file_sends_them_in_turn() {
    let recorder = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.http");
    fs::write(
        &file,
        "GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    )
    .unwrap();
    let done = bench(&[
        "--url",
        &recorder.url("/"),
        "--requests",
        file.to_str().unwrap(),
        "-c",
        "1",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(0);
    let report = done.report();
    let run = &runs(&report)[0];
    assert_clean(run);
    assert_eq!(run["request"], format!("file {}", file.display()));
    let requests = recorder.requests();
    assert!(requests.len() >= 2);
    assert!(requests[0].0.starts_with("GET /one "), "{}", requests[0].0);
    assert!(requests[1].0.starts_with("POST /two "), "{}", requests[1].0);
    assert_eq!(requests[1].1, b"abc");
}

#[test]
fn new_connection_opens_one_per_request() {
    let recorder = Recorder::start();
    let done = bench(&[
        "--url",
        &recorder.url("/"),
        "--new-connection",
        "-c",
        "2",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(0);
    let report = done.report();
    assert_eq!(report["settings"]["keep_alive"], false);
    let requests = recorder.requests();
    assert!(requests.len() > 4, "{}", requests.len());
    assert!(recorder.accepted() + 2 >= requests.len() as u64);
    assert!(requests.iter().all(|(head, _)| head
        .to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n")));

    // sync answers every request with Connection: close: counted as a
    // reconnect, not an error, with keep-alive and with a connection per
    // request.
    for extra in [&[][..], &["--new-connection"]] {
        let mut args = vec!["-k", "sync", "-c", "2", "-d", "1s", "--warmup", "0"];
        args.extend_from_slice(extra);
        let done = bench(&args);
        done.expect_code(0);
        assert_clean(&runs(&done.report())[0]);
    }
}

#[test]
fn warmup_is_sent_but_not_measured() {
    let recorder = Recorder::start();
    let done = bench(&[
        "--url",
        &recorder.url("/"),
        "-c",
        "1",
        "-d",
        "1s",
        "--warmup",
        "1s",
    ]);
    done.expect_code(0);
    let report = done.report();
    let measured = u(&runs(&report)[0]["requests"]);
    let sent = recorder.requests().len() as u64;
    // About as many again during the warm-up (at least a quarter as many).
    assert!(
        sent > measured + measured / 4,
        "sent {sent}, measured {measured}"
    );
    assert_eq!(f(&report["settings"]["warmup_s"]), 1.0);
}

#[test]
fn open_loop_sends_at_the_rate() {
    let done = bench(&[
        "-k", "gthread", "--rate", "40", "-d", "2s", "--warmup", "0.2s",
    ]);
    done.expect_code(0);
    let report = done.report();
    assert_eq!(report["settings"]["mode"], "open");
    let run = &runs(&report)[0];
    assert_clean(run);
    assert_eq!(f(&run["rate"]), 40.0);
    let requests = u(&run["requests"]);
    // 40/s for 2 s: 80, within generous bounds.
    assert!((40..=120).contains(&requests), "{requests} requests");
}

#[test]
fn url_with_server_pid_measures_that_server() {
    let server = Class::Gthread.start(&["-w", "2"], "builtin:hello");
    let url = format!("http://{}/", server.addr());
    let pid = server.pid().to_string();
    let done = bench(&[
        "--url",
        &url,
        "--server-pid",
        &pid,
        "--label",
        "mine",
        "-c",
        "2",
        "-d",
        "1s",
        "--warmup",
        "0",
    ]);
    done.expect_code(0);
    let report = done.report();
    let run = &runs(&report)[0];
    assert_clean(run);
    assert_eq!(run["class"], "mine");
    assert!(f(&run["server_cpu_s"]) > 0.0, "{run}");
    assert_eq!(run["worker_rss_kib"].as_array().unwrap().len(), 2, "{run}");
    assert!(u(&run["master_rss_kib"]) > 0);
    // The server was not stopped by the bench.
    assert!(proc::alive(server.pid()));
}

#[test]
fn python_wsgi_app() {
    let venv = runicorn_tests::python::venv();
    let apps = runicorn_tests::python::apps_dir();
    let done = Bench::start_with(
        &[
            "hello:app",
            "-k",
            "sync,gthread",
            "-c",
            "2",
            "-d",
            "1s",
            "--warmup",
            "0.2s",
            "--output",
            "json",
            "--",
            "--chdir",
            apps.to_str().unwrap(),
        ],
        &[("VIRTUAL_ENV", venv)],
    )
    .wait(180.0);
    done.expect_code(0);
    let report = done.report();
    assert_eq!(
        report["settings"]["server_args"],
        serde_json::json!(["--chdir", apps.to_str().unwrap()])
    );
    let runs = runs(&report);
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_clean(run);
        assert_eq!(run["workload"], "app");
        assert_eq!(run["app"], "hello:app");
        assert!(f(&run["server_cpu_s"]) > 0.0);
    }
}

/// A WSGI app blocks its thread, so under green and async its requests run
/// on the blocking pool: with `--blocking-threads 2` a worker serves 2 at
/// once, not its 1000 worker connections. The bench reads that from the
/// server's log, and the Little's-law limit at 8 connections is 2 / W (W,
/// the p50 at 1 connection), which the measured req/s stays within; with
/// the worker connections as the capacity it would be 8 / W.
#[test]
fn a_wsgi_app_on_the_blocking_pool_gets_the_pool_s_limit() {
    let venv = runicorn_tests::python::venv();
    let apps = runicorn_tests::python::apps_dir();
    let done = Bench::start_with(
        &[
            "flaskapp:app",
            "--path",
            "/sleep?ms=20",
            "-k",
            "green,async",
            "-c",
            "1,8",
            "-d",
            "1s",
            "--warmup",
            "0.2s",
            "--output",
            "json",
            "--",
            "--chdir",
            apps.to_str().unwrap(),
            "--blocking-threads",
            "2",
        ],
        &[("VIRTUAL_ENV", venv)],
    )
    .wait(180.0);
    done.expect_code(0);
    let report = done.report();
    let runs = runs(&report);
    assert_eq!(runs.len(), 4, "{report}");
    for class in ["green", "async"] {
        let of_class: Vec<&Value> = runs.iter().filter(|run| run["class"] == class).collect();
        assert_eq!(of_class.len(), 2, "{class}");
        for run in &of_class {
            assert_clean(run);
            assert_eq!(run["blocking_pool"], 2, "{run}");
        }
        let (one, eight) = (of_class[0], of_class[1]);
        assert_eq!((u(&one["connections"]), u(&eight["connections"])), (1, 8));
        let service_s = u(&one["latency"]["p50"]) as f64 / 1e6;
        let limit = f(&eight["little_limit_rps"]);
        let pool_limit = 2.0 / service_s;
        assert!(
            (limit - pool_limit).abs() < pool_limit * 0.01,
            "{class}: {limit} vs 2 / {service_s}s: {eight}"
        );
        let measured = f(&eight["rps"]);
        assert!(
            measured <= limit * 1.2 && measured > limit * 0.5,
            "{class}: {measured} req/s against a limit of {limit}: {eight}"
        );
    }
    // The recommendation names the pool, not the worker connections.
    let why = report["recommendations"][0]["why"].as_str().unwrap_or("");
    assert!(!why.contains("add threads or worker connections"), "{why}");
}

/// The user's own native app (a cdylib of the C ABI, named by its path as
/// `runicorn PATH:app` takes it), with the request given by --path, under
/// every class; its waits make it IO-bound, so each run gets its
/// Little's-law limit, and sync's single worker stays within it.
#[test]
fn native_library_app() {
    let library = runicorn_tests::examples::examples().join("libsleep.so");
    let app = format!("{}:app", library.display());
    let done = bench(&[
        &app, "--path", "/?ms=20", "-c", "4", "-d", "1s", "--warmup", "0.2s",
    ]);
    done.expect_code(0);
    let report = done.report();
    let runs = runs(&report);
    let classes: Vec<&str> = runs
        .iter()
        .map(|run| run["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["sync", "gthread", "green", "async"]);
    for run in runs {
        assert_clean(run);
        assert_eq!(run["workload"], "app", "{run}");
        assert_eq!(run["app"], app.as_str(), "{run}");
        assert_eq!(run["request"], "GET /?ms=20", "{run}");
        let limit = f(&run["little_limit_rps"]);
        assert!(limit > 0.0, "{run}");
        if run["class"] == "sync" {
            // One worker, one request at a time, 20 ms each: at most 50/s.
            assert!(limit <= 55.0, "{run}");
            assert!(f(&run["rps"]) <= limit * 1.2, "{run}");
        }
    }
}

#[test]
fn server_args_runicorn_and_pinning() {
    let allowed = proc::cpus_allowed(std::process::id(), std::process::id()).unwrap();
    let cpus: Vec<u32> = allowed
        .split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<u32>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect();
    let server_cpu = *cpus.last().unwrap();
    let client_cpu = cpus[0];
    let dir = tempfile::tempdir().unwrap();
    let access_log = dir.path().join("access.log");
    let marker = dir.path().join("wrapper-ran");
    let wrapper = dir.path().join("runicorn-wrapper");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho ran >> '{}'\nexec '{}' \"$@\"\n",
            marker.display(),
            runicorn_bin().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let server_list = server_cpu.to_string();
    let client_list = client_cpu.to_string();
    let bench = Bench::start(&[
        "-k",
        "sync",
        "-c",
        "2",
        "-d",
        "3s",
        "--warmup",
        "0",
        "--output",
        "json",
        "--server-cpus",
        &server_list,
        "--client-cpus",
        &client_list,
        "--client-threads",
        "2",
        "--runicorn",
        wrapper.to_str().unwrap(),
        "--",
        "--access-logfile",
        access_log.to_str().unwrap(),
    ]);
    // While it runs: the server and its worker on the server CPU, both
    // generator threads on the client CPU.
    let master = wait_for(deadline(60.0), || {
        let master = *bench.servers().first()?;
        (!proc::workers_of(master).is_empty()).then_some(master)
    })
    .expect("the server started");
    let worker = proc::workers_of(master)[0];
    assert_eq!(proc::cpus_allowed(master, master).unwrap(), server_list);
    assert_eq!(proc::cpus_allowed(worker, worker).unwrap(), server_list);
    let generators = wait_for(deadline(30.0), || {
        let found: Vec<u32> = proc::threads(bench.pid())
            .into_iter()
            .filter(|tid| {
                fs::read_to_string(format!("/proc/{}/task/{tid}/comm", bench.pid()))
                    .is_ok_and(|comm| comm.starts_with("loadgen"))
            })
            .collect();
        (found.len() == 2).then_some(found)
    })
    .expect("two generator threads");
    for tid in generators {
        assert_eq!(proc::cpus_allowed(bench.pid(), tid).unwrap(), client_list);
    }
    // The bench's own main thread is not pinned.
    assert_eq!(
        proc::cpus_allowed(bench.pid(), bench.pid()).unwrap(),
        allowed
    );
    let done = bench.wait(60.0);
    done.expect_code(0);
    let report = done.report();
    assert_eq!(
        report["settings"]["server_cpus"],
        serde_json::json!([server_cpu])
    );
    assert_eq!(
        report["settings"]["client_cpus"],
        serde_json::json!([client_cpu])
    );
    assert_eq!(report["settings"]["client_threads"], 2);
    assert_clean(&runs(&report)[0]);
    assert!(marker.exists(), "--runicorn was not used");
    let logged = fs::read_to_string(&access_log).unwrap_or_default();
    assert!(logged.lines().count() as u64 >= u(&runs(&report)[0]["requests"]) / 2);
}

#[test]
fn timeout_counts_slow_responses_as_errors() {
    let done = bench(&[
        "--workload",
        "io",
        "-k",
        "gthread",
        "-c",
        "1",
        "-d",
        "1s",
        "--warmup",
        "0",
        "--timeout",
        "10ms",
    ]);
    done.expect_code(0);
    let report = done.report();
    let run = &runs(&report)[0];
    assert!(u(&run["errors"]["timeout"]) > 0, "{run}");
}

#[test]
fn bad_command_lines_are_refused_in_one_line() {
    let cases: [(&[&str], &str); 16] = [
        (&["--plot", "chart.gif"], "unknown extension"),
        (&["--compare", "/nonexistent/base.json"], "cannot read"),
        (&["-c", "0"], "--connections"),
        (&["--workload", "nope"], "unknown workload 'nope'"),
        (&["-d", "ten"], "not a duration"),
        (&["-d", "0"], "--duration 0"),
        (&["--path", "/x"], "your own app"),
        (&["--label", "x"], "add --url"),
        (
            &["--url", "http://127.0.0.1:1/", "-k", "sync"],
            "--worker-class configures a server",
        ),
        (&["--rate", "100", "-c", "1,2"], "give one value"),
        (&["--rate", "0"], "not a rate"),
        (
            &["--threshold", "5"],
            "--threshold only applies to --compare",
        ),
        (&["--server-cpus", "9999"], "CPU 9999 is not available"),
        (&["--runicorn", "/nonexistent/runicorn"], "no such file"),
        (&["builtin:hello", "--workload", "io"], "drop --workload"),
        (&["--url", "https://127.0.0.1:1/"], "not TLS"),
    ];
    for (args, expected) in cases {
        let done = Bench::start(args).wait(30.0);
        assert_eq!(done.code, Some(2), "{args:?}: {done:?}");
        assert!(done.stdout.is_empty(), "{args:?}: {done:?}");
        let lines: Vec<&str> = done.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {done:?}");
        assert!(lines[0].starts_with("runicorn bench: "), "{}", lines[0]);
        assert!(lines[0].contains(expected), "{args:?}: {}", lines[0]);
    }
    let done = Bench::start(&["--help"]).wait(30.0);
    done.expect_code(0);
    assert!(done.stdout.contains("--worker-class"));
    // The server's own help points to it.
    let help = Command::new(runicorn_bin())
        .arg("--help")
        .output()
        .expect("runicorn --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("runicorn bench --help"));
}
