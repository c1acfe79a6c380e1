//! The bridge from the blocking HTTP driver to an [`App`], shared by every
//! blocking worker class (sync, gthread, green), so it exists once.
//!
//! [`ExchangeCall`] implements the app's [`Call`] over the driver's
//! [`Exchange`] and a worker's [`Host`]; [`call_app`] reads what a trusted
//! front end's forwarding fields say ([`Endpoint`]: the listener's address
//! and the worker's [`ForwardedPolicy`]), runs the app with `catch_unwind`
//! and logs what went wrong. The driver itself answers 500 when the app
//! returns without starting a response. [`ThreadHost`] is the host whose
//! waits block the calling thread (sync, gthread); the green class brings
//! its own, whose waits yield the coroutine.

use std::any::Any;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use runicorn_http::{
    reason, Exchange, Forwarded, ForwardedPolicy, Header, ParseError, RequestHead,
};

use crate::contract::{App, AppError, Call, Host, LogLevel, Upstream};

/// What a worker class knows about a connection beyond its exchange: the
/// listening socket it arrived on, and whom to believe about where it came
/// from.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The listener's address, as [`Call::server_addr`] gives it.
    pub server_addr: &'a str,
    /// The worker's trust in `Forwarded` and `X-Forwarded-*` fields.
    pub forwarded: &'a ForwardedPolicy,
}

/// An app's view of one exchange on the blocking driver.
pub struct ExchangeCall<'e, 'a> {
    exchange: &'e mut Exchange<'a>,
    host: &'e dyn Host,
    forwarded: Forwarded,
    server_addr: &'e str,
    client_fault: Option<ClientFault>,
}

impl std::fmt::Debug for ExchangeCall<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeCall")
            .field("exchange", &self.exchange)
            .field("forwarded", &self.forwarded)
            .field("server_addr", &self.server_addr)
            .finish_non_exhaustive()
    }
}

impl<'e, 'a> ExchangeCall<'e, 'a> {
    /// Wraps `exchange`, with `host` for the app's sleeps and connections;
    /// `forwarded` is what [`ForwardedPolicy::resolve`] made of the request,
    /// `server_addr` the listener's address.
    pub fn new(
        exchange: &'e mut Exchange<'a>,
        host: &'e dyn Host,
        forwarded: Forwarded,
        server_addr: &'e str,
    ) -> Self {
        ExchangeCall {
            exchange,
            host,
            forwarded,
            server_addr,
            client_fault: None,
        }
    }

    /// Set once a read or write failed through the client's doing: an app
    /// that fails after that failed because of it.
    pub fn client_fault(&self) -> Option<ClientFault> {
        self.client_fault
    }

    /// Notes a client I/O failure that is the client's doing.
    fn noted<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(err) = &result {
            self.client_fault = self.client_fault.or(ClientFault::of(err));
        }
        result
    }
}

/// A request that failed through its client's doing, not the app's: logged
/// at debug level, as Gunicorn logs them, so ERROR stays for the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// The client went away: closed mid-body, reset, or stopped reading
    /// (Gunicorn: `Ignored premature client disconnection`, `Ignoring EPIPE`).
    Gone,
    /// The body broke its framing (a bad chunk, over the body limit): the
    /// driver answers its 4xx.
    BadBody,
    /// The client was too slow: a body read past `--body-timeout` or
    /// under `--body-min-rate` (the driver answers 408), or a write that
    /// made no progress for `--write-timeout`.
    Slow,
}

impl ClientFault {
    /// What an error from the client connection (`read_body`, `write`,
    /// `flush`) says about the client, if anything.
    pub fn of(err: &io::Error) -> Option<ClientFault> {
        match err.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected => Some(ClientFault::Gone),
            io::ErrorKind::InvalidData => Some(ClientFault::BadBody),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Some(ClientFault::Slow),
            _ => None,
        }
    }

    /// Logs, at debug level, an app failure this fault caused.
    pub fn log(self, target: &str, peer: &str, err: &AppError) {
        match self {
            ClientFault::Gone => {
                tracing::debug!("Ignored premature client disconnection. {target}: {err}");
            }
            ClientFault::BadBody => log_invalid_request(peer, err),
            ClientFault::Slow => {
                tracing::debug!("Client too slow, timed out. {target}: {err}");
            }
        }
    }
}

impl Call for ExchangeCall<'_, '_> {
    fn head(&self) -> &RequestHead {
        self.exchange.head()
    }

    fn peer(&self) -> &str {
        self.exchange.peer()
    }

    fn url_scheme(&self) -> &str {
        self.forwarded.scheme.as_str()
    }

    fn client_addr(&self) -> &str {
        match &self.forwarded.client {
            Some(client) => client,
            None => self.exchange.peer(),
        }
    }

    fn forwarded_host(&self) -> Option<&str> {
        self.forwarded.host.as_deref()
    }

    fn proxy_protocol(&self) -> Option<&str> {
        self.exchange.proxied().map(|proxied| proxied.protocol)
    }

    fn proxy_addr(&self) -> Option<&str> {
        self.exchange
            .proxied()
            .map(|proxied| proxied.proxy_addr.as_str())
            .filter(|addr| !addr.is_empty())
    }

    fn server_addr(&self) -> &str {
        self.server_addr
    }

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.exchange.read_body(buf);
        self.noted(result)
    }

    fn trailers(&self) -> &[Header] {
        self.exchange.trailers()
    }

    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        self.exchange.start_response(status, headers)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let result = self.exchange.write(data);
        self.noted(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.exchange.flush();
        self.noted(result)
    }

    fn host(&self) -> &dyn Host {
        self.host
    }
}

/// Serves one request with `app` through `exchange`.
///
/// First the request's forwarding fields are read under `endpoint`'s
/// policy: contradictory scheme fields from a trusted front end are
/// answered 400 (and the connection closed) without calling the app.
/// Logs the request at debug level (Gunicorn's default `pre_request` hook
/// does the same). A panic is caught: it is logged, the connection is
/// closed after this response, and the error comes back with `panicked`
/// set, so the worker retires gracefully. When no response was started, the
/// driver answers 500 (for a failed app, a panic, or an app that simply
/// returned). Every failure is logged here, once: at error level for the
/// app's, at debug level for a client that went away mid-request.
pub fn call_app(
    app: &dyn App,
    exchange: &mut Exchange<'_>,
    host: &dyn Host,
    endpoint: &Endpoint<'_>,
) -> Result<(), AppError> {
    let forwarded = match endpoint.forwarded.resolve(exchange.head(), exchange.peer()) {
        Ok(forwarded) => forwarded,
        Err(err) => {
            reject(exchange, &err);
            return Ok(());
        }
    };
    tracing::debug!("{} {}", exchange.head().method, exchange.head().target);
    let (outcome, client_fault) = {
        let mut call = ExchangeCall::new(exchange, host, forwarded, endpoint.server_addr);
        let outcome = catch_unwind(AssertUnwindSafe(|| app.call(&mut call)));
        (outcome, call.client_fault())
    };
    let result = match outcome {
        Ok(result) => result,
        Err(payload) => {
            exchange.close_after();
            Err(AppError {
                message: format!("the app panicked: {}", panic_message(&*payload)),
                panicked: true,
            })
        }
    };
    if result.is_err() && exchange.response_started() {
        // A body cut short must not be ended as if it were complete.
        exchange.fail_response();
    }
    // The head is the request's until the next one is parsed: borrowed
    // for the log lines, not copied per request.
    let target = &exchange.head().target;
    let method = &exchange.head().method;
    match (&result, client_fault) {
        (Err(err), Some(fault)) if !err.panicked => fault.log(target, exchange.peer(), err),
        (Err(err), _) => tracing::error!(
            method = %method,
            target = %target,
            peer = exchange.peer(),
            "Error handling request {target}: {err}"
        ),
        (Ok(()), None) if !exchange.response_started() => {
            tracing::error!(
                method = %method,
                target = %target,
                peer = exchange.peer(),
                "Error handling request {target}: the app returned without starting a response"
            );
        }
        (Ok(()), _) => {}
    }
    result
}

/// Answers a request refused before the app saw it with its status, as the
/// driver answers a bad head (a one-line reason), and closes the connection.
fn reject(exchange: &mut Exchange<'_>, err: &ParseError) {
    log_invalid_request(exchange.peer(), err);
    exchange.close_after();
    let status = err.status();
    let body = format!("{}\n", reason(status));
    let length = body.len().to_string();
    let headers: [(&str, &[u8]); 2] = [
        ("Content-Type", b"text/plain"),
        ("Content-Length", length.as_bytes()),
    ];
    if exchange.start_response(status, &headers).is_ok() {
        let _ = exchange.write(body.as_bytes());
    }
}

/// Gunicorn's line for a request refused as malformed (debug level):
/// `Invalid request from ip=PEER: REASON`, `unix socket` for a unix peer.
/// Every worker class logs a bad request with this one line.
pub fn log_invalid_request(peer: &str, err: &dyn std::fmt::Display) {
    let peer = if peer.is_empty() { "unix socket" } else { peer };
    tracing::debug!(peer, "Invalid request from ip={peer}: {err}");
}

/// The text of a panic payload (`&str` or `String`), else a placeholder.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// How long [`ThreadHost::connect`] waits for each address, and each read
/// or write on the upstream waits.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Host services that block the calling thread: the sync and gthread classes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadHost;

/// A std TCP connection to an upstream.
#[derive(Debug)]
pub struct TcpUpstream(pub TcpStream);

impl Upstream for TcpUpstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        Write::write_all(&mut self.0, data)
    }
}

/// Connects to `addr` (`host:port`), trying each resolved address in turn,
/// with [`UPSTREAM_TIMEOUT`] on the connect and on every read and write.
pub fn connect_tcp(addr: &str) -> io::Result<TcpStream> {
    let stream = connect_first(addr, |resolved| {
        TcpStream::connect_timeout(resolved, UPSTREAM_TIMEOUT)
    })?;
    stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The first of the addresses `addr` (`host:port`) resolves to that
/// `connect` reaches, tried in turn; else the last error. Every host's
/// upstream connect shares this, whatever its stream type.
pub fn connect_first<S>(
    addr: &str,
    mut connect: impl FnMut(&SocketAddr) -> io::Result<S>,
) -> io::Result<S> {
    let mut last_error = None;
    for resolved in addr.to_socket_addrs()? {
        match connect(&resolved) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{addr} resolved to no address"),
        )
    }))
}

/// Logs an app's line through the worker's error log.
pub fn log_line(level: LogLevel, message: &str) {
    match level {
        LogLevel::Debug => tracing::debug!("{message}"),
        LogLevel::Info => tracing::info!("{message}"),
        LogLevel::Warning => tracing::warn!("{message}"),
        LogLevel::Error => tracing::error!("{message}"),
    }
}

impl Host for ThreadHost {
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn connect(&self, addr: &str) -> io::Result<Box<dyn Upstream>> {
        Ok(Box::new(TcpUpstream(connect_tcp(addr)?)))
    }

    fn log(&self, level: LogLevel, message: &str) {
        log_line(level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_http::{ConnConfig, Connection, NoBookkeeping, ServeMode};
    use std::net::TcpListener;

    /// Runs `app` on one request over a real loopback connection and
    /// returns the raw response and what `call_app` returned.
    fn serve(app: &dyn App, request: &[u8]) -> (String, Result<(), AppError>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let request = request.to_vec();
        let client = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(&request).unwrap();
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            String::from_utf8_lossy(&response).into_owned()
        });
        let (stream, _) = listener.accept().unwrap();
        let config = ConnConfig {
            keep_alive: false,
            ..ConnConfig::default()
        };
        let mut connection = Connection::new(stream, "127.0.0.1:1", config);
        let mut result = None;
        let policy = ForwardedPolicy::default();
        let endpoint = Endpoint {
            server_addr: "127.0.0.1:8000",
            forwarded: &policy,
        };
        let mut handler = |exchange: &mut Exchange<'_>| {
            result = Some(call_app(app, exchange, &ThreadHost, &endpoint));
        };
        connection.serve(&mut handler, &mut NoBookkeeping, ServeMode::Blocking);
        drop(connection);
        (client.join().unwrap(), result.expect("the app was called"))
    }

    struct Panics;
    impl App for Panics {
        fn call(&self, _call: &mut dyn Call) -> Result<(), AppError> {
            panic!("boom at {}", 42)
        }
    }

    struct Silent;
    impl App for Silent {
        fn call(&self, _call: &mut dyn Call) -> Result<(), AppError> {
            Ok(())
        }
    }

    struct Fails;
    impl App for Fails {
        fn call(&self, _call: &mut dyn Call) -> Result<(), AppError> {
            Err(AppError::new("database is down"))
        }
    }

    #[test]
    fn hello_is_served_through_the_bridge() {
        let app = crate::builtin::lookup("hello").unwrap();
        let (response, result) = serve(&*app.sync, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(result.is_ok());
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("Hello, World!"), "{response}");
    }

    #[test]
    fn echo_reads_the_body_through_the_bridge() {
        let app = crate::builtin::lookup("echo").unwrap();
        let (response, result) = serve(
            &*app.sync,
            b"POST /e?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(result.is_ok());
        assert!(response.contains("\"body_b64\":\"YWJj\""), "{response}");
        assert!(response.contains("\"query\":\"q=1\""), "{response}");
    }

    #[test]
    fn a_panic_is_a_500_and_flags_the_worker() {
        let (response, result) = serve(&Panics, b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n");
        let err = result.unwrap_err();
        assert!(err.panicked);
        assert!(err.message.contains("boom at 42"), "{}", err.message);
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    }

    #[test]
    fn no_response_or_an_error_is_a_500() {
        let (response, result) = serve(&Silent, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(result.is_ok());
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
        let (response, result) = serve(&Fails, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!result.unwrap_err().panicked);
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    }

    fn echo(request: &[u8]) -> (String, serde_json::Value) {
        let app = crate::builtin::lookup("echo").unwrap();
        let (response, result) = serve(&*app.sync, request);
        assert!(result.is_ok());
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json = serde_json::from_str(body).unwrap_or_default();
        (response, json)
    }

    #[test]
    fn a_trusted_front_end_sets_the_scheme_and_the_client() {
        let (response, json) = echo(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\
              X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(json["url_scheme"], "https");
        assert_eq!(json["client_addr"], "203.0.113.7");
        assert_eq!(json["peer"], "127.0.0.1:1");
        assert_eq!(json["server_addr"], "127.0.0.1:8000");
        let (_, plain) = echo(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(plain["url_scheme"], "http");
        assert_eq!(plain["client_addr"], "127.0.0.1:1");
    }

    #[test]
    fn contradictory_scheme_fields_are_a_400_without_the_app() {
        let (response, result) = serve(
            &Panics,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Proto: http\r\n\r\n",
        );
        assert!(result.is_ok(), "the app is not called");
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        assert!(response.contains("Connection: close"), "{response}");
        assert!(response.ends_with("Bad Request\n"), "{response}");
    }

    #[test]
    fn the_thread_host_connects_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut line = [0u8; 19];
            stream.read_exact(&mut line).unwrap();
            stream.write_all(b"pong\n").unwrap();
            line
        });
        let mut conn = ThreadHost.connect(&addr.to_string()).unwrap();
        conn.write_all(b"ping from runicorn\n").unwrap();
        let mut reply = [0u8; 5];
        let mut got = 0;
        while got < reply.len() {
            got += conn.read(&mut reply[got..]).unwrap();
        }
        assert_eq!(&reply, b"pong\n");
        assert_eq!(&upstream.join().unwrap(), b"ping from runicorn\n");
        // A port that was just free: bind port 0, note it, close it. A fixed
        // port (say 1) may be in use on a shared machine.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(ThreadHost.connect(&closed.to_string()).is_err());
    }

    #[test]
    fn panic_messages_are_extracted() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&42u8), "a non-string panic payload");
    }
}
