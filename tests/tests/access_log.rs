//! The access log (`--access-logfile`, `--access-logformat`) and the
//! request id (`--request-id-header`), end to end: every atom of a known
//! request against its exact expected line, Gunicorn's default format
//! compared with the real Gunicorn's line for the same request, escaping,
//! one line per request on every class (a 400 the server answers itself
//! included), lines written without traffic and on TERM, USR1 reopening a
//! renamed file, no line of two workers mixed under load, and the request
//! id kept, made and returned. Scenarios that involve requests run under
//! every class (`class_matrix!`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runicorn_tests::python;
use runicorn_tests::scenario::{exit_code, wait_replaced};
use runicorn_tests::{
    concurrent, deadline, raw_response, wait_until, Class, Conn, Launch, Response, Server, Signal,
};

runicorn_tests::class_matrix![
    every_atom_of_a_known_request,
    one_line_per_request_and_a_400_the_server_answers,
    lines_are_written_without_traffic_and_on_term,
    a_worker_retiring_at_max_requests_writes_its_lines,
    usr1_reopens_a_renamed_file,
    two_workers_under_load_never_mix_lines,
    a_request_id_is_kept_made_and_returned,
];

/// Extra arguments of a class (threads for gthread, so its lines come
/// from several threads).
fn extra(class: Class) -> &'static [&'static str] {
    match class {
        Class::Gthread => &["--threads", "4"],
        _ => &[],
    }
}

/// A temporary directory holding `access.log`.
struct LogDir {
    dir: tempfile::TempDir,
}

impl LogDir {
    fn new() -> LogDir {
        LogDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    fn arg(&self) -> String {
        self.path().to_str().unwrap().to_owned()
    }
}

fn launch(class: Class, log: &LogDir, more: &[&str], app: &str) -> Launch {
    let path = log.arg();
    let mut args: Vec<&str> = extra(class).to_vec();
    args.extend_from_slice(&["--access-logfile", &path]);
    args.extend_from_slice(more);
    class.launch(&args, app)
}

fn start(class: Class, log: &LogDir, more: &[&str], app: &str) -> Server {
    launch(class, log, more, app).start()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits (up to `secs`) for `count` lines in `path`.
fn wait_lines(server: &Server, path: &Path, count: usize, secs: f64) -> Vec<String> {
    if !wait_until(deadline(secs), || lines(path).len() >= count) {
        panic!(
            "{} of {count} access lines in {secs}s: {:?}\n{}",
            lines(path).len(),
            lines(path),
            server.log()
        );
    }
    lines(path)
}

/// Gunicorn's `%(t)s` of `time` at UTC+5:30: `[07/Dec/2026:19:48:39 +0530]`.
fn clf_time(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs() + 5 * 3600 + 1800;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "[{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0530]",
        months[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Every atom, separated by `|`; the time-dependent ones last.
const EVERY_ATOM: &str = "%(h)s|%(l)s|%(u)s|%(r)s|%(s)s|%(m)s|%(U)s|%(q)s|%(H)s|%(b)s|%(B)s|%(f)s|\
     %(a)s|%({X-Hostile}i)s|%({content-type}o)s|%({REMOTE_ADDR}e)s|%({query_string}e)s|\
     %({http_x_hostile}e)s|%({nothing}i)s|%(nothing)s|%(p)s|%(t)s|%(T)s|%(M)s|%(D)s|%(L)s";

/// A request with every part an atom reads, and a hostile field: quotes,
/// a backslash and a latin-1 byte.
const KNOWN_REQUEST: &[u8] = b"GET /caf%C3%A9/x?a=1&b=%22 HTTP/1.1\r\nHost: example\r\n\
    Referer: http://ref/\r\nUser-Agent: tester \"quoted\"\r\n\
    Authorization: Basic dXNlcjpwYXNz\r\nX-Hostile: a\"b\\c\xe9\" injected=\"1\r\n\
    Connection: close\r\n\r\n";

fn every_atom_of_a_known_request(class: Class) {
    let log = LogDir::new();
    // A zone with a non-zero offset (as tests/tests/logging.rs uses): `t`
    // is local time with its real offset.
    let server = launch(
        class,
        &log,
        &["--access-logformat", EVERY_ATOM],
        "builtin:hello",
    )
    .env("TZ", "Asia/Kolkata")
    .start();
    let before = SystemTime::now();
    let response = raw_response(server.addr(), KNOWN_REQUEST).unwrap();
    let after = SystemTime::now();
    assert_eq!(response.status, 200);
    let line = wait_lines(&server, &log.path(), 1, 10.0).remove(0);
    let pid = server.worker_pids()[0];
    let fixed = format!(
        "127.0.0.1|-|user|GET /caf%C3%A9/x?a=1&b=%22 HTTP/1.1|200|GET|/caf\u{c3}\u{a9}/x|a=1&b=%22|\
         HTTP/1.1|13|13|http://ref/|tester \\\"quoted\\\"|a\\\"b\\c\u{e9}\\\" injected=\\\"1|\
         text/plain|127.0.0.1|a=1&b=%22|a\\\"b\\c\u{e9}\\\" injected=\\\"1|-|-|<{pid}>|"
    );
    let Some(timed) = line.strip_prefix(&fixed) else {
        panic!(
            "the line\n{line}\ndoes not start with\n{fixed}\n{}",
            server.log()
        );
    };
    let parts: Vec<&str> = timed.split('|').collect();
    let [time, seconds, millis, micros, decimal] = parts[..] else {
        panic!("{line}");
    };
    assert!(
        [clf_time(before), clf_time(after)].contains(&time.to_owned()),
        "{time} is not the request's time"
    );
    let micros: u64 = micros.parse().unwrap();
    assert!(micros < 10_000_000, "{line}");
    assert_eq!(seconds, (micros / 1_000_000).to_string());
    assert_eq!(millis, (micros / 1000).to_string());
    assert_eq!(
        decimal,
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    );
}

#[test]
fn gunicorns_default_format_is_gunicorns_line_for_the_same_request() {
    let request: &[u8] = b"GET /caf%C3%A9?q=%22x%22 HTTP/1.1\r\nHost: example\r\n\
        Referer: http://ref/\"quoted\"\r\nUser-Agent: tester/1.0 \"ua\"\r\n\
        Authorization: Basic dXNlcjpwYXNz\r\nConnection: close\r\n\r\n";
    let ours = LogDir::new();
    let theirs = LogDir::new();
    let (ours_path, theirs_path) = (ours.arg(), theirs.arg());
    let runicorn = python::start(
        Class::Gthread,
        &["--access-logfile", &ours_path],
        "hello:app",
    );
    let gunicorn = python::gunicorn(&["--access-logfile", &theirs_path], "hello:app");
    for server in [&runicorn, &gunicorn] {
        assert_eq!(raw_response(server.addr(), request).unwrap().status, 200);
    }
    let ours = wait_lines(&runicorn, &ours.path(), 1, 10.0).remove(0);
    let theirs = wait_lines(&gunicorn, &theirs.path(), 1, 10.0).remove(0);
    let without_time = |line: &str| {
        let (before, rest) = line.split_once(" [").unwrap();
        format!("{before} {}", rest.split_once("] ").unwrap().1)
    };
    assert_eq!(
        without_time(&ours),
        without_time(&theirs),
        "\n{ours}\n{theirs}"
    );
    assert_eq!(
        without_time(&ours),
        "127.0.0.1 - user \"GET /caf%C3%A9?q=%22x%22 HTTP/1.1\" 200 13 \"http://ref/\\\"quoted\\\"\" \
         \"tester/1.0 \\\"ua\\\"\""
    );
    // The time field has Gunicorn's shape: `[07/Dec/2026:14:18:39 +0000]`.
    let time = ours.split_once(" [").unwrap().1.split_once("] ").unwrap().0;
    assert_eq!(time.len(), 26, "{time}");
    assert_eq!(&time[2..3], "/");
}

fn one_line_per_request_and_a_400_the_server_answers(class: Class) {
    let log = LogDir::new();
    let server = start(class, &log, &[], "builtin:hello");
    let mut conn = Conn::connect(server.addr()).unwrap();
    for index in 0..5 {
        let path = format!("/kept/{index}");
        let response: Response = conn.request("GET", &path, &[], b"").unwrap();
        assert_eq!(response.status, 200);
        if response.closes() {
            conn = Conn::connect(server.addr()).unwrap();
        }
    }
    // (A sync worker serves one connection at a time: let it go.)
    drop(conn);
    // A trusted front end (loopback) whose scheme fields disagree: the
    // server answers 400 itself, for a request it parsed.
    let refused = raw_response(
        server.addr(),
        b"GET /refused HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n",
    )
    .unwrap();
    assert_eq!(refused.status, 400);
    let lines = wait_lines(&server, &log.path(), 6, 10.0);
    assert_eq!(lines.len(), 6, "{lines:?}");
    for (index, line) in lines[..5].iter().enumerate() {
        assert!(
            line.starts_with("127.0.0.1 - - [")
                && line.ends_with(&format!(
                    "] \"GET /kept/{index} HTTP/1.1\" 200 13 \"-\" \"-\""
                )),
            "{line}"
        );
    }
    assert!(
        lines[5].contains("\"GET /refused HTTP/1.1\" 400 "),
        "{}",
        lines[5]
    );
}

fn lines_are_written_without_traffic_and_on_term(class: Class) {
    let log = LogDir::new();
    let mut server = start(class, &log, &[], "builtin:hello");
    assert_eq!(
        raw_response(
            server.addr(),
            b"GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap()
        .status,
        200
    );
    // No more traffic: the worker's tick writes it (within 1.5 s; 5 s here
    // for a loaded machine).
    let written = wait_lines(&server, &log.path(), 1, 5.0);
    assert!(written[0].contains("GET /one "), "{written:?}");

    // Requests just before TERM: the stop writes what is buffered.
    for index in 0..3 {
        let request = format!("GET /last/{index} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(
            raw_response(server.addr(), request.as_bytes())
                .unwrap()
                .status,
            200
        );
    }
    server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut server, 30.0), 0);
    let all = lines(&log.path());
    assert_eq!(all.len(), 4, "{all:?}");
    for (index, line) in all[1..].iter().enumerate() {
        assert!(line.contains(&format!("GET /last/{index} ")), "{line}");
    }
}

fn a_worker_retiring_at_max_requests_writes_its_lines(class: Class) {
    let log = LogDir::new();
    let server = start(
        class,
        &log,
        &["--max-requests", "3", "--access-logformat", "%(U)s %(p)s"],
        "builtin:hello",
    );
    let first = server.wait_workers(1, 20.0);
    for index in 0..3 {
        let request =
            format!("GET /retiring/{index} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(
            raw_response(server.addr(), request.as_bytes())
                .unwrap()
                .status,
            200
        );
    }
    // The worker retires right after its third answer: what it buffered is
    // written as it exits (no tick of its would come any more).
    assert!(
        wait_replaced(&server, &first, 20.0),
        "the worker did not retire:\n{}",
        server.log()
    );
    let expected: Vec<String> = (0..3)
        .map(|index| format!("/retiring/{index} <{}>", first[0]))
        .collect();
    assert_eq!(wait_lines(&server, &log.path(), 3, 5.0), expected);
}

fn usr1_reopens_a_renamed_file(class: Class) {
    let log = LogDir::new();
    let server = start(
        class,
        &log,
        &["--access-logformat", "%(U)s"],
        "builtin:hello",
    );
    let get = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(
            raw_response(server.addr(), request.as_bytes())
                .unwrap()
                .status,
            200
        );
    };
    get("/before");
    wait_lines(&server, &log.path(), 1, 10.0);
    let rotated = log.dir.path().join("access.log.1");
    std::fs::rename(log.path(), &rotated).unwrap();
    server.signal(Signal::SIGUSR1);
    // Until the worker's next tick its lines still go to the renamed file
    // (as with logrotate's `postrotate` kill -USR1): keep asking until a
    // line lands in the new file.
    let mut sent = 1;
    let reopened = wait_until(deadline(15.0), || {
        get(&format!("/probe/{sent}"));
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
        !lines(&log.path()).is_empty()
    });
    assert!(
        reopened,
        "no line in the new file after USR1:\n{}",
        server.log()
    );
    for index in 0..3 {
        get(&format!("/after/{index}"));
    }
    let total = sent + 3;
    assert!(
        wait_until(deadline(10.0), || lines(&rotated).len()
            + lines(&log.path()).len()
            == total),
        "{} + {} lines for {total} requests\n{}",
        lines(&rotated).len(),
        lines(&log.path()).len(),
        server.log()
    );
    let new = lines(&log.path());
    assert_eq!(&new[new.len() - 3..], ["/after/0", "/after/1", "/after/2"]);
    assert_eq!(lines(&rotated)[0], "/before");
    assert!(
        lines(&rotated)
            .iter()
            .all(|line| !line.starts_with("/after/")),
        "{:?}",
        lines(&rotated)
    );
}

fn two_workers_under_load_never_mix_lines(class: Class) {
    let log = LogDir::new();
    let mut server = start(class, &log, &["-w", "2"], "builtin:hello");
    server.wait_workers(2, 20.0);
    // Long lines (about 2 KiB), so the 64 KiB buffers of both workers fill
    // and are written while the other writes too.
    let padding = "p".repeat(2000);
    let path = format!("/?pad={padding}");
    let report = concurrent(server.addr(), 6, 100, &path);
    assert_eq!(report.failed, 0, "{report:?}");
    server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut server, 30.0), 0);
    let all = lines(&log.path());
    assert_eq!(all.len(), 600);
    let request = format!("\"GET {path} HTTP/1.1\" 200 13 \"-\" \"-\"");
    for line in &all {
        let (head, rest) = line.split_once(" [").unwrap_or(("", ""));
        assert_eq!(head, "127.0.0.1 - -", "a mixed line: {line}");
        let Some((_, tail)) = rest.split_once("] ") else {
            panic!("a mixed line: {line}");
        };
        assert_eq!(tail, request, "a mixed line");
    }
}

fn a_request_id_is_kept_made_and_returned(class: Class) {
    let log = LogDir::new();
    let server = start(
        class,
        &log,
        &[
            "--request-id-header",
            "X-Request-ID",
            "--access-logformat",
            "%({x-request-id}i)s",
        ],
        "builtin:echo",
    );
    let ask = |id: Option<&str>| -> String {
        let mut conn = Conn::connect(server.addr()).unwrap();
        let mut headers = vec![("Connection", "close")];
        if let Some(id) = id {
            headers.push(("X-Request-ID", id));
        }
        let response = conn.request("GET", "/", &headers, b"").unwrap();
        assert_eq!(response.status, 200);
        let returned = response.header("x-request-id").unwrap().to_owned();
        // What the app saw: its request's field.
        let seen: Vec<String> = response.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|field| {
                field[0]
                    .as_str()
                    .unwrap()
                    .eq_ignore_ascii_case("x-request-id")
            })
            .map(|field| field[1].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, std::slice::from_ref(&returned), "the app sees the id");
        returned
    };
    let kept = ask(Some("client-id-42"));
    assert_eq!(kept, "client-id-42");
    let replaced = ask(Some("has\"quote"));
    let made = ask(None);
    let too_long = "x".repeat(129);
    let long_replaced = ask(Some(&too_long));
    for id in [&replaced, &made, &long_replaced] {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|byte| byte.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(replaced, made);
    // A response the server makes itself (a front end's contradictory
    // scheme fields: 400) carries the id too.
    let refused = raw_response(
        server.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: refused-1\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n",
    )
    .unwrap();
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("x-request-id"), Some("refused-1"));
    let logged = wait_lines(&server, &log.path(), 5, 10.0);
    assert_eq!(
        logged,
        [kept, replaced, made, long_replaced, "refused-1".to_owned()]
    );
}

#[test]
fn access_lines_go_to_stdout_with_a_dash() {
    let server = Class::Gthread.start(
        &[
            "--access-logfile",
            "-",
            "--access-logformat",
            "line %(s)s %(U)s",
        ],
        "builtin:hello",
    );
    let response = raw_response(
        server.addr(),
        b"GET /out HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response.status, 200);
    assert!(
        wait_until(deadline(10.0), || server
            .stdout()
            .contains("line 200 /out\n")),
        "stdout: {:?}\n{}",
        server.stdout(),
        server.log()
    );
}

#[test]
fn without_the_setting_there_is_no_access_log_and_no_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Class::Gthread
        .launch(&[], "builtin:hello")
        .current_dir(dir.path())
        .start();
    let response = raw_response(
        server.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response.header("x-request-id"), None);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(server.stdout().is_empty(), "{}", server.stdout());
}

#[test]
fn a_bad_format_or_file_stops_the_start_with_one_line() {
    let exited = Server::start_expect_exit([
        "-b",
        "127.0.0.1:0",
        "--access-logformat",
        "%(s)d",
        "builtin:hello",
    ]);
    assert_ne!(exited.code(), 0);
    assert!(
        exited.log.contains("'%(s)d' in the access log format"),
        "{}",
        exited.log
    );

    let exited = Server::start_expect_exit([
        "-b",
        "127.0.0.1:0",
        "--access-logfile",
        "/nonexistent-dir/access.log",
        "builtin:hello",
    ]);
    assert_ne!(exited.code(), 0);
    assert!(
        exited
            .log
            .contains("cannot open the access log /nonexistent-dir/access.log"),
        "{}",
        exited.log
    );
}
