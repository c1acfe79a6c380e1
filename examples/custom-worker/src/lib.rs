//! `runicorn -k ./libcustom_worker.so:Worker builtin:hello`: an out-of-tree
//! worker class. It accepts on the inherited TCP listeners itself, parses
//! each request with `httparse`, and lends it to the host through
//! `WorkerContext::serve`, which calls the loaded app. One connection at a
//! time, `Connection: close`, every response marked `X-Worker-Class: custom`.
//! A real class would add keep-alive, limits and timeouts; this one proves
//! the contract.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::BorrowedFd;
use std::time::Duration;

use runicorn_app::abi::worker_class::{LibraryWorkerClass, WorkerContext, RC_STOP_NONE};
use runicorn_app::{
    export_worker_class, Call, Header, Host, LogLevel, RequestHead, Upstream, Version,
};

struct CustomWorker;

impl LibraryWorkerClass for CustomWorker {
    fn run(&self, worker: &WorkerContext<'_>) -> i32 {
        let mut listeners = Vec::new();
        for &fd in worker.listener_fds() {
            // SAFETY: the host lends us its listener fds for the whole of
            // `run`; we duplicate them and never close the originals.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            match borrowed.try_clone_to_owned() {
                Ok(owned) => {
                    let listener = TcpListener::from(owned);
                    if listener.set_nonblocking(true).is_ok() {
                        listeners.push(listener);
                    }
                }
                Err(err) => worker.log(
                    LogLevel::Error,
                    &format!("custom worker: cannot use fd {fd}: {err}"),
                ),
            }
        }
        worker.log(
            LogLevel::Info,
            &format!("custom worker serving {} listener(s)", listeners.len()),
        );
        let max_requests = worker.params().max_requests;
        let mut served = 0u64;
        while worker.should_stop() == RC_STOP_NONE {
            worker.notify();
            let mut accepted = false;
            for listener in &listeners {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        accepted = true;
                        match serve_connection(worker, stream, peer.to_string()) {
                            Ok(true) => {}
                            Ok(false) => {
                                worker.log(
                                    LogLevel::Warning,
                                    "custom worker: app panicked, recycling",
                                );
                                return 0;
                            }
                            Err(err) => worker.log(
                                LogLevel::Debug,
                                &format!("custom worker: connection: {err}"),
                            ),
                        }
                        served += 1;
                        if max_requests > 0 && served >= max_requests {
                            return 0;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => {
                        worker.log(LogLevel::Debug, &format!("custom worker: accept: {err}"))
                    }
                }
            }
            if !accepted {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        0
    }
}

export_worker_class!(Worker, "custom", || CustomWorker);

/// Serve one request; `Ok(false)` when the app panicked.
fn serve_connection(
    worker: &WorkerContext<'_>,
    mut stream: TcpStream,
    peer: String,
) -> io::Result<bool> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > 64 * 1024 {
            return Err(io::Error::other("request head too large"));
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::Error::other("connection closed before a full head"));
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    if request
        .parse(&buffer[..head_end])
        .map_err(io::Error::other)?
        .is_partial()
    {
        return Err(io::Error::other("partial head"));
    }
    let head = RequestHead {
        method: request.method.unwrap_or("GET").to_owned(),
        target: request.path.unwrap_or("/").to_owned(),
        version: if request.version == Some(0) {
            Version::Http10
        } else {
            Version::Http11
        },
        headers: request
            .headers
            .iter()
            .map(|h| Header {
                name: h.name.to_owned(),
                value: h.value.to_vec(),
            })
            .collect(),
    };
    let body_length = head
        .header("content-length")
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut call = StreamCall {
        head,
        peer,
        leftover: buffer[head_end..].to_vec(),
        remaining: body_length,
        stream,
        started: false,
        host: DirectHost,
    };
    let outcome = worker.serve(&mut call);
    let _ = call.stream.flush();
    Ok(!matches!(outcome, Err(err) if err.panicked))
}

struct StreamCall {
    head: RequestHead,
    peer: String,
    leftover: Vec<u8>,
    remaining: u64,
    stream: TcpStream,
    started: bool,
    host: DirectHost,
}

impl Call for StreamCall {
    fn head(&self) -> &RequestHead {
        &self.head
    }
    fn peer(&self) -> &str {
        &self.peer
    }
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = if !self.leftover.is_empty() {
            let count = want.min(self.leftover.len());
            buf[..count].copy_from_slice(&self.leftover[..count]);
            self.leftover.drain(..count);
            count
        } else {
            self.stream.read(&mut buf[..want])?
        };
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "body shorter than content-length",
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
    fn trailers(&self) -> &[Header] {
        &[]
    }
    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        if self.started {
            return Err(io::Error::other("response already started"));
        }
        self.started = true;
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("connection") || name.contains(['\r', '\n', ':', ' ']) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("refused header '{name}'"),
                ));
            }
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"Connection: close\r\nX-Worker-Class: custom\r\n\r\n");
        self.stream.write_all(&head)
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
    fn host(&self) -> &dyn Host {
        &self.host
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Host services of a one-connection-at-a-time class: plain blocking calls.
struct DirectHost;

struct DirectUpstream(TcpStream);

impl Upstream for DirectUpstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }
}

impl Host for DirectHost {
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
    fn connect(&self, addr: &str) -> io::Result<Box<dyn Upstream>> {
        Ok(Box::new(DirectUpstream(TcpStream::connect(addr)?)))
    }
    fn log(&self, level: LogLevel, message: &str) {
        eprintln!("[{level:?}] {message}");
    }
}
