//! End-to-end tests of Python WSGI apps (issue 13): real Flask and Django
//! from the pinned environment (`tests/python/requirements.txt`, made on
//! first use by `runicorn_tests::python`), served from `examples/python`
//! under every worker class, and compared with the real Gunicorn serving
//! the same files. Every server binds `127.0.0.1:0` and is killed with its
//! whole process group when the test ends, also on failure.

use std::collections::BTreeMap;
use std::time::Duration;

use runicorn_tests::python::{self, apps_dir, gunicorn, hex, sha256_hex};
use runicorn_tests::scenario::{self, answered_then_closed};
use runicorn_tests::{
    deadline, get, proc, raw, raw_response, wait_until, Class, ClientLoop, Conn, Exited, Response,
    Server,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `runicorn -k CLASS -w 1 EXTRA... APP` on the example apps.
fn serve(class: Class, extra: &[&str], app: &str) -> Server {
    let mut args = vec!["-w", "1"];
    args.extend_from_slice(extra);
    python::start(class, &args, app)
}

/// The Flask example under `class`, one worker.
fn flask(class: Class) -> Server {
    serve(class, &[], "flaskapp:app")
}

/// A boot that must fail: the master exits by itself within 30 s.
fn expect_exit(class: Class, app: &str) -> Exited {
    python::launch(class, &["-w", "1"], app).expect_exit(30.0)
}

/// `method path` with `headers` and `body` on a fresh connection.
fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    conn.request(method, path, headers, body)
        .unwrap_or_else(|err| panic!("{method} {path}: {err}\n{}", server.log()))
}

#[test]
fn flask_routes_json_and_form_posts_under_every_class() {
    for class in Class::ALL {
        let server = flask(class);
        let name = class.name();

        let index = get(server.addr(), "/").expect("GET /");
        assert_eq!(index.status, 200, "{name}: {index:?}");
        assert_eq!(index.text(), "Hello from Flask!\n", "{name}");
        assert_eq!(
            index.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{name}"
        );

        let missing = get(server.addr(), "/no/such/route").expect("GET a missing route");
        assert_eq!(missing.status, 404, "{name}: {missing:?}");

        let json = get(server.addr(), "/json").expect("GET /json");
        assert_eq!(json.status, 200, "{name}");
        assert_eq!(json.header("content-type"), Some("application/json"));
        assert_eq!(
            json.json(),
            serde_json::json!({"ok": true, "items": [1, 2, 3], "text": "h\u{e9}llo"}),
            "{name}"
        );

        let document = r#"{"a": [1, 2], "b": {"c": "d\u00e9"}}"#;
        let posted = request(
            &server,
            "POST",
            "/json",
            &[("Content-Type", "application/json")],
            document.as_bytes(),
        );
        assert_eq!(posted.status, 200, "{name}: {posted:?}");
        assert_eq!(
            posted.json(),
            serde_json::json!({"received": {"a": [1, 2], "b": {"c": "d\u{e9}"}}, "method": "POST"}),
            "{name}"
        );

        let form = request(
            &server,
            "POST",
            "/form",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"name=Ada+Lovelace&tag=a&tag=b%26c&empty=",
        );
        assert_eq!(form.status, 200, "{name}: {form:?}");
        assert_eq!(
            form.json(),
            serde_json::json!({"name": ["Ada Lovelace"], "tag": ["a", "b&c"], "empty": [""]}),
            "{name}"
        );

        // Flask refuses a method the route does not take.
        let refused = request(&server, "DELETE", "/json", &[], b"");
        assert_eq!(refused.status, 405, "{name}: {refused:?}");
    }
}

/// The size of the multipart upload's file part.
const UPLOAD_BYTES: usize = 100 << 20;
const BOUNDARY: &str = "runicorn-upload-boundary-7f3a9c";

/// One MiB of xorshift bytes; block `n` of the upload is this block with
/// `n` in its first eight bytes, so no two blocks are alike.
fn noise_block() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = Vec::with_capacity(1 << 20);
    while block.len() < 1 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        block.extend_from_slice(&state.to_le_bytes());
    }
    block
}

/// POSTs a multipart form of a `note` field and a `file` part of
/// `file_bytes` bytes, generated while it is sent (the client never holds
/// more than one MiB of it); returns the answer and the part's sha256.
fn upload(server: &Server, file_bytes: usize) -> (Response, String) {
    let prefix = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nstreamed\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let suffix = format!("\r\n--{BOUNDARY}--\r\n");
    let length = prefix.len() + file_bytes + suffix.len();
    let mut conn = Conn::connect(server.addr()).expect("connect");
    conn.set_timeout(Duration::from_secs(60))
        .expect("set the client timeout");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: upload.test\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n{prefix}"
    );
    conn.send(head.as_bytes()).expect("send the head");
    let mut block = noise_block();
    let mut digest = Sha256::new();
    let mut sent = 0;
    let mut index: u64 = 0;
    while sent < file_bytes {
        block[..8].copy_from_slice(&index.to_le_bytes());
        let take = block.len().min(file_bytes - sent);
        digest.update(&block[..take]);
        conn.send(&block[..take])
            .unwrap_or_else(|err| panic!("upload cut after {sent} bytes: {err}\n{}", server.log()));
        sent += take;
        index += 1;
    }
    conn.send(suffix.as_bytes())
        .expect("send the closing boundary");
    let response = conn
        .read_final_response(false)
        .unwrap_or_else(|err| panic!("no answer to the upload: {err}\n{}", server.log()));
    (response, hex(&digest.finalize()))
}

#[test]
fn a_100_mb_multipart_upload_is_streamed_in_bounded_memory_under_every_class() {
    // Bound: the worker's peak RSS may grow by at most 16 MiB over the
    // upload of a 100 MiB file. Werkzeug spools a large part to a temporary
    // file and the view copies it a MiB at a time; runicorn hands the body
    // over in buffer-sized reads. A server or app that held the body (or
    // half of it) would grow by 50-100+ MiB, far past the bound; what the
    // bound allows is the copies' buffers and the allocator's slack. The
    // peak itself must stay below 150 MiB (a Flask worker starts at about
    // 40-60 MiB).
    const GROWTH_KIB: u64 = 16 << 10;
    const PEAK_KIB: u64 = 150 << 10;
    for class in Class::ALL {
        let name = class.name();
        let server = flask(class);
        let worker = server.wait_workers(1, 10.0)[0];
        // Warm up: the first upload imports what parsing needs.
        let (small, small_sha) = upload(&server, 3 << 20);
        assert_eq!(small.status, 200, "{name}: {small:?}\n{}", server.log());
        assert_eq!(small.json()["sha256"], small_sha, "{name}");
        let before = proc::status_kib(worker, "VmHWM").expect("worker status");

        let (response, sha) = upload(&server, UPLOAD_BYTES);
        assert_eq!(
            response.status,
            200,
            "{name}: {response:?}\n{}",
            server.log()
        );
        let answer = response.json();
        assert_eq!(answer["sha256"], sha, "{name}: {answer}");
        assert_eq!(answer["size"], UPLOAD_BYTES, "{name}: {answer}");
        assert_eq!(answer["on_disk"], UPLOAD_BYTES, "{name}: {answer}");
        assert_eq!(answer["filename"], "big.bin", "{name}");
        assert_eq!(answer["fields"]["note"], "streamed", "{name}");

        assert_eq!(server.worker_pids(), vec![worker], "{name}: same worker");
        let peak = proc::status_kib(worker, "VmHWM").expect("worker status");
        eprintln!("{name}: worker peak RSS {before} KiB before, {peak} KiB after the upload");
        assert!(
            peak.saturating_sub(before) < GROWTH_KIB,
            "{name}: the worker's peak RSS grew from {before} KiB to {peak} KiB over a 100 MiB upload"
        );
        assert!(
            peak < PEAK_KIB,
            "{name}: worker peak RSS {peak} KiB over a 100 MiB upload"
        );
    }
}

#[test]
fn a_generator_response_is_chunked_on_http_1_1_and_closes_on_http_1_0() {
    let expected: String = (0..50).map(|n| format!("line {n}\n")).collect();
    for class in Class::ALL {
        let name = class.name();
        let server = flask(class);
        let streamed = get(server.addr(), "/stream?n=50").expect("GET /stream");
        assert_eq!(streamed.status, 200, "{name}: {streamed:?}");
        assert!(
            streamed.chunked,
            "{name}: not chunked: {:?}",
            streamed.headers
        );
        assert_eq!(streamed.header("content-length"), None, "{name}");
        assert_eq!(streamed.text(), expected, "{name}");

        // HTTP/1.0 has no chunked coding: the body ends when the server
        // closes the connection.
        let bytes = raw(
            server.addr(),
            b"GET /stream?n=50 HTTP/1.0\r\nHost: x\r\n\r\n",
        )
        .expect("HTTP/1.0 GET /stream");
        let text = String::from_utf8_lossy(&bytes);
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1."), "{name}: {head}");
        assert!(head.contains(" 200 "), "{name}: {head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{name}: {head}"
        );
        assert_eq!(body, expected, "{name}");
    }
}

#[test]
fn send_file_sends_the_whole_file_with_its_length() {
    let sample = std::fs::read(apps_dir().join("static/sample.txt")).expect("the sample file");
    for class in Class::ALL {
        let name = class.name();
        let server = flask(class);
        let mut kept: Option<Conn> = None;
        for round in 0..2 {
            let conn = match kept.as_mut() {
                Some(conn) => conn,
                None => kept.insert(Conn::connect(server.addr()).expect("connect")),
            };
            let response = conn
                .get("/file")
                .unwrap_or_else(|err| panic!("{name} GET /file #{round}: {err}"));
            assert_eq!(response.status, 200, "{name}: {:?}", response.headers);
            assert_eq!(
                response.header("content-length"),
                Some(sample.len().to_string().as_str()),
                "{name}"
            );
            assert!(!response.chunked, "{name}");
            assert!(response.body == sample, "{name}: the file's bytes differ");
            if response.closes() {
                kept = None;
            }
        }
        drop(kept);
        // HEAD sends the length and no body; the connection stays usable.
        let head = request(&server, "HEAD", "/file", &[], b"");
        assert_eq!(head.status, 200, "{name}");
        assert_eq!(
            head.header("content-length"),
            Some(sample.len().to_string().as_str()),
            "{name}"
        );
    }
}

#[test]
fn an_exception_is_a_500_with_the_traceback_logged_and_the_worker_serves_on() {
    for class in Class::ALL {
        let name = class.name();
        let server = flask(class);
        let worker = server.wait_workers(1, 10.0);
        let response = get(server.addr(), "/boom").expect("GET /boom");
        assert_eq!(response.status, 500, "{name}: {response:?}");
        server.expect_log("ZeroDivisionError: division by zero", 10.0);
        let line = server.expect_log("in boom", 5.0);
        assert!(line.contains("flaskapp.py"), "{name}: {line}");
        let after = get(server.addr(), "/").expect("GET / after the exception");
        assert_eq!(after.status, 200, "{name}");
        assert_eq!(
            server.worker_pids(),
            worker,
            "{name}: the worker was replaced"
        );
    }
}

#[test]
fn an_import_error_exits_4_with_the_traceback() {
    for class in Class::ALL {
        let name = class.name();
        let exited = expect_exit(class, "broken:app");
        assert_eq!(exited.code(), 4, "{name}:\n{}", exited.log);
        for expected in [
            "Traceback (most recent call last):",
            "broken.py\", line",
            "RuntimeError: broken on purpose: the import of broken fails",
            "App failed to load",
        ] {
            assert!(
                exited.log.contains(expected),
                "{name}: no {expected:?} in:\n{}",
                exited.log
            );
        }
    }
}

#[test]
fn an_unknown_module_exits_4_naming_every_place_looked() {
    let dir = apps_dir();
    for class in Class::ALL {
        let name = class.name();
        let exited = expect_exit(class, "nosuchmodule:app");
        assert_eq!(exited.code(), 4, "{name}:\n{}", exited.log);
        let line = exited
            .log
            .lines()
            .find(|line| line.contains("No module named 'nosuchmodule'"))
            .unwrap_or_else(|| panic!("{name}: no `No module named` line:\n{}", exited.log));
        // The Python search path (the app directory first) and the native
        // library files tried.
        assert!(
            line.contains(&format!("\"{}\"", dir.display())),
            "{name}: {line}"
        );
        assert!(line.contains("site-packages"), "{name}: {line}");
        assert!(
            line.contains(&format!("{}/libnosuchmodule.so", dir.display())),
            "{name}: {line}"
        );
        assert!(exited.log.contains("App failed to load"), "{name}");
    }
}

#[test]
fn a_missing_attribute_exits_4_in_gunicorn_s_words() {
    for class in Class::ALL {
        let name = class.name();
        let exited = expect_exit(class, "flaskapp:nope");
        assert_eq!(exited.code(), 4, "{name}:\n{}", exited.log);
        assert!(
            exited
                .log
                .contains("Failed to find attribute 'nope' in 'flaskapp'."),
            "{name}:\n{}",
            exited.log
        );
    }
}

#[test]
fn a_factory_is_called_with_python_literal_arguments() {
    for class in Class::ALL {
        let name = class.name();
        let server = serve(class, &[], "flaskapp:create_app('x', debug=True)");
        let response = get(server.addr(), "/config").expect("GET /config");
        assert_eq!(response.status, 200, "{name}: {response:?}");
        assert_eq!(
            response.json(),
            serde_json::json!({"name": "x", "debug": true}),
            "{name}"
        );
        // The module-level app is the default one.
        drop(server);
        let default = serve(class, &[], "flaskapp:app");
        let response = get(default.addr(), "/config").expect("GET /config");
        assert_eq!(
            response.json(),
            serde_json::json!({"name": "flaskapp", "debug": false}),
            "{name}"
        );
    }
}

#[test]
fn a_django_project_is_served_by_its_wsgi_module() {
    for class in Class::ALL {
        let name = class.name();
        let server = serve(class, &[], "mysite.wsgi:application");
        let response = get(server.addr(), "/hello/?a=1").expect("GET /hello/");
        assert_eq!(
            response.status,
            200,
            "{name}: {response:?}\n{}",
            server.log()
        );
        assert_eq!(
            response.json(),
            serde_json::json!({
                "greeting": "Hello from Django",
                "settings": "mysite.settings",
                "path": "/hello/",
                "method": "GET",
                "query": {"a": "1"},
            }),
            "{name}"
        );
        // CommonMiddleware's APPEND_SLASH, and a plain 404 with DEBUG off.
        let redirect = get(server.addr(), "/hello").expect("GET /hello");
        assert_eq!(redirect.status, 301, "{name}: {redirect:?}");
        assert_eq!(redirect.header("location"), Some("/hello/"), "{name}");
        let missing = get(server.addr(), "/nowhere/").expect("GET /nowhere/");
        assert_eq!(missing.status, 404, "{name}");
        assert!(
            !missing.text().contains("Traceback"),
            "{name}: DEBUG is off"
        );

        // --env picks another settings module.
        drop(server);
        let other = serve(
            class,
            &["--env", "DJANGO_SETTINGS_MODULE=mysite.settings_greeting"],
            "mysite.wsgi:application",
        );
        let response = get(other.addr(), "/").expect("GET /");
        assert_eq!(
            response.status,
            200,
            "{name}: {response:?}\n{}",
            other.log()
        );
        let json = response.json();
        assert_eq!(json["greeting"], "Bonjour from Django", "{name}");
        assert_eq!(json["settings"], "mysite.settings_greeting", "{name}");
    }
}

#[test]
fn http_1_0_and_keep_alive_with_a_python_app() {
    for class in Class::ALL {
        let name = class.name();
        let server = serve(class, &[], "hello:app");
        if class == Class::Sync {
            // The sync worker closes every connection, as Gunicorn's.
            let mut conn = Conn::connect(server.addr()).expect("connect");
            let response = conn.get("/").expect("GET /");
            assert_eq!(response.text(), "Hello, World!", "{name}");
            assert!(response.closes(), "{name}: {:?}", response.headers);
            assert!(conn.at_eof().expect("read after the answer"), "{name}");
        } else {
            scenario::keep_alive(&server, 20);
        }
        // HTTP/1.0 without keep-alive: answered, then closed.
        let response = answered_then_closed(&server, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(response.text(), "Hello, World!", "{name}");

        // HTTP/1.0 asking for keep-alive, with a body of known length: kept
        // by every class but sync.
        let ask_kept = b"GET /again HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
        let mut conn = Conn::connect(server.addr()).expect("connect");
        conn.send(ask_kept).expect("send");
        let first = conn.read_final_response(false).expect("the first answer");
        assert_eq!(first.text(), "Hello, World!", "{name}");
        if class == Class::Sync {
            assert!(first.closes(), "{name}: {:?}", first.headers);
        } else {
            assert_eq!(first.header("connection"), Some("keep-alive"), "{name}");
            conn.send(ask_kept).expect("send again");
            let second = conn.read_final_response(false).expect("the second answer");
            assert_eq!(second.text(), "Hello, World!", "{name}");
        }
    }
}

#[test]
fn pipelined_requests_to_a_python_app_are_answered_in_order() {
    for class in Class::ALL {
        let name = class.name();
        let server = serve(class, &[], "hello:echo");
        if class == Class::Sync {
            // One request per connection: the first is answered and the
            // connection closed; the pipelined second is never answered.
            let response = answered_then_closed(
                &server,
                b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none\
                  GET /second HTTP/1.1\r\nHost: x\r\n\r\n",
            );
            let json = response.json();
            assert_eq!(json["path"], "/first", "{name}: {json}");
            assert_eq!(json["body_b64"], "b25l", "{name}: {json}");
        } else {
            scenario::pipelined_in_order(&server, 10);
        }
    }
}

#[test]
fn term_lets_a_python_request_in_flight_finish() {
    for class in Class::ALL {
        let name = class.name();
        let mut server = serve(class, &["--log-level", "debug"], "flaskapp:app");
        let answers = scenario::term_answers_in_flight(&mut server, &["/sleep?ms=1500"]);
        assert_eq!(answers[0].text(), "slept 1500 ms\n", "{name}");
        assert!(
            wait_until(deadline(5.0), || server.group().is_empty()),
            "{name}: left behind: {:?}",
            server.group()
        );
    }
}

/// A WSGI app blocks its thread: under green and async its requests run on
/// the bounded blocking pool, and each worker says so once at boot, in the
/// same words, with the bound it applies (async shares --blocking-threads
/// out between its --threads runtimes, rounding up: 2 x 2 for 3). An app
/// with an async entry (builtin:sleep) does not go through the pool.
#[test]
fn green_and_async_say_a_wsgi_app_runs_on_the_blocking_pool() {
    for (class, extra, bound) in [
        (Class::Green, &["--blocking-threads", "3"][..], 3),
        (
            Class::Async,
            &["--blocking-threads", "3", "--threads", "2"][..],
            4,
        ),
    ] {
        let name = class.name();
        let server = serve(class, extra, "flaskapp:app");
        server.expect_log("] Ready: ", 60.0);
        let said = format!(
            "[INFO] The app blocks its thread (a Python WSGI app, or a library that sets \
             RC_CAP_BLOCKS_THREAD): its requests run on the blocking pool, at most {bound} at once \
             in this worker (--blocking-threads 3)"
        );
        assert_eq!(server.log_count(&said), 1, "{name}: {}", server.log());
        let slept = get(server.addr(), "/sleep?ms=1").expect("GET /sleep");
        assert_eq!(slept.text(), "slept 1 ms\n", "{name}");
    }
    for class in [Class::Green, Class::Async] {
        let server = class.start(&["-w", "1", "--blocking-threads", "3"], "builtin:sleep");
        server.expect_log("] Ready: ", 30.0);
        assert_eq!(
            server.log_count("blocking pool"),
            0,
            "{}: {}",
            class.name(),
            server.log()
        );
    }
}

#[test]
fn max_requests_recycles_python_workers_without_a_failed_request() {
    for class in Class::ALL {
        let name = class.name();
        let server = python::start(
            class,
            &[
                "-w",
                "2",
                "--max-requests",
                "15",
                "--max-requests-jitter",
                "5",
            ],
            "hello:app",
        );
        let first = server.wait_workers(2, 20.0);
        // Fresh connections: a kept-alive idle connection that a recycling
        // green or async worker closes races the client's next request
        // (the same with builtin:hello; gthread is immune).
        let clients = ClientLoop::start(server.addr(), "/", 3);
        let recycled = wait_until(deadline(60.0), || {
            let now = server.worker_pids();
            server.log_count("Autorestarting worker after current request.") >= 3
                && now.len() == 2
                && now.iter().all(|pid| !first.contains(pid))
        });
        let report = clients.stop();
        assert!(
            recycled,
            "{name}: workers {first:?} not recycled, now {:?}; {report:?}\n{}",
            server.worker_pids(),
            server.log()
        );
        assert_eq!(report.failed, 0, "{name}: {report:?}\n{}", server.log());
        assert!(report.ok >= 45, "{name}: {report:?}");
    }
}

// ---------------------------------------------------------------------------
// Environ parity with Gunicorn.

/// Keys that name the server or its connection, not the request.
fn server_own(key: &str) -> bool {
    matches!(key, "SERVER_SOFTWARE" | "REMOTE_PORT" | "SERVER_PORT")
        || key.starts_with("gunicorn.")
        || key.starts_with("runicorn.")
}

/// What one server answered to one request: the status and, for a 200,
/// the environ dump.
#[derive(Debug)]
struct Seen {
    status: u16,
    environ: Option<BTreeMap<String, Value>>,
    body: String,
}

fn ask(server: &Server, bytes: &[u8]) -> Seen {
    match raw_response(server.addr(), bytes) {
        Ok(response) => {
            let environ = (response.status == 200).then(|| {
                serde_json::from_slice::<BTreeMap<String, Value>>(&response.body)
                    .unwrap_or_else(|err| panic!("not JSON ({err}): {}", response.text()))
            });
            Seen {
                status: response.status,
                environ,
                body: response.text(),
            }
        }
        Err(err) => Seen {
            status: 0,
            environ: None,
            body: format!("no response: {err}"),
        },
    }
}

/// One request both servers get.
#[derive(Debug)]
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// A known design difference: the statuses Gunicorn and runicorn give
    /// (runicorn's parser refuses what Gunicorn accepts, or the reverse).
    statuses: Option<(u16, u16)>,
}

/// The parity requests, built in order.
#[derive(Debug, Default)]
struct Cases(Vec<Case>);

impl Cases {
    /// A request both servers must answer alike.
    fn add(&mut self, name: &'static str, bytes: &[u8]) {
        self.0.push(Case {
            name,
            bytes: bytes.to_vec(),
            statuses: None,
        });
    }

    /// A request the servers answer differently by design: Gunicorn with
    /// `gunicorn`, runicorn with `runicorn`.
    fn differs(&mut self, name: &'static str, bytes: &[u8], gunicorn: u16, runicorn: u16) {
        self.0.push(Case {
            name,
            bytes: bytes.to_vec(),
            statuses: Some((gunicorn, runicorn)),
        });
    }
}

/// The requests both servers get.
fn parity_requests() -> Vec<Case> {
    let mut cases = Cases::default();
    cases.add("root", b"GET / HTTP/1.1\r\nHost: parity.test\r\n\r\n");
    cases.add(
        "query",
        b"GET /a/b/c?x=1&y=two&x=3 HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "utf-8 escapes",
        b"GET /caf%C3%A9/%E2%82%AC?q=%C3%A9 HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "encoded slashes",
        b"GET /a%2Fb%2fc/d HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "invalid escapes",
        b"GET /bad%zz/%4/%g1/end% HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "space and plus",
        b"GET /sp%20ace+plus?q=a+b%20c HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "encoded nul and percent",
        b"GET /nul%00/pct%25 HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "empty query",
        b"GET /? HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "odd query",
        b"GET /q?=&&x&y==z;w HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    // A fragment is no part of a request-target (RFC 9112 3.2): runicorn's
    // parser refuses it, Gunicorn drops it.
    cases.differs(
        "fragment after query",
        b"GET /path?q=1#frag HTTP/1.1\r\nHost: parity.test\r\n\r\n",
        200,
        400,
    );
    cases.differs(
        "fragment before query",
        b"GET /path#frag?notquery HTTP/1.1\r\nHost: parity.test\r\n\r\n",
        200,
        400,
    );
    cases.add(
        "double slashes",
        b"GET //double//slashes/ HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "dot segments",
        b"GET /./dot/../seg/. HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "path parameters",
        b"GET /a;b=c/d;e HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "absolute-form",
        b"GET http://example.com/abs/path?x=1 HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "absolute-form with port",
        b"GET http://example.com:8080/abs HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    );
    cases.add(
        "asterisk-form",
        b"OPTIONS * HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add("HTTP/1.0 without Host", b"GET /old HTTP/1.0\r\n\r\n");
    cases.add(
        "HTTP/1.0 keep-alive",
        b"GET /old?k=1 HTTP/1.0\r\nHost: parity.test\r\nConnection: keep-alive\r\n\r\n",
    );
    cases.add(
        "repeated headers",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nX-Multi: a\r\nAccept: text/html\r\nX-Multi: b, c\r\nAccept: */*\r\nX-Multi: d\r\n\r\n",
    );
    cases.add(
        "repeated cookies",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
    );
    cases.add(
        "underscore header names",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nX_Custom: under\r\nX-Custom: dash\r\nTransfer_Encoding: chunked\r\n\r\n",
    );
    cases.add(
        "header case and spacing",
        b"GET / HTTP/1.1\r\nhost: parity.test\r\nx-lower-case: v\r\nX-Spaced:   padded value  \r\nX-Empty:\r\nX-Tab:\tt\t\r\n\r\n",
    );
    cases.add(
        "latin-1 header value",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nX-Latin: caf\xe9\r\n\r\n",
    );
    cases.add(
        "SCRIPT_NAME header",
        b"GET /mount/inner/page HTTP/1.1\r\nHost: parity.test\r\nSCRIPT_NAME: /mount\r\n\r\n",
    );
    cases.add(
        "SCRIPT_NAME header not a prefix",
        b"GET /elsewhere HTTP/1.1\r\nHost: parity.test\r\nSCRIPT_NAME: /mount\r\n\r\n",
    );
    cases.add(
        "X-Forwarded-Proto https",
        b"GET /secure HTTP/1.1\r\nHost: parity.test\r\nX-Forwarded-Proto: https\r\n\r\n",
    );
    cases.add(
        "X-Forwarded-For",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
    );
    cases.add(
        "Content-Length body",
        b"POST /submit HTTP/1.1\r\nHost: parity.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 11\r\n\r\n\x00\x01binary\xff\xfe\r",
    );
    cases.add(
        "chunked body",
        b"POST /chunked HTTP/1.1\r\nHost: parity.test\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n",
    );
    cases.add(
        "chunked body with trailers",
        b"PUT /trailers HTTP/1.1\r\nHost: parity.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    cases.add(
        "empty chunked body",
        b"POST /empty HTTP/1.1\r\nHost: parity.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    cases.add(
        "Content-Length 0",
        b"POST /zero HTTP/1.1\r\nHost: parity.test\r\nContent-Length: 0\r\n\r\n",
    );
    cases.add(
        "POST without a body",
        b"POST /nobody HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "JSON PUT",
        b"PUT /doc HTTP/1.1\r\nHost: parity.test\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 9\r\n\r\n{\"a\": 1}\n",
    );
    cases.add(
        "Expect 100-continue",
        b"POST /expect HTTP/1.1\r\nHost: parity.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    );
    cases.add(
        "other methods",
        b"PATCH /thing HTTP/1.1\r\nHost: parity.test\r\nContent-Length: 2\r\n\r\nok",
    );
    cases.add(
        "extension method",
        b"PURGE /cache HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "many headers",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nUser-Agent: parity/1.0\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: fr-CH, fr;q=0.9\r\nCache-Control: no-cache\r\nAuthorization: Basic dTpw\r\nReferer: http://example.com/\r\nIf-None-Match: \"abc\"\r\nX-Request-Id: 42\r\n\r\n",
    );
    cases.add(
        "Host with port",
        b"GET / HTTP/1.1\r\nHost: parity.test:1234\r\n\r\n",
    );
    cases.add(
        "raw non-ASCII target",
        b"GET /raw\xc3\xa9?q=\xe9 HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    // Methods are case-sensitive tokens (RFC 9110 9.1): runicorn passes
    // `get` to the app as another method; Gunicorn refuses methods that are
    // not upper case unless permit_unconventional_http_method is set.
    cases.differs(
        "lowercase method",
        b"get / HTTP/1.1\r\nHost: parity.test\r\n\r\n",
        400,
        200,
    );
    cases.add(
        "two Host fields",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
    );
    cases.add(
        "X-Forwarded-Ssl on",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nX-Forwarded-Ssl: on\r\n\r\n",
    );
    cases.add(
        "contradictory scheme headers",
        b"GET / HTTP/1.1\r\nHost: parity.test\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n",
    );
    cases.add(
        "Content-Length with leading zeros",
        b"POST /lz HTTP/1.1\r\nHost: parity.test\r\nContent-Length: 003\r\n\r\nabc",
    );
    cases.add(
        "long query",
        format!(
            "GET /long?{} HTTP/1.1\r\nHost: parity.test\r\n\r\n",
            "k=v&".repeat(1000)
        )
        .as_bytes(),
    );
    cases.add(
        "Connection close",
        b"GET /bye HTTP/1.1\r\nHost: parity.test\r\nConnection: close\r\n\r\n",
    );
    cases.0
}

/// The differences between Gunicorn's and runicorn's answers to one
/// request, as lines; none when they agree.
fn compare(class: Class, case: &Case, reference: &Seen, ours: &Seen) -> Vec<String> {
    let request = case.name;
    let mut differences = Vec::new();
    if let Some((gunicorn, runicorn)) = case.statuses {
        if (reference.status, ours.status) != (gunicorn, runicorn) {
            differences.push(format!(
                "{} {request:?}: expected the known difference gunicorn {gunicorn} runicorn {runicorn}, \
                 got gunicorn {} runicorn {}",
                class.name(),
                reference.status,
                ours.status
            ));
        }
        return differences;
    }
    if reference.status != ours.status {
        differences.push(format!(
            "{} {request:?}: status gunicorn {} runicorn {} ({})",
            class.name(),
            reference.status,
            ours.status,
            ours.body.lines().next().unwrap_or_default()
        ));
        return differences;
    }
    let (Some(theirs), Some(mine)) = (&reference.environ, &ours.environ) else {
        return differences;
    };
    let keys: std::collections::BTreeSet<&String> = theirs.keys().chain(mine.keys()).collect();
    for key in keys {
        if server_own(key) {
            continue;
        }
        let (a, b) = (theirs.get(key), mine.get(key));
        if key == "wsgi.multithread" {
            // Gunicorn's sync worker runs one request at a time; runicorn's
            // other classes call the app from several threads.
            let expected = Value::Bool(class != Class::Sync);
            if b != Some(&expected) {
                differences.push(format!(
                    "{} {request:?}: wsgi.multithread {b:?}",
                    class.name()
                ));
            }
            continue;
        }
        if a != b {
            differences.push(format!(
                "{} {request:?}: {key}: gunicorn {} runicorn {}",
                class.name(),
                a.map_or("(absent)".to_owned(), Value::to_string),
                b.map_or("(absent)".to_owned(), Value::to_string)
            ));
        }
    }
    differences
}

/// Sends `requests` to Gunicorn and to runicorn under every class, both
/// serving `environ_dump:app` with `envs` set, and returns every difference.
fn parity(envs: &[(&str, &str)], requests: &[Case]) -> Vec<String> {
    let mut reference = python::gunicorn_launch(&["-w", "1"], "environ_dump:app");
    for (key, value) in envs {
        reference = reference.env(key, value);
    }
    let reference = reference.start();
    let answers: Vec<Seen> = requests
        .iter()
        .map(|case| ask(&reference, &case.bytes))
        .collect();
    let mut differences = Vec::new();
    for class in Class::ALL {
        let mut launch = python::launch(class, &["-w", "1"], "environ_dump:app");
        for (key, value) in envs {
            launch = launch.env(key, value);
        }
        let server = launch.start();
        for (case, theirs) in requests.iter().zip(&answers) {
            let ours = ask(&server, &case.bytes);
            differences.extend(compare(class, case, theirs, &ours));
        }
    }
    differences
}

#[test]
fn the_environ_matches_gunicorn_s_for_the_same_requests() {
    let requests = parity_requests();
    assert!(requests.len() >= 40, "{} requests", requests.len());
    let differences = parity(&[], &requests);
    assert!(
        differences.is_empty(),
        "{} differences from Gunicorn:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn the_environ_matches_gunicorn_s_with_script_name_in_the_environment() {
    let mut cases = Cases::default();
    cases.add(
        "under the mount",
        b"GET /mount/x%20y?z=1 HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "the mount itself",
        b"GET /mount HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "outside the mount",
        b"GET /other HTTP/1.1\r\nHost: parity.test\r\n\r\n",
    );
    cases.add(
        "the header overrides",
        b"GET /api/v1 HTTP/1.1\r\nHost: parity.test\r\nSCRIPT_NAME: /api\r\n\r\n",
    );
    let differences = parity(&[("SCRIPT_NAME", "/mount")], &cases.0);
    assert!(
        differences.is_empty(),
        "{} differences from Gunicorn:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn the_parity_requests_reach_the_app_under_gunicorn() {
    // The comparison above is only as good as its reference: Gunicorn must
    // answer the ordinary requests with the app's environ.
    let reference = gunicorn(&["-w", "1"], "environ_dump:app");
    let seen = ask(
        &reference,
        b"POST /p%20q?x=1 HTTP/1.1\r\nHost: parity.test\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(seen.status, 200, "{}", seen.body);
    let environ = seen.environ.expect("an environ");
    assert_eq!(environ["PATH_INFO"], "/p q");
    assert_eq!(environ["QUERY_STRING"], "x=1");
    assert_eq!(environ["wsgi.input:length"], 3);
    assert_eq!(environ["wsgi.input:sha256"], sha256_hex(b"abc"));
    assert!(
        environ["SERVER_SOFTWARE"]
            .as_str()
            .is_some_and(|software| software.starts_with("gunicorn/")),
        "{environ:?}"
    );
}

/// The interim and final responses to `GET /` on a fresh connection, for
/// `version` (`HTTP/1.1` or `HTTP/1.0`).
fn hinted(server: &Server, version: &str) -> Vec<Response> {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    conn.send(format!("GET / {version}\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("send");
    let mut responses = Vec::new();
    loop {
        let response = conn
            .read_response(false)
            .unwrap_or_else(|err| panic!("{version}: {err}\n{}", server.log()));
        let last = response.status >= 200;
        responses.push(response);
        if last {
            return responses;
        }
    }
}

/// `(status, Link fields)` of each response, and the final body.
fn hint_summary(responses: &[Response]) -> (Vec<(u16, Vec<String>)>, String) {
    let statuses = responses
        .iter()
        .map(|response| {
            let links = response
                .headers_named("link")
                .into_iter()
                .map(str::to_owned)
                .collect();
            (response.status, links)
        })
        .collect();
    (statuses, responses.last().expect("a final response").text())
}

#[test]
fn early_hints_send_103_before_the_answer_as_gunicorn_does() {
    let reference = gunicorn(&["-w", "1"], "hello:hints");
    let expected = hint_summary(&hinted(&reference, "HTTP/1.1"));
    assert_eq!(
        expected,
        (
            vec![
                (103, vec!["</style.css>; rel=preload; as=style".to_owned()]),
                (103, vec!["</app.js>; rel=preload; as=script".to_owned()]),
                (200, vec![]),
            ],
            "hinted".to_owned()
        ),
        "Gunicorn's answer"
    );
    let expected_10 = hint_summary(&hinted(&reference, "HTTP/1.0"));
    assert_eq!(expected_10, (vec![(200, vec![])], "hinted".to_owned()));
    for class in Class::ALL {
        let name = class.name();
        let server = serve(class, &[], "hello:hints");
        assert_eq!(
            hint_summary(&hinted(&server, "HTTP/1.1")),
            expected,
            "{name}"
        );
        assert_eq!(
            hint_summary(&hinted(&server, "HTTP/1.0")),
            expected_10,
            "{name}"
        );
    }
}
