//! End-to-end tests of the master and the sync worker (issue 3).

use runicorn_tests::{get, Server};

#[test]
fn two_workers_serve_hello() {
    let server = Server::start(["-w", "2", "-b", "127.0.0.1:0", "builtin:hello"]);
    let response = get(server.addr(), "/").expect("GET /");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "Hello, World!");
    server.wait_workers(2, 10.0);
}
