//! Real TCP proxies in front of runicorn, speaking the PROXY protocol:
//! haproxy (`send-proxy-v2`) before `--proxy-protocol v2` and nginx's
//! stream module (`proxy_protocol on`, v1) before `--proxy-protocol v1`,
//! each configured with `docs/operations.md`'s example (see
//! `runicorn_tests::tcp_proxy`), under every worker class. The app
//! (`builtin:echo`'s `peer`) and the access log (`%(h)s` and
//! `%({REMOTE_PORT}e)s`) see the client:
//! 127.0.0.1 with the client socket's own port, which the proxy's own
//! connection to runicorn never has; the app is told the proxy's address
//! the client connected to (`proxy_addr`, Gunicorn's `PROXY_ADDR`). Without the header runicorn would see
//! the proxy's connection (another port), and under `v1`/`v2` a connection
//! without one is refused, so both checks fail if the header is not read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use runicorn_tests::tcp_proxy::{Kind, TcpProxy};
use runicorn_tests::{deadline, wait_until, Class, Server};

runicorn_tests::class_matrix![haproxy_send_proxy_v2, nginx_stream_proxy_protocol];

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One request through `proxy` from a fresh client socket: the echoed
/// JSON and the client socket's own port.
fn through(proxy: &TcpProxy, server: &Server, path: &str) -> (serde_json::Value, u16) {
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = stream.local_addr().unwrap().port();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 200 "),
        "{text}\n--- runicorn ---\n{}\n--- proxy ---\n{}",
        server.log(),
        proxy.log()
    );
    let body = text.split_once("\r\n\r\n").expect("a head and a body").1;
    let json = serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body}"));
    (json, port)
}

/// runicorn `--proxy-protocol MODE` (allowed from 127.0.0.1, as the
/// docs' command line) behind `kind`: two clients, each seen as itself.
fn behind(class: Class, kind: Kind, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().unwrap();
    let server = class.start(
        &[
            "--proxy-protocol",
            mode,
            "--proxy-allow-from",
            "127.0.0.1",
            "--access-logfile",
            log_arg,
            "--access-logformat",
            "%(h)s %({REMOTE_PORT}e)s %(r)s %(s)s",
        ],
        "builtin:echo",
    );
    let proxy = TcpProxy::start(kind, &dir.path().join("proxy"), server.addr().tcp());
    for path in ["/first", "/second"] {
        let (json, port) = through(&proxy, &server, path);
        assert_eq!(
            json["peer"],
            format!("127.0.0.1:{port}"),
            "the app sees the client socket, not the proxy's connection: {json}"
        );
        assert_eq!(json["client_addr"], format!("127.0.0.1:{port}"), "{json}");
        // And the proxy's own address, the one the client connected to.
        assert_eq!(json["proxy_protocol"], "TCP4", "{json}");
        assert_eq!(json["proxy_addr"], proxy.addr().to_string(), "{json}");
        let line = format!("127.0.0.1 {port} GET {path} HTTP/1.1 200");
        assert!(
            wait_until(deadline(10.0), || lines(&log).contains(&line)),
            "{line:?} not in {:?}\n{}",
            lines(&log),
            server.log()
        );
    }
}

fn haproxy_send_proxy_v2(class: Class) {
    behind(class, Kind::Haproxy, "v2");
}

fn nginx_stream_proxy_protocol(class: Class) {
    behind(class, Kind::NginxStream, "v1");
}
