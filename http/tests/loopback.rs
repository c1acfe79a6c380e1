//! The blocking driver over real sockets on 127.0.0.1 and a unix socket
//! pair: keep-alive, the idle timeout, the head deadline, and a 413 sent
//! to a client that is still sending (answered, then a lingering close).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use runicorn_http::{
    ConnConfig, Connection, Exchange, Limits, NoBookkeeping, Outcome, ServeMode, Transport,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

fn hello(exchange: &mut Exchange<'_>) {
    exchange
        .start_response(200, &[("Content-Length", b"5")])
        .unwrap();
    exchange.write(b"hello").unwrap();
}

/// Serve one accepted connection on a thread; returns the address and the
/// thread, whose result is the outcome and how long serving took.
fn serve_one(
    config: ConnConfig,
) -> (
    std::net::SocketAddr,
    thread::JoinHandle<(Outcome, Duration)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, peer) = listener.accept().unwrap();
        let started = Instant::now();
        let mut conn = Connection::new(stream, peer.to_string(), config);
        let mut handler = hello;
        let outcome = conn.serve(&mut handler, &mut NoBookkeeping, ServeMode::Blocking);
        (outcome, started.elapsed())
    });
    (addr, server)
}

fn client(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// Read until end of stream (bounded by the client timeout).
fn read_to_end(stream: &mut impl Read) -> String {
    let mut text = Vec::new();
    let _ = stream.read_to_end(&mut text);
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn keep_alive_then_idle_timeout_closes() {
    let config = ConnConfig {
        keepalive_timeout: Duration::from_millis(200),
        ..ConnConfig::default()
    };
    let (addr, server) = serve_one(config);
    let mut stream = client(addr);
    stream
        .write_all(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let text = read_to_end(&mut stream);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    let (outcome, elapsed) = server.join().unwrap();
    assert_eq!(outcome, Outcome::Close);
    assert!(elapsed < CLIENT_TIMEOUT, "the idle timeout closed it");
}

#[test]
fn a_stalled_head_gets_408_at_the_header_timeout() {
    let config = ConnConfig {
        header_timeout: Duration::from_millis(300),
        ..ConnConfig::default()
    };
    let (addr, server) = serve_one(config);
    let mut stream = client(addr);
    stream.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    let text = read_to_end(&mut stream);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert_eq!(server.join().unwrap().0, Outcome::Close);
}

#[test]
fn a_client_still_sending_reads_its_413() {
    let limits = Limits::from_settings(4094, 100, 8190, 1000);
    let (addr, server) = serve_one(ConnConfig::new(limits));
    let mut stream = client(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n")
        .unwrap();
    // Keep sending the body the server will never read.
    let mut writer = stream.try_clone().unwrap();
    writer.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let sender = thread::spawn(move || {
        let chunk = [b'x'; 8192];
        for _ in 0..24 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    // Read only after the server closed (and lingered). Note: on Linux
    // loopback this passes even without the linger (the reset does not
    // drop data already queued here), so it checks the behaviour, not the
    // need for it.
    sender.join().unwrap();
    assert_eq!(server.join().unwrap().0, Outcome::Close);
    let text = read_to_end(&mut stream);
    assert!(
        text.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{text}"
    );
}

#[test]
fn unix_stream_serves_and_honours_connection_close() {
    let (mut client, server) = UnixStream::pair().unwrap();
    client.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let worker = thread::spawn(move || {
        let mut conn = Connection::new(server, "", ConnConfig::default());
        let mut handler = |exchange: &mut Exchange<'_>| {
            let peer = exchange.peer().to_owned();
            exchange.start_response(200, &[]).unwrap();
            exchange.write(format!("peer=[{peer}]").as_bytes()).unwrap();
        };
        conn.serve(&mut handler, &mut NoBookkeeping, ServeMode::Blocking)
    });
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = read_to_end(&mut client);
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("7\r\npeer=[]\r\n0\r\n\r\n"), "{text}");
    assert_eq!(worker.join().unwrap(), Outcome::Close);
}

#[test]
fn transport_is_implemented_for_std_streams() {
    fn assert_transport<T: Transport>() {}
    assert_transport::<TcpStream>();
    assert_transport::<UnixStream>();
    assert_transport::<&mut TcpStream>();
    assert_transport::<Box<dyn Transport + Send>>();
}
