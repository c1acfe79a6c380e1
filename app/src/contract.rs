//! The traits between an app and the worker class that serves it.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use runicorn_http::{Header, RequestHead};

/// A boxed future that need not be `Send`: each async runtime is a
/// `current_thread` one, so app futures stay on the thread that made them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Why an app failed a request or a worker. The worker answers 500 (when no
/// response has started) and logs the message.
#[derive(Debug)]
pub struct AppError {
    /// What went wrong, lowercase, for the error log.
    pub message: String,
    /// A panic was caught: the worker must be recycled after this request.
    pub panicked: bool,
}

impl AppError {
    /// An ordinary failure of one request.
    pub fn new(message: impl Into<String>) -> Self {
        AppError {
            message: message.into(),
            panicked: false,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl From<io::Error> for AppError {
    fn from(err: io::Error) -> Self {
        AppError::new(format!("i/o error: {err}"))
    }
}

/// Log levels an app may log at through the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `[DEBUG]`
    Debug,
    /// `[INFO]`
    Info,
    /// `[WARNING]`
    Warning,
    /// `[ERROR]`
    Error,
}

/// A TCP connection to an upstream, opened through the host so that its
/// waits are the worker class's kind of wait.
pub trait Upstream: Send {
    /// Read into `buf`; 0 is end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write all of `data`.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
}

/// Facts about the worker an app runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The worker's pid.
    pub pid: u32,
    /// The worker class name (`sync`, `gthread`, `green`, `async`, ...).
    pub worker_class: String,
    /// The worker's age (its spawn order, as Gunicorn's `worker.age`).
    pub age: u64,
}

/// Host services whose blocking behaviour the worker class decides.
pub trait Host: Send + Sync {
    /// Sleep: blocks a thread (sync, gthread), yields a coroutine (green).
    fn sleep(&self, duration: Duration);
    /// Open a TCP connection to `addr` (`host:port`).
    fn connect(&self, addr: &str) -> io::Result<Box<dyn Upstream>>;
    /// Write one line to the error log.
    fn log(&self, level: LogLevel, message: &str);
}

/// One request/response exchange, blocking semantics.
///
/// The worker class implements this over its connection driver. The first
/// `read_body` sends `100 Continue` when the client asked for it.
pub trait Call {
    /// The request line and header fields.
    fn head(&self) -> &RequestHead;
    /// The socket peer's address as text (`127.0.0.1:5678`, `[::1]:5678`,
    /// or `""` for unix sockets): Gunicorn's `REMOTE_ADDR` and `REMOTE_PORT`.
    /// Behind a proxy this is the proxy; see [`Call::client_addr`].
    fn peer(&self) -> &str;
    /// The URL scheme the app should see, `"http"` or `"https"`: `"https"`
    /// when a peer trusted by `--forwarded-allow-ips` says so in one of the
    /// `secure_scheme_headers` (Gunicorn's `wsgi.url_scheme`).
    fn url_scheme(&self) -> &str {
        "http"
    }
    /// The client's address: the bare IP from `Forwarded`'s `for=` or
    /// `X-Forwarded-For` when the peer is trusted by `--forwarded-allow-ips`
    /// and sent one (or `unknown` / an obfuscated `_identifier` a trusted
    /// `Forwarded` gave), else the same text as [`Call::peer`]. The socket
    /// peer is never replaced.
    fn client_addr(&self) -> &str {
        self.peer()
    }
    /// The host the client asked for (`host[:port]`) when a peer trusted by
    /// `--forwarded-allow-ips` said so in a `Forwarded` field's `host=`
    /// (RFC 7239); `None` otherwise (the `Host` field is in [`Call::head`]).
    fn forwarded_host(&self) -> Option<&str> {
        None
    }
    /// What the connection's PROXY protocol header (`--proxy-protocol`)
    /// said it is, as Gunicorn's `PROXY_PROTOCOL`: `TCP4`, `TCP6`,
    /// `UNKNOWN` (v1), `LOCAL`, `UNSPEC` or `UNIX` (v2); `None` when the
    /// connection had no header. The client it named is [`Call::peer`].
    fn proxy_protocol(&self) -> Option<&str> {
        None
    }
    /// The address the client connected to according to the PROXY header,
    /// the proxy's own (`192.0.2.1:443`, `[2001:db8::1]:443`), for
    /// Gunicorn's `PROXY_ADDR` and `PROXY_PORT`; `None` when there was no
    /// header or it named no addresses (`UNKNOWN`, `LOCAL`, ...).
    fn proxy_addr(&self) -> Option<&str> {
        None
    }
    /// The address of the listening socket the connection arrived on
    /// (`127.0.0.1:8000`, `[::1]:8000`, `0.0.0.0:8000`, or the unix socket's
    /// path), for Gunicorn's `SERVER_NAME` and `SERVER_PORT`; `""` when the
    /// worker class does not know it.
    fn server_addr(&self) -> &str {
        ""
    }
    /// Read request body bytes; `Ok(0)` at the end of the body.
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Trailer fields of a chunked body, once the body has been read to its end.
    fn trailers(&self) -> &[Header];
    /// Start the response. `Content-Length` among `headers` fixes the framing;
    /// without it a 1.1 response is chunked. Hop-by-hop and invalid headers
    /// are refused with an error.
    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()>;
    /// Write response body bytes (after `start_response`).
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Push buffered response bytes to the client now (streaming apps).
    /// Drivers that never buffer need not override it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Send `count` bytes of `file` from `offset` as response body (after
    /// `start_response`). The default reads and writes through [`Call::write`],
    /// so it works under every worker class; a driver may use `sendfile(2)`.
    fn sendfile(&mut self, file: &File, offset: u64, count: u64) -> io::Result<()> {
        send_file_by_copy(self, file, offset, count)
    }
    /// The host services of this worker class.
    fn host(&self) -> &dyn Host;
}

/// [`Call::sendfile`]'s default: positioned reads of 64 KiB, each written
/// as body. Fails if the file ends before `count` bytes.
pub fn send_file_by_copy<C: Call + ?Sized>(
    call: &mut C,
    file: &File,
    offset: u64,
    count: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut position = offset;
    let end = offset.saturating_add(count);
    while position < end {
        let want = usize::try_from(end - position)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let read = file.read_at(&mut buf[..want], position)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than the count to send",
            ));
        }
        call.write(&buf[..read])?;
        position += read as u64;
    }
    Ok(())
}

/// An app with blocking semantics. The built-in apps and every library app
/// implement it.
pub trait App: Send + Sync + 'static {
    /// Serve one request. Returning without starting a response is a 500.
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError>;
    /// Called once in each worker after fork, before it serves: the only place
    /// an app may start threads or open connections.
    fn init_worker(&self, _info: &WorkerInfo) -> Result<(), AppError> {
        Ok(())
    }
    /// Called once when the worker exits cleanly.
    fn shutdown_worker(&self) {}
    /// True when the app waits without the host (its own blocking I/O, an
    /// embedded interpreter): a coroutine worker class then calls it on a
    /// thread pool instead of a coroutine, where a blocked thread would
    /// stall every other connection on it.
    fn blocks_thread(&self) -> bool {
        false
    }
}

/// One exchange for an async app. Futures need not be `Send`.
pub trait AsyncCall {
    /// The request line and header fields.
    fn head(&self) -> &RequestHead;
    /// The socket peer's address as text, as [`Call::peer`].
    fn peer(&self) -> &str;
    /// The URL scheme the app should see, as [`Call::url_scheme`].
    fn url_scheme(&self) -> &str {
        "http"
    }
    /// The client's address, as [`Call::client_addr`].
    fn client_addr(&self) -> &str {
        self.peer()
    }
    /// The host a trusted front end said the client asked for, as
    /// [`Call::forwarded_host`].
    fn forwarded_host(&self) -> Option<&str> {
        None
    }
    /// The connection's PROXY header's protocol, as [`Call::proxy_protocol`].
    fn proxy_protocol(&self) -> Option<&str> {
        None
    }
    /// The proxy's own address the header named, as [`Call::proxy_addr`].
    fn proxy_addr(&self) -> Option<&str> {
        None
    }
    /// The listening socket's address, as [`Call::server_addr`].
    fn server_addr(&self) -> &str {
        ""
    }
    /// Read request body bytes; `Ok(0)` at the end of the body.
    fn read_body<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>>;
    /// Trailer fields, once the body has been read to its end.
    fn trailers(&self) -> &[Header];
    /// Start the response (buffered until the first write or the end).
    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()>;
    /// Write response body bytes.
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// Sleep on the runtime's timer.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// An app with an async entry, awaited on the async worker's runtime.
pub trait AsyncApp: Send + Sync + 'static {
    /// Serve one request.
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>>;
}

/// A loaded app: its blocking entry, and its async entry when it has one.
#[derive(Clone)]
pub struct Application {
    /// What the operator named (`builtin:hello`, `myapp:app`), for logs.
    pub name: String,
    /// The blocking entry; every app has one.
    pub sync: Arc<dyn App>,
    /// The async entry, used by the async worker class when present.
    pub asynch: Option<Arc<dyn AsyncApp>>,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name)
            .field("async", &self.asynch.is_some())
            .finish()
    }
}

/// Why an app could not be loaded. Each message names the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The module (library, or `builtin`) exists but lacks the object.
    /// Gunicorn: `Failed to find attribute 'app' in 'main'.`
    #[error("Failed to find attribute '{attribute}' in '{module}'.{hint}")]
    NoAttribute {
        /// The object asked for.
        attribute: String,
        /// The module searched.
        module: String,
        /// What does exist, and how to fix the name.
        hint: String,
    },
    /// The module exists but lacks the application object; Gunicorn's older
    /// words, kept for `builtin:NAME`:
    /// `Failed to find application object 'nope' in 'builtin'`.
    #[error("Failed to find application object '{object}' in '{module}'{hint}")]
    NoObject {
        /// The object asked for.
        object: String,
        /// The module searched.
        module: String,
        /// What does exist, and how to fix the name.
        hint: String,
    },
    /// No library for the module was found. Gunicorn: `No module named 'x'`.
    #[error("No module named '{module}'{hint}")]
    NoModule {
        /// The module asked for.
        module: String,
        /// Where we looked.
        hint: String,
    },
    /// The app spec is not `module:object`.
    #[error("Failed to parse '{spec}' as an application: {reason}")]
    BadSpec {
        /// What the operator wrote.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other load failure: ABI mismatch, not an app, a failing factory.
    #[error("{0}")]
    Other(String),
    /// The app loaded but `init_worker` failed: a boot failure (exit 3).
    #[error("worker failed to boot: {0}")]
    Boot(String),
}
