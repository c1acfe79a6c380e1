//! The bridge from the blocking HTTP driver to an [`App`], shared by every
//! blocking worker class (sync, gthread, green), so it exists once.
//!
//! [`ExchangeCall`] implements the app's [`Call`] over the driver's
//! [`Exchange`] and a worker's [`Host`]; [`call_app`] runs the app with
//! `catch_unwind` and logs what went wrong. The driver itself answers 500
//! when the app returns without starting a response. [`ThreadHost`] is the
//! host whose waits block the calling thread (sync, gthread); the green
//! class brings its own, whose waits yield the coroutine.

use std::any::Any;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use runicorn_http::{Exchange, Header, RequestHead};

use crate::contract::{App, AppError, Call, Host, LogLevel, Upstream};

/// An app's view of one exchange on the blocking driver.
pub struct ExchangeCall<'e, 'a> {
    exchange: &'e mut Exchange<'a>,
    host: &'e dyn Host,
    close_check: Option<&'e dyn Fn() -> bool>,
}

impl std::fmt::Debug for ExchangeCall<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeCall")
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

impl<'e, 'a> ExchangeCall<'e, 'a> {
    /// Wraps `exchange`, with `host` for the app's sleeps and connections.
    pub fn new(exchange: &'e mut Exchange<'a>, host: &'e dyn Host) -> Self {
        ExchangeCall {
            exchange,
            host,
            close_check: None,
        }
    }

    /// Asks `close_check` just before the response starts; when it says
    /// yes, the response carries `Connection: close` (a worker that began
    /// stopping while the app ran, as gthread's TERM and max-requests).
    pub fn with_close_check(mut self, close_check: &'e dyn Fn() -> bool) -> Self {
        self.close_check = Some(close_check);
        self
    }
}

impl Call for ExchangeCall<'_, '_> {
    fn head(&self) -> &RequestHead {
        self.exchange.head()
    }

    fn peer(&self) -> &str {
        self.exchange.peer()
    }

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.exchange.read_body(buf)
    }

    fn trailers(&self) -> &[Header] {
        self.exchange.trailers()
    }

    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        if self.close_check.is_some_and(|close_check| close_check()) {
            self.exchange.close_after();
        }
        self.exchange.start_response(status, headers)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.exchange.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.exchange.flush()
    }

    fn host(&self) -> &dyn Host {
        self.host
    }
}

/// Serves one request with `app` through `exchange`.
///
/// Logs the request at debug level first (Gunicorn's default `pre_request`
/// hook does the same). A panic is caught: it is logged, the connection is
/// closed after this response, and the error comes back with `panicked`
/// set, so the worker retires gracefully. When no response was started, the
/// driver answers 500 (for a failed app, a panic, or an app that simply
/// returned). Every failure is logged here, once.
pub fn call_app(
    app: &dyn App,
    exchange: &mut Exchange<'_>,
    host: &dyn Host,
) -> Result<(), AppError> {
    call_app_inner(app, exchange, host, None)
}

/// [`call_app`], asking `close_check` just before the response starts
/// whether it must carry `Connection: close` (see
/// [`ExchangeCall::with_close_check`]).
pub fn call_app_with_close_check(
    app: &dyn App,
    exchange: &mut Exchange<'_>,
    host: &dyn Host,
    close_check: &dyn Fn() -> bool,
) -> Result<(), AppError> {
    call_app_inner(app, exchange, host, Some(close_check))
}

fn call_app_inner(
    app: &dyn App,
    exchange: &mut Exchange<'_>,
    host: &dyn Host,
    close_check: Option<&dyn Fn() -> bool>,
) -> Result<(), AppError> {
    let target = exchange.head().target.clone();
    tracing::debug!("{} {}", exchange.head().method, target);
    let outcome = {
        let mut call = ExchangeCall::new(exchange, host);
        if let Some(close_check) = close_check {
            call = call.with_close_check(close_check);
        }
        catch_unwind(AssertUnwindSafe(|| app.call(&mut call)))
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
    match &result {
        Err(err) => tracing::error!("Error handling request {target}: {err}"),
        Ok(()) if !exchange.response_started() => {
            tracing::error!(
                "Error handling request {target}: the app returned without starting a response"
            );
        }
        Ok(()) => {}
    }
    result
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
    use runicorn_http::{ConnConfig, Connection, NoHooks, ServeMode};
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
        let mut handler = |exchange: &mut Exchange<'_>| {
            result = Some(call_app(app, exchange, &ThreadHost));
        };
        connection.serve(&mut handler, &mut NoHooks, ServeMode::Blocking);
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
