//! Whom runicorn believes about where a request came from, end to end:
//! the standard `Forwarded` field (RFC 7239) from trusted and untrusted
//! peers, `--secure-scheme-headers` on the command line, and
//! `--forwarder-headers` (`SCRIPT_NAME` from a trusted front end) for a
//! Python app. Every scenario runs under every worker class
//! (`class_matrix!`). The test client connects from 127.0.0.1, which the
//! default `--forwarded-allow-ips` trusts; `--forwarded-allow-ips
//! 192.0.2.1` makes the same client an untrusted peer.

use runicorn_tests::python;
use runicorn_tests::scenario::answered_then_closed;
use runicorn_tests::{Class, Conn, Response, Server};

runicorn_tests::class_matrix![
    forwarded_from_a_trusted_peer_names_the_client_scheme_and_host,
    unknown_and_obfuscated_clients_are_not_passed_off_as_the_proxy,
    forwarded_from_an_untrusted_peer_is_a_plain_header,
    contradictory_or_malformed_forwarded_from_a_trusted_peer_is_a_400,
    secure_scheme_headers_from_the_command_line_replace_the_defaults,
    wsgi_sees_the_forwarded_scheme_and_host_and_keeps_the_peer,
    script_name_from_a_trusted_front_end_mounts_the_app,
    forwarder_headers_lists_the_fields_a_front_end_may_set,
];

/// Untrusts the test client (127.0.0.1).
const UNTRUSTED: &[&str] = &["--forwarded-allow-ips", "192.0.2.1"];

fn request(server: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    conn.request("GET", path, headers, b"")
        .unwrap_or_else(|err| panic!("{err}\n{}", server.log()))
}

fn echo(server: &Server, headers: &[(&str, &str)]) -> serde_json::Value {
    let response = request(server, "/", headers);
    assert_eq!(response.status, 200, "{response:?}\n{}", server.log());
    response.json()
}

fn header_values(json: &serde_json::Value, name: &str) -> Vec<String> {
    json["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|field| {
            field[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|field| field[1].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A chain of two proxies: the client 2001:db8::7 spoke https to
/// shop.example through the edge proxy 10.0.0.2 (trusted here), which
/// reached runicorn through the local one.
const CHAIN: &str = r#"for=198.51.100.1;proto=http;host=spoofed.example, for="[2001:db8::7]:4711";proto=https;host=shop.example, for=10.0.0.2;proto=http;host=internal"#;

fn forwarded_from_a_trusted_peer_names_the_client_scheme_and_host(class: Class) {
    let server = class.start(
        &["--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8"],
        "builtin:echo",
    );
    let json = echo(&server, &[("Forwarded", CHAIN)]);
    assert_eq!(json["client_addr"], "2001:db8::7", "{json}");
    assert_eq!(json["url_scheme"], "https", "{json}");
    assert_eq!(json["forwarded_host"], "shop.example", "{json}");
    assert!(
        json["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "the socket peer is never replaced: {json}"
    );
    assert_eq!(
        header_values(&json, "Forwarded"),
        [CHAIN],
        "the field itself reaches the app"
    );
    // Without 10.0.0.0/8 trusted, the rightmost element is the client's.
    let strict = class.start(&[], "builtin:echo");
    let json = echo(&strict, &[("Forwarded", CHAIN)]);
    assert_eq!(json["client_addr"], "10.0.0.2", "{json}");
    assert_eq!(json["url_scheme"], "http", "{json}");
    assert_eq!(json["forwarded_host"], "internal", "{json}");
    // Forwarded's for= wins over X-Forwarded-For; a field with no for=
    // leaves the client to X-Forwarded-For.
    let json = echo(
        &strict,
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "for=192.0.2.60;proto=https"),
        ],
    );
    assert_eq!(json["client_addr"], "192.0.2.60", "{json}");
    let json = echo(
        &strict,
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "proto=https"),
        ],
    );
    assert_eq!(json["client_addr"], "203.0.113.9", "{json}");
    assert_eq!(json["url_scheme"], "https", "{json}");
    assert_eq!(json["forwarded_host"], serde_json::Value::Null, "{json}");
}

fn unknown_and_obfuscated_clients_are_not_passed_off_as_the_proxy(class: Class) {
    let server = class.start(&[], "builtin:echo");
    for (value, client) in [
        ("for=unknown;proto=https", "unknown"),
        (r#"for="_hidden:_port""#, "_hidden"),
        ("for=192.0.2.1, for=_gazonk", "_gazonk"),
    ] {
        let json = echo(&server, &[("Forwarded", value)]);
        assert_eq!(json["client_addr"], client, "{value}: {json}");
    }
}

fn forwarded_from_an_untrusted_peer_is_a_plain_header(class: Class) {
    let server = class.start(UNTRUSTED, "builtin:echo");
    for value in [CHAIN, "for=[::1]", "garbage;;;=", "for=unknown;proto=https"] {
        let json = echo(
            &server,
            &[("Forwarded", value), ("X-Forwarded-Proto", "http")],
        );
        let peer = json["peer"].as_str().unwrap().to_owned();
        assert_eq!(json["client_addr"], peer.as_str(), "{value}: {json}");
        assert_eq!(json["url_scheme"], "http", "{value}: {json}");
        assert_eq!(
            json["forwarded_host"],
            serde_json::Value::Null,
            "{value}: {json}"
        );
        assert_eq!(header_values(&json, "Forwarded"), [value], "{json}");
    }
}

fn contradictory_or_malformed_forwarded_from_a_trusted_peer_is_a_400(class: Class) {
    let server = class.start(&[], "builtin:echo");
    for head in [
        "Forwarded: for=192.0.2.1;proto=https\r\nX-Forwarded-Proto: http\r\n",
        "X-Forwarded-Ssl: on\r\nForwarded: for=192.0.2.1;proto=http\r\n",
        "Forwarded: for=[2001:db8::1]\r\n",
        "Forwarded: for=192.0.2.1;for=192.0.2.2\r\n",
        "Forwarded: for=\"192.0.2.1\r\n",
    ] {
        let bytes = format!("GET / HTTP/1.1\r\nHost: x\r\n{head}\r\n");
        let response = answered_then_closed(&server, bytes.as_bytes());
        assert_eq!(response.status, 400, "{head:?}: {response:?}");
    }
    // Agreeing fields are fine.
    let json = echo(
        &server,
        &[
            ("Forwarded", "for=192.0.2.1;proto=https"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert_eq!(json["url_scheme"], "https", "{json}");
}

fn secure_scheme_headers_from_the_command_line_replace_the_defaults(class: Class) {
    let server = class.start(
        &[
            "--secure-scheme-headers",
            "X-Scheme=tls, Front-End-Https=on",
        ],
        "builtin:echo",
    );
    assert_eq!(echo(&server, &[("X-Scheme", "tls")])["url_scheme"], "https");
    assert_eq!(
        echo(&server, &[("Front-End-Https", "on")])["url_scheme"],
        "https"
    );
    assert_eq!(
        echo(&server, &[("X-Forwarded-Proto", "https")])["url_scheme"],
        "http",
        "the defaults were replaced"
    );
    let response = answered_then_closed(
        &server,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Scheme: tls\r\nFront-End-Https: off\r\n\r\n",
    );
    assert_eq!(response.status, 400);
    // An empty list believes no scheme field (a Forwarded proto= still counts).
    let none = class.start(&["--secure-scheme-headers", ""], "builtin:echo");
    assert_eq!(
        echo(&none, &[("X-Forwarded-Proto", "https")])["url_scheme"],
        "http"
    );
    assert_eq!(
        echo(&none, &[("Forwarded", "proto=https")])["url_scheme"],
        "https"
    );
}

/// The environ of `environ_dump:app` for one request.
fn environ(server: &Server, path: &str, headers: &[(&str, &str)]) -> serde_json::Value {
    let response = request(server, path, headers);
    assert_eq!(response.status, 200, "{response:?}\n{}", server.log());
    response.json()
}

fn wsgi_sees_the_forwarded_scheme_and_host_and_keeps_the_peer(class: Class) {
    let headers = [(
        "Forwarded",
        r#"for="[2001:db8::7]:4711";proto=https;host="shop.example:8443""#,
    )];
    let server = python::start(class, &["-w", "1"], "environ_dump:app");
    let env = environ(&server, "/", &headers);
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
    assert_eq!(env["HTTP_HOST"], "shop.example:8443", "{env}");
    assert_eq!(
        env["REMOTE_ADDR"], "127.0.0.1",
        "REMOTE_ADDR is the socket peer, as in Gunicorn: {env}"
    );
    assert_eq!(env["HTTP_FORWARDED"], headers[0].1, "{env}");
    let untrusted = python::start(
        class,
        &["-w", "1", UNTRUSTED[0], UNTRUSTED[1]],
        "environ_dump:app",
    );
    let env = environ(&untrusted, "/", &headers);
    assert_eq!(env["wsgi.url_scheme"], "http", "{env}");
    assert_eq!(
        env["HTTP_HOST"],
        untrusted.addr().host_header(),
        "the request's own Host: {env}"
    );
    assert_eq!(env["HTTP_FORWARDED"], headers[0].1, "{env}");
}

fn script_name_from_a_trusted_front_end_mounts_the_app(class: Class) {
    let headers = [("SCRIPT_NAME", "/shop")];
    let server = python::start(class, &["-w", "1"], "environ_dump:app");
    let env = environ(&server, "/shop/cart", &headers);
    assert_eq!(env["SCRIPT_NAME"], "/shop", "{env}");
    assert_eq!(env["PATH_INFO"], "/cart", "{env}");
    assert_eq!(env["HTTP_SCRIPT_NAME"], "/shop", "{env}");
    let untrusted = python::start(
        class,
        &["-w", "1", UNTRUSTED[0], UNTRUSTED[1]],
        "environ_dump:app",
    );
    let env = environ(&untrusted, "/shop/cart", &headers);
    assert_eq!(env["SCRIPT_NAME"], "", "{env}");
    assert_eq!(env["PATH_INFO"], "/shop/cart", "{env}");
    assert!(
        env.get("HTTP_SCRIPT_NAME").is_none(),
        "an untrusted peer's field with _ is dropped: {env}"
    );
}

fn forwarder_headers_lists_the_fields_a_front_end_may_set(class: Class) {
    let headers = [
        ("SCRIPT_NAME", "/shop"),
        ("REMOTE_USER", "alice"),
        ("X_Forwarded_For", "192.0.2.66"),
        ("X-Auth_Group", "staff"),
    ];
    let server = python::start(
        class,
        &[
            "-w",
            "1",
            "--forwarder-headers",
            "remote_user, X-Auth_Group",
        ],
        "environ_dump:app",
    );
    let env = environ(&server, "/shop/cart", &headers);
    assert_eq!(env["HTTP_REMOTE_USER"], "alice", "{env}");
    assert_eq!(
        env["HTTP_X_AUTH_GROUP"], "staff",
        "names compare as Gunicorn's: upper case, - kept: {env}"
    );
    assert_eq!(
        env["SCRIPT_NAME"], "",
        "SCRIPT_NAME is no longer listed: {env}"
    );
    assert!(env.get("HTTP_SCRIPT_NAME").is_none(), "{env}");
    assert!(
        env.get("HTTP_X_FORWARDED_FOR").is_none(),
        "X_Forwarded_For cannot pass for X-Forwarded-For: {env}"
    );
    // By default REMOTE_USER is not listed and is dropped.
    let default = python::start(class, &["-w", "1"], "environ_dump:app");
    let env = environ(&default, "/shop/cart", &headers);
    assert!(env.get("HTTP_REMOTE_USER").is_none(), "{env}");
    assert!(env.get("HTTP_X_AUTH_GROUP").is_none(), "{env}");
    assert_eq!(env["SCRIPT_NAME"], "/shop", "{env}");
}

/// `--forwarder-headers` changes only a Python app's environ: with a native
/// app a value other than the default would change nothing, so it is
/// refused at start with the reason (exit 4, a load error); the default
/// (and the same names given explicitly) start as before.
#[test]
fn forwarder_headers_with_a_native_app_is_refused() {
    let exited = Class::Sync
        .launch(&["--forwarder-headers", "REMOTE_USER"], "builtin:echo")
        .expect_exit(30.0);
    assert_eq!(exited.code(), 4, "{}", exited.log);
    assert!(
        exited.log.contains(
            "--forwarder-headers (forwarder_headers) only changes a Python (WSGI) app's environ"
        ) && exited.log.contains("'builtin:echo' is a native app"),
        "{}",
        exited.log
    );
    let server = Class::Sync.start(
        &["--forwarder-headers", "script_name,PATH_INFO"],
        "builtin:echo",
    );
    assert_eq!(echo(&server, &[])["method"], "GET");
}
