//! What a user moving from Gunicorn must see the same way (issue 11), under
//! every worker class: forwarding headers believed only from trusted front
//! ends. Each server binds `127.0.0.1:0` or a unix socket in a temp dir and
//! is killed (its whole process group) when the test ends, also on failure.

use runicorn_tests::scenario::answered_then_closed;
use runicorn_tests::{Class, Conn, Response, Server};

const FORWARDED: &[(&str, &str)] = &[
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-For", "198.51.100.2, 203.0.113.7"),
];

const CONTRADICTORY: &[u8] =
    b"GET /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Proto: http\r\n\r\n";

fn echo(server: &Server, headers: &[(&str, &str)]) -> (Response, serde_json::Value) {
    let mut conn = Conn::connect(server.addr()).expect("connect");
    let response = conn
        .request("GET", "/", headers, b"")
        .unwrap_or_else(|err| panic!("{err}\n{}", server.log()));
    assert_eq!(response.status, 200, "{response:?}\n{}", server.log());
    let json = response.json();
    (response, json)
}

fn header_seen(json: &serde_json::Value, name: &str) -> bool {
    json["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .any(|field| field[0] == name)
}

#[test]
fn a_trusted_front_end_sets_the_scheme_and_the_client_under_every_class() {
    for class in Class::ALL {
        // The default `forwarded_allow_ips` (127.0.0.1,::1) trusts this client.
        let server = class.start(&[], "builtin:echo");
        let listening = server.addr().tcp().to_string();
        let (_, json) = echo(&server, FORWARDED);
        assert_eq!(json["url_scheme"], "https", "{class:?}: {json}");
        assert_eq!(json["client_addr"], "203.0.113.7", "{class:?}: {json}");
        let peer = json["peer"].as_str().unwrap().to_owned();
        assert!(peer.starts_with("127.0.0.1:"), "{class:?}: {json}");
        assert_eq!(json["server_addr"], listening, "{class:?}: {json}");
        assert!(header_seen(&json, "X-Forwarded-For"), "{class:?}: {json}");

        let (_, plain) = echo(&server, &[]);
        assert_eq!(plain["url_scheme"], "http", "{class:?}: {plain}");
        assert_eq!(plain["client_addr"], plain["peer"], "{class:?}: {plain}");

        let refused = answered_then_closed(&server, CONTRADICTORY);
        assert_eq!(refused.status, 400, "{class:?}: {refused:?}");
        assert_eq!(refused.text(), "Bad Request\n", "{class:?}");
    }
}

#[test]
fn an_untrusted_peer_s_forwarding_headers_pass_through_unbelieved_under_every_class() {
    for class in Class::ALL {
        let server = class.start(&["--forwarded-allow-ips", "10.0.0.0/8"], "builtin:echo");
        let (_, json) = echo(&server, FORWARDED);
        assert_eq!(json["url_scheme"], "http", "{class:?}: {json}");
        assert_eq!(json["client_addr"], json["peer"], "{class:?}: {json}");
        assert!(header_seen(&json, "X-Forwarded-Proto"), "{class:?}: {json}");
        assert!(header_seen(&json, "X-Forwarded-For"), "{class:?}: {json}");
        // Contradictions from a peer nobody believes change nothing.
        let mut conn = Conn::connect(server.addr()).expect("connect");
        conn.send(CONTRADICTORY).expect("send");
        let response = conn.read_final_response(false).expect("an answer");
        assert_eq!(response.status, 200, "{class:?}: {response:?}");
    }
}

#[test]
fn unix_socket_peers_are_trusted_and_told_the_socket_path_under_every_class() {
    for class in Class::ALL {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("front.sock");
        let bind = format!("unix:{}", socket.display());
        // A trust list that names no address: unix peers are trusted anyway.
        let server = Server::start([
            "-k",
            class.name(),
            "-b",
            &bind,
            "--forwarded-allow-ips",
            "192.0.2.1",
            "builtin:echo",
        ]);
        let (_, json) = echo(&server, FORWARDED);
        assert_eq!(json["url_scheme"], "https", "{class:?}: {json}");
        assert_eq!(json["client_addr"], "203.0.113.7", "{class:?}: {json}");
        assert_eq!(json["peer"], "", "{class:?}: {json}");
        assert_eq!(
            json["server_addr"],
            socket.display().to_string(),
            "{class:?}: {json}"
        );
    }
}

#[test]
fn secure_scheme_headers_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runicorn.toml");
    std::fs::write(
        &config,
        "forwarded_allow_ips = \"*\"\n[secure_scheme_headers]\nX-SCHEME = \"tls\"\n",
    )
    .unwrap();
    let config = config.display().to_string();
    for class in Class::ALL {
        let server = class.start(&["-c", &config], "builtin:echo");
        let (_, custom) = echo(&server, &[("X-Scheme", "tls")]);
        assert_eq!(custom["url_scheme"], "https", "{class:?}: {custom}");
        // The defaults were replaced: X-Forwarded-Proto means nothing now.
        let (_, default) = echo(&server, &[("X-Forwarded-Proto", "https")]);
        assert_eq!(default["url_scheme"], "http", "{class:?}: {default}");
    }
}
