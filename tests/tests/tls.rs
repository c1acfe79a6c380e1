//! TLS end to end: the real binary with `--certfile`/`--keyfile` made by
//! the test (rcgen), a rustls client over loopback, on every worker class:
//! keep-alive GET and POST, ALPN `http/1.1`, the scheme apps see, plain HTTP
//! refused, client certificates, a stalled handshake; the master's checks
//! at start and on HUP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use runicorn_tests::client::{raw, Conn};
use runicorn_tests::python;
use runicorn_tests::scenario::{wait_replaced, Class};
use runicorn_tests::server::Server;
use runicorn_tests::tls::{self_signed_server, Pki, SERVER_NAME};
use runicorn_tests::wait::{deadline, wait_until};

runicorn_tests::class_matrix![
    get_and_post_keep_alive_over_tls,
    a_proxy_protocol_header_comes_before_the_handshake,
    plain_http_to_the_tls_port_is_closed_unanswered,
    a_client_certificate_is_required,
    a_stalled_handshake_is_closed_at_the_deadline,
];

fn args<'a>(pki_args: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = pki_args.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    args
}

fn tls_conn(server: &Server, pki: &Pki) -> Conn {
    Conn::connect_tls(server.addr(), Pki::client_config(&pki.server), SERVER_NAME)
        .unwrap_or_else(|err| panic!("TLS connect: {err}\n{}", server.log()))
}

fn get_and_post_keep_alive_over_tls(class: Class) {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let server = class.start(
        &args(
            &server_args,
            &[
                "-w",
                "1",
                "--access-logfile",
                "-",
                "--access-logformat",
                "%({wsgi.url_scheme}e)s %(U)s",
            ],
        ),
        "builtin:echo",
    );
    assert!(
        server.log().contains("Listening at: https://127.0.0.1:"),
        "the listener is named https, as Gunicorn names it:\n{}",
        server.log()
    );
    // sync closes after each response, by design (as Gunicorn's sync).
    let keeps_alive = class != Class::Sync;
    let mut conn = tls_conn(&server, &pki);
    assert_eq!(conn.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
    for round in 0..3 {
        let response = conn.get(&format!("/get?round={round}")).unwrap();
        assert_eq!(response.status, 200, "{}", server.log());
        let echo = response.json();
        assert_eq!(echo["url_scheme"], "https", "{echo}");
        assert_eq!(echo["query"], format!("round={round}"));
        assert_eq!(!response.closes(), keeps_alive, "kept alive unless sync");
        if !keeps_alive {
            assert!(conn.at_eof().unwrap(), "sync closes after the response");
            conn = tls_conn(&server, &pki);
        }
        let body = vec![b'x'; 100_000];
        let response = conn.request("POST", "/post", &[], &body).unwrap();
        assert_eq!(response.status, 200, "{}", server.log());
        let echo = response.json();
        use base64::Engine as _;
        let sent = base64::engine::general_purpose::STANDARD.encode(&body);
        assert_eq!(echo["body_b64"], sent.as_str(), "the body came whole");
        assert_eq!(echo["url_scheme"], "https");
        if !keeps_alive {
            conn = tls_conn(&server, &pki);
        }
    }
    // A trusted front end's field still decides the scheme (as Gunicorn's).
    let response = conn
        .request("GET", "/", &[("X-Forwarded-Proto", "http")], b"")
        .unwrap();
    assert_eq!(response.json()["url_scheme"], "http");
    // The access log's scheme atom says https too.
    assert!(
        wait_until(deadline(10.0), || server.stdout().contains("https /post")),
        "{}",
        server.stdout()
    );
    assert!(
        server.stdout().lines().any(|line| line == "https /get"),
        "{}",
        server.stdout()
    );
}

fn a_proxy_protocol_header_comes_before_the_handshake(class: Class) {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let server = class.start(
        &args(&server_args, &["-w", "1", "--proxy-protocol", "v1"]),
        "builtin:echo",
    );
    let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 443\r\n";
    let mut conn = Conn::connect_tls_after(
        server.addr(),
        header,
        Pki::client_config(&pki.server),
        SERVER_NAME,
    )
    .unwrap_or_else(|err| panic!("TLS after a PROXY header: {err}\n{}", server.log()));
    let response = conn.get("/").unwrap();
    assert_eq!(response.status, 200, "{}", server.log());
    let echo = response.json();
    assert_eq!(echo["url_scheme"], "https", "{echo}");
    assert!(
        echo["peer"]
            .as_str()
            .is_some_and(|peer| peer.starts_with("192.0.2.7")),
        "the header's client: {echo}"
    );
    // Without the header the connection never reaches TLS.
    let refused =
        match Conn::connect_tls(server.addr(), Pki::client_config(&pki.server), SERVER_NAME) {
            Err(_) => true,
            Ok(mut conn) => conn.get("/").is_err(),
        };
    assert!(
        refused,
        "--proxy-protocol v1 requires the header\n{}",
        server.log()
    );
}

fn plain_http_to_the_tls_port_is_closed_unanswered(class: Class) {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let server = class.start(
        &args(&server_args, &["-w", "1", "--access-logfile", "-"]),
        "builtin:hello",
    );
    let answer = raw(server.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap_or_else(|err| panic!("the server closes the connection: {err}\n{}", server.log()));
    assert!(
        !answer.starts_with(b"HTTP/"),
        "no HTTP answer over a TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // The app never ran: the one access line is the TLS request's.
    let mut conn = tls_conn(&server, &pki);
    assert_eq!(conn.get("/after").unwrap().status, 200);
    assert!(
        wait_until(deadline(10.0), || server.stdout().contains("/after")),
        "{}",
        server.log()
    );
    assert_eq!(server.stdout().lines().count(), 1, "{}", server.stdout());
}

fn a_client_certificate_is_required(class: Class) {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let ca = pki.path("ca.pem").display().to_string();
    let server = class.start(
        &args(
            &server_args,
            &["-w", "1", "--cert-reqs", "2", "--ca-certs", &ca],
        ),
        "builtin:echo",
    );
    // Without a certificate: under TLS 1.3 the client's side of the
    // handshake completes, and the server's refusal arrives as an alert.
    let refused =
        match Conn::connect_tls(server.addr(), Pki::client_config(&pki.server), SERVER_NAME) {
            Err(_) => true,
            Ok(mut conn) => conn.get("/").is_err(),
        };
    assert!(
        refused,
        "a client without a certificate is refused\n{}",
        server.log()
    );
    // With one the CA signed.
    let mut conn = Conn::connect_tls(server.addr(), pki.client_config_with_cert(), SERVER_NAME)
        .unwrap_or_else(|err| {
            panic!(
                "TLS connect with a client certificate: {err}\n{}",
                server.log()
            )
        });
    let response = conn.get("/").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["url_scheme"], "https");
    // A certificate another CA signed is refused like none.
    let stranger = Pki::new();
    let refused = match Conn::connect_tls(
        server.addr(),
        stranger.client_config_presenting(&pki.server),
        SERVER_NAME,
    ) {
        Err(_) => true,
        Ok(mut conn) => conn.get("/").is_err(),
    };
    assert!(
        refused,
        "a certificate of another CA is refused\n{}",
        server.log()
    );
}

fn a_stalled_handshake_is_closed_at_the_deadline(class: Class) {
    let pki = Pki::new();
    let server_args = pki.server_args();
    // The client I/O timeout, the head's wait, is half of --timeout: 2 s
    // under sync, whose one worker the stalled client holds until then; 10 s
    // elsewhere, a window in which another client is served meanwhile.
    let timeout = if class == Class::Sync { "4" } else { "20" };
    let server = class.start(
        &args(
            &server_args,
            &["-w", "1", "--threads", "1", "--timeout", timeout],
        ),
        "builtin:hello",
    );
    let mut stalled = TcpStream::connect(server.addr().tcp()).unwrap();
    // The start of a TLS record (a handshake), then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap();
    let started = Instant::now();
    if class != Class::Sync {
        // Not a thread (gthread --threads 1), coroutine or task held: served now.
        let mut conn = tls_conn(&server, &pki);
        assert_eq!(conn.get("/").unwrap().status, 200);
        stalled.set_nonblocking(true).unwrap();
        let still_open = matches!(
            stalled.read(&mut [0u8; 8]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock
        );
        assert!(
            still_open,
            "the stalled handshake waits for its deadline\n{}",
            server.log()
        );
        stalled.set_nonblocking(false).unwrap();
    }
    stalled
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = match stalled.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        closed,
        "the stalled handshake is closed, not answered\n{}",
        server.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(35),
        "closed at the deadline, not held: {:?}",
        started.elapsed()
    );
    // The worker (sync) is free again.
    let mut conn = tls_conn(&server, &pki);
    assert_eq!(conn.get("/").unwrap().status, 200);
}

/// A request over TLS trusting `server` only: its status, or the error.
fn status_trusting(server: &Server, trusted: &runicorn_tests::tls::Issued) -> Result<u16, String> {
    let mut conn = Conn::connect_tls(server.addr(), Pki::client_config(trusted), SERVER_NAME)
        .map_err(|err| err.to_string())?;
    conn.get("/")
        .map(|response| response.status)
        .map_err(|err| err.to_string())
}

#[test]
fn a_hup_with_a_broken_certificate_keeps_serving_the_old_one() {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let server = Class::Sync.start(&args(&server_args, &["-w", "1"]), "builtin:hello");
    assert_eq!(status_trusting(&server, &pki.server), Ok(200));
    let workers = server.wait_workers(1, 10.0);
    pki.write(
        "cert.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    server.signal(Signal::SIGHUP);
    let line = server.expect_log("Reload failed", 10.0);
    assert!(line.contains("--certfile"), "the cause is named: {line}");
    assert_eq!(
        status_trusting(&server, &pki.server),
        Ok(200),
        "{}",
        server.log()
    );
    // A worker spawned later (this one killed) still gets the last good one.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0] as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_replaced(&server, &workers, 20.0), "{}", server.log());
    assert_eq!(
        status_trusting(&server, &pki.server),
        Ok(200),
        "{}",
        server.log()
    );
}

#[test]
fn a_hup_with_a_new_certificate_serves_it() {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let server = Class::Gthread.start(&args(&server_args, &["-w", "1"]), "builtin:hello");
    assert_eq!(status_trusting(&server, &pki.server), Ok(200));
    let workers = server.wait_workers(1, 10.0);
    let renewed = self_signed_server();
    pki.write("cert.pem", &renewed.cert_pem);
    pki.write("key.pem", &renewed.key_pem);
    server.signal(Signal::SIGHUP);
    assert!(wait_replaced(&server, &workers, 20.0), "{}", server.log());
    assert!(
        wait_until(deadline(10.0), || status_trusting(&server, &renewed)
            == Ok(200)),
        "the new certificate is served\n{}",
        server.log()
    );
    assert!(
        status_trusting(&server, &pki.server).is_err(),
        "the old one no longer is"
    );
}

#[test]
fn a_bad_certfile_at_start_is_one_line_and_a_failed_exit() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem").display().to_string();
    let key = pki.path("key.pem").display().to_string();
    let exited = Server::start_expect_exit([
        "-b",
        "127.0.0.1:0",
        "--certfile",
        missing.as_str(),
        "--keyfile",
        key.as_str(),
        "builtin:hello",
    ]);
    assert_ne!(exited.code(), 0);
    let lines: Vec<&str> = exited.log.lines().collect();
    assert_eq!(lines.len(), 1, "{}", exited.log);
    assert!(lines[0].contains("cannot read --certfile"), "{}", lines[0]);
    // A key that is not the certificate's.
    let other = self_signed_server();
    let wrong_key = pki.write("other-key.pem", &other.key_pem);
    let cert = pki.path("cert.pem").display().to_string();
    let exited = Server::start_expect_exit([
        "-b",
        "127.0.0.1:0",
        "--certfile",
        cert.as_str(),
        "--keyfile",
        &wrong_key.display().to_string(),
        "builtin:hello",
    ]);
    assert_ne!(exited.code(), 0);
    assert_eq!(exited.log.lines().count(), 1, "{}", exited.log);
    assert!(
        exited.log.contains("cannot serve together"),
        "{}",
        exited.log
    );
    // One of the pair alone.
    let exited = Server::start_expect_exit([
        "-b",
        "127.0.0.1:0",
        "--certfile",
        cert.as_str(),
        "builtin:hello",
    ]);
    assert_ne!(exited.code(), 0);
    assert!(exited.log.contains("add --keyfile"), "{}", exited.log);
}

#[test]
fn a_python_wsgi_app_sees_the_https_scheme() {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let server = python::start(
        Class::Gthread,
        &args(&server_args, &["-w", "1"]),
        "environ_dump:app",
    );
    let mut conn = tls_conn(&server, &pki);
    let response = conn.get("/").unwrap();
    assert_eq!(response.status, 200, "{}", server.log());
    assert_eq!(response.json()["wsgi.url_scheme"], "https");
}

#[test]
fn ssl_version_and_ciphers_narrow_what_is_negotiated() {
    let pki = Pki::new();
    let server_args = pki.server_args();
    // The defaults: TLS 1.3 with a TLS 1.3 client, TLS 1.2 with a 1.2 one.
    let server = Class::Gthread.start(&args(&server_args, &["-w", "1"]), "builtin:hello");
    let tls13 = Pki::client_config_limited(&pki.server, &[&rustls::version::TLS13], &[]);
    let tls12 = Pki::client_config_limited(&pki.server, &[&rustls::version::TLS12], &[]);
    let negotiated = |server: &Server, config| {
        let mut conn = Conn::connect_tls(server.addr(), config, SERVER_NAME).ok()?;
        (conn.get("/").ok()?.status == 200).then(|| conn.tls_negotiated())?
    };
    assert_eq!(
        negotiated(&server, tls13.clone()).map(|n| n.0),
        Some("TLSv1_3".to_owned())
    );
    assert_eq!(
        negotiated(&server, tls12.clone()).map(|n| n.0),
        Some("TLSv1_2".to_owned())
    );
    drop(server);
    // --ssl-version TLSv1_2: a client speaking only 1.3 is refused.
    let server = Class::Gthread.start(
        &args(&server_args, &["-w", "1", "--ssl-version", "TLSv1_2"]),
        "builtin:hello",
    );
    assert_eq!(negotiated(&server, tls13.clone()), None, "{}", server.log());
    assert_eq!(
        negotiated(&server, tls12).map(|n| n.0),
        Some("TLSv1_2".to_owned())
    );
    drop(server);
    // --ciphers: the one suite named is the one spoken.
    let server = Class::Gthread.start(
        &args(
            &server_args,
            &["-w", "1", "--ciphers", "TLS13_CHACHA20_POLY1305_SHA256"],
        ),
        "builtin:hello",
    );
    assert_eq!(
        negotiated(&server, tls13).map(|n| n.1),
        Some("TLS13_CHACHA20_POLY1305_SHA256".to_owned()),
        "{}",
        server.log()
    );
    let aes_only = Pki::client_config_limited(
        &pki.server,
        &[&rustls::version::TLS13],
        &[rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
    );
    assert_eq!(
        negotiated(&server, aes_only),
        None,
        "a suite not named is refused"
    );
    drop(server);
    // An OpenSSL cipher string is refused at start, with the reason.
    let exited = Server::start_expect_exit(args(
        &server_args,
        &[
            "-b",
            "127.0.0.1:0",
            "--ciphers",
            "HIGH:!aNULL",
            "builtin:hello",
        ],
    ));
    assert_ne!(exited.code(), 0);
    assert!(exited.log.contains("cannot be honoured"), "{}", exited.log);
}

#[test]
fn an_optional_client_certificate_is_checked_when_presented() {
    let pki = Pki::new();
    let server_args = pki.server_args();
    let ca = pki.path("ca.pem").display().to_string();
    let server = Class::Async.start(
        &args(
            &server_args,
            &["-w", "1", "--cert-reqs", "optional", "--ca-certs", &ca],
        ),
        "builtin:hello",
    );
    assert_eq!(
        status_trusting(&server, &pki.server),
        Ok(200),
        "none presented"
    );
    let mut conn =
        Conn::connect_tls(server.addr(), pki.client_config_with_cert(), SERVER_NAME).unwrap();
    assert_eq!(conn.get("/").unwrap().status, 200, "the CA's presented");
    let stranger = Pki::new();
    let refused = match Conn::connect_tls(
        server.addr(),
        stranger.client_config_presenting(&pki.server),
        SERVER_NAME,
    ) {
        Err(_) => true,
        Ok(mut conn) => conn.get("/").is_err(),
    };
    assert!(refused, "another CA's is refused\n{}", server.log());
}
