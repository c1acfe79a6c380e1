//! The driver, end to end in one process: a connection task over an
//! in-memory duplex stream (its writes counted), the real built-in apps,
//! the blocking pool for sync apps. The real binary is tested in
//! `tests/tests/async.rs`.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use runicorn_app::{AppError, Application, AsyncApp, AsyncCall, BoxFuture};
use runicorn_http::ConnConfig;
use runicorn_worker::{ShutdownState, Slot};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::{watch, Semaphore};

use crate::connection::Connection;
use crate::driver;
use crate::local::{Local, Serving};
use runicorn_worker::Shared;

/// The server's end of a duplex stream, counting the writes that moved bytes.
struct Counting {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Panics;

impl AsyncApp for Panics {
    fn call<'a>(&'a self, _call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async { panic!("boom in an async app") })
    }
}

struct Fixture {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    slot: Slot,
}

fn fixture(app: &str, max_requests: u64, config: ConnConfig) -> Fixture {
    let app = match app {
        "panics" => {
            let mut hello = runicorn_app::builtin::lookup("hello").unwrap();
            hello.asynch = Some(Arc::new(Panics));
            Application {
                name: "panics".to_owned(),
                ..hello
            }
        }
        name => runicorn_app::builtin::lookup(name).unwrap(),
    };
    let shared = Shared::in_process(app, config)
        .unwrap()
        .with_max_requests(max_requests);
    let slot = shared.slot.clone();
    let (stop, _) = watch::channel(false);
    Fixture {
        shared: Arc::new(shared),
        stop,
        slot,
    }
}

fn serving() -> Serving {
    Serving {
        permits: Arc::new(Semaphore::new(10)),
        log_requests: false,
    }
}

fn config() -> ConnConfig {
    ConnConfig {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        keepalive_timeout: Duration::from_millis(300),
        linger: Duration::from_millis(100),
        ..ConnConfig::default()
    }
}

/// Sends `request` (then half-closes), serves the connection to its end;
/// the response bytes and the server's write count.
async fn conn(fixture: &Fixture, request: &[u8]) -> (String, usize) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let stream = Counting {
        inner: server,
        writes: Arc::clone(&writes),
    };
    let local = Rc::new(Local::new(
        Arc::clone(&fixture.shared),
        serving(),
        fixture.stop.subscribe(),
    ));
    let (mut reader, mut writer) = tokio::io::split(client);
    writer.write_all(request).await.unwrap();
    writer.shutdown().await.unwrap();
    let serve = driver::serve(
        Connection::new(stream, "127.0.0.1:1".to_owned(), fixture.shared.config),
        local,
    );
    let read = async {
        let mut response = Vec::new();
        reader.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let ((), response) = tokio::join!(serve, read);
    (response, writes.load(Ordering::Relaxed))
}

const HELLO: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_in_one_write() {
    let fixture = fixture("echo", 0, config());
    let mut request = Vec::new();
    for path in ["/1", "/2", "/3"] {
        request.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let (response, writes) = conn(&fixture, &request).await;
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 3, "{response}");
    let first = response.find("\"/1\"").unwrap();
    let second = response.find("\"/2\"").unwrap();
    let third = response.find("\"/3\"").unwrap();
    assert!(first < second && second < third, "{response}");
    assert_eq!(writes, 1, "three responses, one write");
    assert_eq!(fixture.slot.requests_served(), 3);
}

#[tokio::test]
async fn async_apps_keep_the_connection_alive() {
    let fixture = fixture("hello", 0, config());
    let mut request = HELLO.to_vec();
    request.extend_from_slice(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    request.extend_from_slice(b"GET /last HTTP/1.0\r\n\r\n");
    let (response, _) = conn(&fixture, &request).await;
    assert_eq!(response.matches("Hello, World!").count(), 3, "{response}");
    assert_eq!(
        response.matches("Connection: keep-alive").count(),
        1,
        "{response}"
    );
    assert!(
        response.ends_with("Connection: close\r\n\r\nHello, World!"),
        "{response}"
    );
}

#[tokio::test]
async fn sync_apps_read_bodies_on_the_blocking_pool() {
    let fixture = fixture("echo", 0, config());
    let request = b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nT: z\r\n\r\n";
    let (response, _) = conn(&fixture, request).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"body_b64\":\"YWJjZGU=\""), "{response}");
    assert!(response.contains("[\"T\",\"z\"]"), "{response}");
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body() {
    let fixture = fixture("echo", 0, config());
    let request =
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
    let (response, _) = conn(&fixture, request).await;
    assert!(
        response.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"),
        "{response}"
    );
}

#[tokio::test]
async fn malformed_and_slow_heads_get_their_status_and_a_close() {
    let fixture = fixture("hello", 0, config());
    let (response, _) = conn(
        &fixture,
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Connection: close"), "{response}");

    // A head that never ends: 408 once the header timeout passes.
    let (client, server) = tokio::io::duplex(1 << 16);
    let local = Rc::new(Local::new(
        Arc::clone(&fixture.shared),
        serving(),
        fixture.stop.subscribe(),
    ));
    let (mut reader, mut writer) = tokio::io::split(client);
    writer.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
    let serve = driver::serve(
        Connection::new(server, String::new(), fixture.shared.config),
        local,
    );
    let read = async {
        let mut response = Vec::new();
        reader.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let ((), response) = tokio::join!(serve, read);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
}

#[tokio::test]
async fn a_panicking_app_gets_500_and_retires_the_worker() {
    let fixture = fixture("panics", 0, config());
    let mut request = HELLO.to_vec();
    request.extend_from_slice(HELLO);
    let (response, _) = conn(&fixture, &request).await;
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    assert_eq!(
        response.matches("HTTP/1.1").count(),
        1,
        "closed after the 500"
    );
    assert_eq!(fixture.shared.shutdown.state(), ShutdownState::Graceful);
}

#[tokio::test]
async fn max_requests_closes_after_the_last_and_stops_gracefully() {
    let fixture = fixture("hello", 2, config());
    let mut request = HELLO.to_vec();
    request.extend_from_slice(HELLO);
    request.extend_from_slice(HELLO);
    let (response, _) = conn(&fixture, &request).await;
    assert_eq!(response.matches("HTTP/1.1 200").count(), 2, "{response}");
    assert!(
        response.ends_with("Connection: close\r\n\r\nHello, World!"),
        "{response}"
    );
    assert_eq!(fixture.shared.shutdown.state(), ShutdownState::Graceful);
}

#[tokio::test]
async fn a_graceful_stop_answers_the_next_request_of_an_idle_connection_and_closes() {
    let mut config = config();
    config.keepalive_timeout = Duration::from_secs(30);
    let fixture = fixture("hello", 0, config);
    let (client, server) = tokio::io::duplex(1 << 16);
    let local = Rc::new(Local::new(
        Arc::clone(&fixture.shared),
        serving(),
        fixture.stop.subscribe(),
    ));
    let (mut reader, mut writer) = tokio::io::split(client);
    writer.write_all(HELLO).await.unwrap();
    let mut conn = Connection::new(server, String::new(), fixture.shared.config);
    conn.state
        .watch_retirement(fixture.shared.shutdown.retirement());
    let serve = driver::serve(conn, Rc::clone(&local));
    let client = async {
        let mut first = vec![0u8; 4096];
        let read = reader.read(&mut first).await.unwrap();
        let first = String::from_utf8_lossy(&first[..read]).into_owned();
        assert!(first.ends_with("Hello, World!") && !first.contains("close"));
        // The connection is idle when the worker retires: it is not closed
        // under a client that may be sending; its next request is answered.
        fixture.shared.shutdown.request_graceful();
        let _ = fixture.stop.send(true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.write_all(HELLO).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut rest))
            .await
            .expect("closed after the answer")
            .unwrap();
        String::from_utf8_lossy(&rest).into_owned()
    };
    let ((), rest) = tokio::join!(serve, client);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("Connection: close\r\n"), "{rest}");
}
