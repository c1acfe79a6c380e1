//! The PROXY protocol (`--proxy-protocol`, `--proxy-allow-from`) end to
//! end, under every class: real v1 and v2 headers over loopback, the
//! client they name seen by the app (`builtin:echo`'s `peer`) and the
//! access log (`%(h)s`); malformed headers, a peer not allowed, and a
//! stalled half header all closed without the app being called (counted
//! by the access log, which has a line for every request the app or the
//! server answered); a header split over writes; `off` answering a PROXY
//! line 400 as the HTTP request it then is; and a Python app's
//! `REMOTE_ADDR`/`REMOTE_PORT` and `PROXY_PROTOCOL`/`PROXY_ADDR`/
//! `PROXY_PORT` compared with the real Gunicorn's; a
//! stalled header not holding up other clients; a unix-socket listener;
//! `--forwarded-allow-ips` judging the client the header names.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runicorn_tests::{deadline, wait_until, Class, Conn, Server};

runicorn_tests::class_matrix![
    valid_headers_name_the_client,
    malformed_headers_close_without_calling_the_app,
    a_header_split_over_writes_is_read,
    a_peer_not_allowed_gets_403,
    off_answers_a_proxy_line_400,
    a_stalled_half_header_is_closed_at_the_deadline,
    a_stalled_header_does_not_hold_up_other_clients,
    a_unix_socket_listener_reads_the_header,
    forwarded_fields_are_judged_by_the_client_the_header_names,
];

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
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits (up to 10 s) for `count` lines, and returns them.
fn wait_lines(server: &Server, path: &Path, count: usize) -> Vec<String> {
    if !wait_until(deadline(10.0), || lines(path).len() >= count) {
        panic!(
            "{} of {count} access lines: {:?}\n{}",
            lines(path).len(),
            lines(path),
            server.log()
        );
    }
    lines(path)
}

/// `runicorn -k CLASS` with builtin:echo, an access log of `%(h)s %(r)s`,
/// and `more`.
fn start(class: Class, log: &LogDir, more: &[&str]) -> Server {
    let path = log.path().to_str().unwrap().to_owned();
    let mut args = vec![
        "--access-logfile",
        &path,
        "--access-logformat",
        "%(h)s %(r)s %(s)s",
    ];
    args.extend_from_slice(more);
    class.start(&args, "builtin:echo")
}

const GET: &[u8] = b"GET /proxied HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// A v2 header: `command` (0x20 LOCAL, 0x21 PROXY), `family` (0x11 TCP4,
/// 0x21 TCP6), the address block and TLVs.
fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(command);
    out.push(family);
    out.extend_from_slice(
        &u16::try_from(addresses.len() + tlvs.len())
            .unwrap()
            .to_be_bytes(),
    );
    out.extend_from_slice(addresses);
    out.extend_from_slice(tlvs);
    out
}

/// 192.0.2.10:4321 -> 192.0.2.20:80.
const V4_BLOCK: &[u8] = &[192, 0, 2, 10, 192, 0, 2, 20, 0x10, 0xe1, 0, 80];

/// 2001:db8::7 port 6543 -> 2001:db8::8 port 443.
fn v6_block() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    out.extend_from_slice(
        &"2001:db8::8"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    out.extend_from_slice(&6543u16.to_be_bytes());
    out.extend_from_slice(&443u16.to_be_bytes());
    out
}

/// Sends `header` then a GET on a fresh connection; the response's bytes
/// (empty when the server closed without answering).
fn exchange(server: &Server, header: &[u8]) -> Vec<u8> {
    let mut conn = Conn::connect(server.addr()).unwrap();
    conn.set_timeout(Duration::from_secs(20)).unwrap();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(GET);
    // A server that refused may close before reading everything.
    let _ = conn.send(&bytes);
    conn.read_to_end().unwrap_or_default()
}

/// The echo's JSON from a 200 response.
fn echoed(response: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(response);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

fn valid_headers_name_the_client(class: Class) {
    let log = LogDir::new();
    // A bare --proxy-protocol is auto, as in Gunicorn.
    let server = start(class, &log, &["--proxy-protocol", "-w", "1"]);
    // The peer each header makes the app see (`None`: the socket's own).
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "v1 TCP4",
            b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec(),
            Some("198.51.100.7:40000"),
        ),
        (
            "v1 TCP6",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 40001 443\r\n".to_vec(),
            Some("[2001:db8::1]:40001"),
        ),
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec(), None),
        (
            "v2 PROXY TCP4",
            v2(0x21, 0x11, V4_BLOCK, &[]),
            Some("192.0.2.10:4321"),
        ),
        (
            "v2 PROXY TCP6 with TLVs",
            // ALPN "h2" and a NOOP TLV, skipped.
            v2(
                0x21,
                0x21,
                &v6_block(),
                &[0x01, 0, 2, b'h', b'2', 0x04, 0, 1, 0],
            ),
            Some("[2001:db8::7]:6543"),
        ),
        ("v2 LOCAL", v2(0x20, 0x00, &[], &[]), None),
        ("no header (auto)", Vec::new(), None),
    ];
    // What each header said the app is told besides (`Call::proxy_protocol`
    // and `proxy_addr`: the proxy's own address).
    let said = [
        (Some("TCP4"), Some("192.0.2.1:80")),
        (Some("TCP6"), Some("[2001:db8::2]:443")),
        (Some("UNKNOWN"), None),
        (Some("TCP4"), Some("192.0.2.20:80")),
        (Some("TCP6"), Some("[2001:db8::8]:443")),
        (Some("LOCAL"), None),
        (None, None),
    ];
    let mut hosts = Vec::new();
    for ((name, header, expected), (protocol, proxy_addr)) in cases.iter().zip(said) {
        let echo = echoed(&exchange(&server, header));
        assert_eq!(echo["proxy_protocol"].as_str(), protocol, "{name}: {echo}");
        assert_eq!(echo["proxy_addr"].as_str(), proxy_addr, "{name}: {echo}");
        let peer = echo["peer"].as_str().unwrap().to_owned();
        match expected {
            Some(expected) => assert_eq!(&peer, expected, "{name}"),
            None => assert!(peer.starts_with("127.0.0.1:"), "{name}: peer {peer}"),
        }
        // The request after the header is intact.
        assert_eq!(echo["target"], "/proxied", "{name}");
        hosts.push(
            peer.rsplit_once(':')
                .unwrap()
                .0
                .trim_matches(['[', ']'])
                .to_owned(),
        );
    }
    let logged = wait_lines(&server, &log.path(), cases.len());
    let logged_hosts: Vec<&str> = logged
        .iter()
        .map(|line| line.split(' ').next().unwrap())
        .collect();
    assert_eq!(logged_hosts, hosts, "{logged:?}");
    assert_eq!(logged_hosts[0], "198.51.100.7");
}

fn malformed_headers_close_without_calling_the_app(class: Class) {
    let log = LogDir::new();
    let server = start(class, &log, &["--proxy-protocol=auto"]);
    let mut oversized_v2 = v2(0x21, 0x11, V4_BLOCK, &[]);
    oversized_v2[14..16].copy_from_slice(&60000u16.to_be_bytes());
    let mut too_long = b"PROXY UNKNOWN ".to_vec();
    too_long.resize(110, b'a');
    too_long.extend_from_slice(b"\r\n");
    let mut bad_signature = v2(0x21, 0x11, V4_BLOCK, &[]);
    bad_signature[4] = b'X';
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "port out of range",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n".to_vec(),
        ),
        (
            "non-digit port",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 8o 80\r\n".to_vec(),
        ),
        (
            "signed port",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 80\r\n".to_vec(),
        ),
        (
            "leading zero",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n".to_vec(),
        ),
        (
            "family mismatch",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 80\r\n".to_vec(),
        ),
        (
            "bad address",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 80\r\n".to_vec(),
        ),
        (
            "unknown protocol",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 80\r\n".to_vec(),
        ),
        ("bare LF", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 80\n".to_vec()),
        ("v1 over 107 bytes", too_long),
        ("bad v2 signature", bad_signature),
        ("v2 version nibble 1", v2(0x11, 0x11, V4_BLOCK, &[])),
        ("v2 command nibble 3", v2(0x23, 0x11, V4_BLOCK, &[])),
        ("v2 family 5", v2(0x21, 0x51, V4_BLOCK, &[])),
        ("v2 IPv6 in 12 bytes", v2(0x21, 0x21, V4_BLOCK, &[])),
        (
            "v2 TLV past the end",
            v2(0x21, 0x11, V4_BLOCK, &[0x01, 0, 9, 1]),
        ),
        ("v2 length over the bound", oversized_v2),
    ];
    for (name, header) in &malformed {
        let response = String::from_utf8_lossy(&exchange(&server, header)).into_owned();
        // Answered 400 (or, for a header the server could judge only
        // once the request's bytes were peeked, closed): never the app.
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{name}: {response}"
        );
        assert!(!response.contains("/proxied"), "{name}: {response}");
    }
    // Truncated, then closed: closed without an answer.
    let mut conn = Conn::connect(server.addr()).unwrap();
    conn.set_timeout(Duration::from_secs(20)).unwrap();
    conn.send(b"PROXY TCP4 1.2.3.4 5.6.").unwrap();
    conn.shutdown_write().unwrap();
    assert_eq!(conn.read_to_end().unwrap_or_default(), b"");
    // The app ran for none of them: the only access line is this request's.
    echoed(&exchange(
        &server,
        b"PROXY TCP4 203.0.113.5 192.0.2.1 1234 80\r\n",
    ));
    let logged = wait_lines(&server, &log.path(), 1);
    assert_eq!(
        logged,
        ["203.0.113.5 GET /proxied HTTP/1.1 200"],
        "{}",
        server.log()
    );
}

fn a_header_split_over_writes_is_read(class: Class) {
    let log = LogDir::new();
    let server = start(class, &log, &["--proxy-protocol=v1"]);
    for pieces in [
        &[
            &b"PRO"[..],
            b"XY TCP4 198.51.100.9 ",
            b"192.0.2.1 555",
            b"66 80\r",
            b"\n",
        ][..],
        &[&b"PROXY TCP4 198.51.100.9 192.0.2.1 55566 80\r\n"[..]][..],
    ] {
        let mut stream = std::net::TcpStream::connect(server.addr().tcp()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        for piece in pieces {
            stream.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        stream.write_all(GET).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        assert_eq!(echoed(&response)["peer"], "198.51.100.9:55566");
    }
    // v2, split inside its fixed part and its addresses.
    let server2 = start(class, &LogDir::new(), &["--proxy-protocol=v2"]);
    let header = v2(0x21, 0x11, V4_BLOCK, &[]);
    let mut stream = std::net::TcpStream::connect(server2.addr().tcp()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    for piece in [&header[..5], &header[5..15], &header[15..20], &header[20..]] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    stream.write_all(GET).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert_eq!(echoed(&response)["peer"], "192.0.2.10:4321");
}

fn a_peer_not_allowed_gets_403(class: Class) {
    let log = LogDir::new();
    let server = start(
        class,
        &log,
        // Gunicorn's spelling: the mode as the next argument.
        &[
            "--proxy-protocol",
            "auto",
            "--proxy-allow-from",
            "10.0.0.0/8, 192.0.2.1",
        ],
    );
    for header in [
        b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec(),
        v2(0x21, 0x11, V4_BLOCK, &[]),
        // Malformed from a peer not allowed: still 403, it may not speak.
        b"PROXY TCP4 nonsense\r\n".to_vec(),
    ] {
        let response = String::from_utf8_lossy(&exchange(&server, &header)).into_owned();
        assert!(
            response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{response}"
        );
    }
    // Plain HTTP from that peer is served under auto, as its own address.
    let echo = echoed(&exchange(&server, b""));
    assert!(echo["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let logged = wait_lines(&server, &log.path(), 1);
    assert_eq!(logged, ["127.0.0.1 GET /proxied HTTP/1.1 200"]);
    // `*` allows every peer.
    let open = start(
        class,
        &LogDir::new(),
        &["--proxy-protocol", "--proxy-allow-from", "*"],
    );
    let echo = echoed(&exchange(
        &open,
        b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n",
    ));
    assert_eq!(echo["peer"], "198.51.100.7:40000");
}

fn off_answers_a_proxy_line_400(class: Class) {
    let log = LogDir::new();
    let server = start(class, &log, &[]);
    for header in [
        b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec(),
        v2(0x21, 0x11, V4_BLOCK, &[]),
    ] {
        let response = String::from_utf8_lossy(&exchange(&server, &header)).into_owned();
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response}"
        );
    }
    // v1 and v2 each require their own version.
    for (mode, header) in [
        ("--proxy-protocol=v1", v2(0x21, 0x11, V4_BLOCK, &[])),
        (
            "--proxy-protocol=v2",
            b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec(),
        ),
        ("--proxy-protocol=v1", Vec::new()),
    ] {
        let strict = start(class, &LogDir::new(), &[mode]);
        let response = String::from_utf8_lossy(&exchange(&strict, &header)).into_owned();
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{mode}: {response}"
        );
    }
}

fn a_stalled_half_header_is_closed_at_the_deadline(class: Class) {
    let log = LogDir::new();
    // --timeout 4: the head deadline (the client I/O timeout) is 2 s.
    let server = start(class, &log, &["--proxy-protocol=v1", "--timeout", "4"]);
    let mut stalled = Vec::new();
    for half in [&b"PROXY TCP4 198.51.100.7 19"[..], b""] {
        let mut stream = std::net::TcpStream::connect(server.addr().tcp()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(half).unwrap();
        stalled.push((stream, Instant::now()));
    }
    for (mut stream, started) in stalled {
        let mut response = Vec::new();
        let closed = stream.read_to_end(&mut response);
        assert!(closed.is_ok(), "not closed: {closed:?}");
        assert_eq!(
            response,
            b"",
            "answered: {}",
            String::from_utf8_lossy(&response)
        );
        // Closed by the deadline, not before it (generous bounds).
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
    // Nothing reached the app; the worker serves the next client.
    echoed(&exchange(
        &server,
        b"PROXY TCP4 203.0.113.5 192.0.2.1 1234 80\r\n",
    ));
    assert_eq!(
        wait_lines(&server, &log.path(), 1),
        ["203.0.113.5 GET /proxied HTTP/1.1 200"]
    );
}

/// `REMOTE_ADDR` and `REMOTE_PORT` of a Python app's environ for `bytes`.
fn remote_of(server: &Server, bytes: &[u8]) -> (String, String) {
    let response = runicorn_tests::raw_response(server.addr(), bytes).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let environ: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    (
        environ["REMOTE_ADDR"].as_str().unwrap().to_owned(),
        environ["REMOTE_PORT"].as_str().unwrap().to_owned(),
    )
}

/// A Python app's `REMOTE_ADDR` and `REMOTE_PORT` behind a v1 and a v2
/// header are the client's, as the real Gunicorn (`--proxy-protocol`, the
/// same bytes) sets them, under every class.
#[test]
fn a_python_app_sees_the_client_as_under_gunicorn() {
    use runicorn_tests::python;
    let requests: Vec<Vec<u8>> = [
        b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec(),
        v2(0x21, 0x21, &v6_block(), &[]),
    ]
    .into_iter()
    .map(|mut header| {
        header.extend_from_slice(GET);
        header
    })
    .collect();
    let gunicorn = python::gunicorn(&["--proxy-protocol", "-w", "1"], "environ_dump:app");
    let theirs: Vec<(String, String)> = requests
        .iter()
        .map(|bytes| remote_of(&gunicorn, bytes))
        .collect();
    assert_eq!(theirs[0], ("198.51.100.7".to_owned(), "40000".to_owned()));
    assert_eq!(theirs[1], ("2001:db8::7".to_owned(), "6543".to_owned()));
    for class in Class::ALL {
        let ours = python::start(class, &["--proxy-protocol", "-w", "1"], "environ_dump:app");
        for (bytes, theirs) in requests.iter().zip(&theirs) {
            assert_eq!(&remote_of(&ours, bytes), theirs, "{}", class.name());
        }
    }
}

/// `PROXY_PROTOCOL`, `PROXY_ADDR` and `PROXY_PORT` of a Python app's
/// environ for `bytes` (`None`: the key is absent; a value that is not a
/// string, Gunicorn's None, as `environ_dump` describes it).
fn proxy_keys_of(server: &Server, bytes: &[u8]) -> [Option<String>; 3] {
    let response = runicorn_tests::raw_response(server.addr(), bytes).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let environ: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    ["PROXY_PROTOCOL", "PROXY_ADDR", "PROXY_PORT"].map(|key| {
        environ
            .get(key)
            .map(|value| value.as_str().unwrap().to_owned())
    })
}

/// What a header said reaches a Python app as the real Gunicorn
/// (`--proxy-protocol`, the same bytes) gives it: `PROXY_PROTOCOL`,
/// `PROXY_ADDR` and `PROXY_PORT` (the proxy's own address) behind v1 and v2
/// headers over IPv4 and IPv6, under every class; none of the keys without
/// a header; for v2 LOCAL the same `PROXY_PROTOCOL`, where Gunicorn's
/// `PROXY_ADDR` is None (and `PROXY_PORT` "None") runicorn leaves both out.
#[test]
fn a_python_app_sees_the_proxy_keys_as_under_gunicorn() {
    use runicorn_tests::python;
    let with_get = |mut header: Vec<u8>| {
        header.extend_from_slice(GET);
        header
    };
    let requests: Vec<Vec<u8>> = [
        b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec(),
        b"PROXY TCP6 2001:db8::1 2001:db8::2 40001 443\r\n".to_vec(),
        v2(0x21, 0x11, V4_BLOCK, &[]),
        v2(0x21, 0x21, &v6_block(), &[]),
        Vec::new(),
    ]
    .into_iter()
    .map(with_get)
    .collect();
    let local = with_get(v2(0x20, 0x00, &[], &[]));
    let gunicorn = python::gunicorn(&["--proxy-protocol", "-w", "1"], "environ_dump:app");
    let theirs: Vec<[Option<String>; 3]> = requests
        .iter()
        .map(|bytes| proxy_keys_of(&gunicorn, bytes))
        .collect();
    let some = |text: &str| Some(text.to_owned());
    assert_eq!(theirs[0], [some("TCP4"), some("192.0.2.1"), some("80")]);
    assert_eq!(theirs[3], [some("TCP6"), some("2001:db8::8"), some("443")]);
    assert_eq!(theirs[4], [None, None, None]);
    let their_local = proxy_keys_of(&gunicorn, &local);
    assert_eq!(their_local, [some("LOCAL"), some("<object>"), some("None")]);
    for class in Class::ALL {
        let ours = python::start(class, &["--proxy-protocol", "-w", "1"], "environ_dump:app");
        for (bytes, theirs) in requests.iter().zip(&theirs) {
            assert_eq!(
                &proxy_keys_of(&ours, bytes),
                theirs,
                "{}: {}",
                class.name(),
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(
            proxy_keys_of(&ours, &local),
            [some("LOCAL"), None, None],
            "{}",
            class.name()
        );
    }
}

/// A proxy (or anything) that sends part of a header and stalls does not
/// hold up another client where the class serves connections side by side:
/// gthread parks it (no thread held, `--threads 1` here), green and async
/// wait without blocking. Sync serves one connection at a time by design:
/// there the next client waits for the stalled one's deadline.
fn a_stalled_header_does_not_hold_up_other_clients(class: Class) {
    let log = LogDir::new();
    // --timeout 20: a 10 s head deadline.
    let server = start(
        class,
        &log,
        &["--proxy-protocol=v1", "--timeout", "20", "--threads", "1"],
    );
    let mut stalled = std::net::TcpStream::connect(server.addr().tcp()).unwrap();
    stalled.write_all(b"PROXY TCP4 198.51.100.7 19").unwrap();
    // Let the worker take the stalled connection first.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let echo = echoed(&exchange(
        &server,
        b"PROXY TCP4 203.0.113.5 192.0.2.1 1234 80\r\n",
    ));
    let waited = started.elapsed();
    assert_eq!(echo["peer"], "203.0.113.5:1234");
    if class == Class::Sync {
        assert!(waited >= Duration::from_secs(5), "{waited:?}");
    } else {
        // Generous: the deadline is 10 s away.
        assert!(waited < Duration::from_secs(7), "{waited:?}");
    }
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    assert!(stalled.read_to_end(&mut rest).is_ok());
    assert_eq!(rest, b"");
}

/// On a unix-socket listener the header is read too (a local proxy), and
/// its peers are always allowed (there is no address to check; the socket
/// file's mode says who connects), whatever `--proxy-allow-from` says.
fn a_unix_socket_listener_reads_the_header(class: Class) {
    let dir = tempfile::tempdir().unwrap();
    let bind = format!("unix:{}", dir.path().join("runicorn.sock").display());
    let server = Server::start([
        "-k",
        class.name(),
        "-w",
        "1",
        "-b",
        &bind,
        "--proxy-protocol=v2",
        "--proxy-allow-from",
        "10.9.9.9",
        "builtin:echo",
    ]);
    let echo = echoed(&exchange(&server, &v2(0x21, 0x11, V4_BLOCK, &[])));
    assert_eq!(echo["peer"], "192.0.2.10:4321");
    // LOCAL keeps the unix peer (no address).
    let echo = echoed(&exchange(&server, &v2(0x20, 0x00, &[], &[])));
    assert_eq!(echo["peer"], "");
    // v2 required: a bare request is refused.
    let response = String::from_utf8_lossy(&exchange(&server, b"")).into_owned();
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
}

/// `--forwarded-allow-ips` judges the client a header names, not the
/// proxy that sent it (unlike Gunicorn, which keeps judging the socket
/// peer): behind a local TCP proxy (127.0.0.1, trusted by default) a
/// client's own `X-Forwarded-*` fields are not believed, and they are once
/// the client named is itself a trusted front end (a CDN before haproxy).
fn forwarded_fields_are_judged_by_the_client_the_header_names(class: Class) {
    let request = |server: &Server| {
        let mut bytes = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec();
        bytes.extend_from_slice(
            b"GET /proxied HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\
              X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        );
        let response = runicorn_tests::raw(server.addr(), &bytes).unwrap();
        echoed(&response)
    };
    let untrusted = start(class, &LogDir::new(), &["--proxy-protocol=v1"]);
    let echo = request(&untrusted);
    assert_eq!(echo["peer"], "198.51.100.7:40000");
    assert_eq!(echo["url_scheme"], "http", "{echo}");
    assert_ne!(echo["client_addr"], "203.0.113.9", "{echo}");
    let trusted = start(
        class,
        &LogDir::new(),
        &[
            "--proxy-protocol=v1",
            "--forwarded-allow-ips",
            "198.51.100.7",
        ],
    );
    let echo = request(&trusted);
    assert_eq!(echo["url_scheme"], "https", "{echo}");
    assert_eq!(echo["client_addr"], "203.0.113.9", "{echo}");
}
