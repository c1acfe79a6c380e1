//! A small, strict HTTP/1.1 client over `std` sockets: send raw bytes, read
//! exactly one response (Content-Length, chunked with trailers, or to end of
//! stream), reuse a keep-alive connection. Every read and write has a timeout
//! so a hung server fails a test instead of hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one read or write may block before the client gives up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address on loopback.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl Addr {
    /// Parses the address token of a `Listening at:` line:
    /// `http://127.0.0.1:8000`, `http://[::1]:8000` or `unix:/path`.
    pub fn parse_listening(token: &str) -> Option<Addr> {
        if let Some(path) = token.strip_prefix("unix:") {
            return Some(Addr::Unix(PathBuf::from(path)));
        }
        let hostport = token
            .strip_prefix("http://")
            .or_else(|| token.strip_prefix("https://"))?;
        hostport.trim_end_matches('/').parse().ok().map(Addr::Tcp)
    }

    /// The TCP address; panics for a unix socket.
    pub fn tcp(&self) -> SocketAddr {
        match self {
            Addr::Tcp(addr) => *addr,
            Addr::Unix(path) => panic!("expected a TCP listener, got unix:{}", path.display()),
        }
    }

    /// The value for a `Host` header.
    pub fn host_header(&self) -> String {
        match self {
            Addr::Tcp(addr) => addr.to_string(),
            Addr::Unix(_) => "localhost".to_owned(),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "{addr}"),
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connected socket of either kind.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain.
    Unix(UnixStream),
    /// TLS over TCP (`crate::tls`), shared by a connection's reader and
    /// writer halves.
    Tls(Arc<Mutex<TlsClient>>),
}

/// A TLS client connection over TCP.
pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

impl Stream {
    /// Connects with [`IO_TIMEOUT`] on connect, reads and writes.
    pub fn connect(addr: &Addr) -> io::Result<Stream> {
        let stream = match addr {
            Addr::Tcp(addr) => Stream::Tcp(TcpStream::connect_timeout(addr, IO_TIMEOUT)?),
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        stream.set_timeout(IO_TIMEOUT)?;
        Ok(stream)
    }

    /// Sets both the read and the write timeout.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tls(tls) => {
                let tls = lock(tls);
                tls.sock.set_read_timeout(Some(timeout))?;
                tls.sock.set_write_timeout(Some(timeout))
            }
            Stream::Tcp(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))
            }
            Stream::Unix(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))
            }
        }
    }

    /// Half-closes the write side (the server then sees end of stream).
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tls(tls) => lock(tls).sock.shutdown(Shutdown::Write),
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Stream::Unix(stream) => stream.shutdown(Shutdown::Write),
        }
    }

    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tls(tls) => Stream::Tls(Arc::clone(tls)),
            Stream::Tcp(stream) => Stream::Tcp(stream.try_clone()?),
            Stream::Unix(stream) => Stream::Unix(stream.try_clone()?),
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tls(tls) => lock(tls).read(buf),
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tls(tls) => lock(tls).write(buf),
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(tls) => lock(tls).flush(),
            Stream::Tcp(stream) => stream.flush(),
            Stream::Unix(stream) => stream.flush(),
        }
    }
}

fn lock(tls: &Mutex<TlsClient>) -> std::sync::MutexGuard<'_, TlsClient> {
    tls.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in received order, names as received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Whether the body was chunked on the wire.
    pub chunked: bool,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every header named `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (`builtin:echo`'s answer); panics with the
    /// body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("response body is not JSON ({err}): {}", self.text()))
    }

    /// Whether the server said it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|value| {
            value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// What a request on a reused connection got ([`Conn::get_reused`]).
#[derive(Debug)]
pub enum Reuse {
    /// Bytes came back: the response, or the error reading it.
    Answered(io::Result<Response>),
    /// Nothing came back: the request could not be sent, or the connection
    /// was closed or reset before any byte of an answer.
    Unanswered(io::Error),
}

/// A client connection that may carry several requests (keep-alive).
#[derive(Debug)]
pub struct Conn {
    writer: Stream,
    reader: BufReader<Stream>,
    host: String,
}

impl Conn {
    /// Connects to `addr`.
    pub fn connect(addr: &Addr) -> io::Result<Conn> {
        let stream = Stream::connect(addr)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn {
            writer: stream,
            reader,
            host: addr.host_header(),
        })
    }

    /// Connects to `addr` over TLS with `config`, the server named
    /// `server_name`, and completes the handshake (a server that refuses
    /// the client's certificate under TLS 1.3 says so only on the first read).
    pub fn connect_tls(
        addr: &Addr,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<Conn> {
        Conn::connect_tls_after(addr, b"", config, server_name)
    }

    /// [`Conn::connect_tls`], sending `prefix` on the plain socket first
    /// (a PROXY protocol header, which comes before TLS).
    pub fn connect_tls_after(
        addr: &Addr,
        prefix: &[u8],
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<Conn> {
        let Stream::Tcp(mut tcp) = Stream::connect(addr)? else {
            return Err(invalid("TLS is over TCP"));
        };
        if !prefix.is_empty() {
            tcp.write_all(prefix)?;
        }
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|err| invalid(format!("bad server name: {err}")))?;
        let client = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(client, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        let stream = Stream::Tls(Arc::new(Mutex::new(tls)));
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn {
            writer: stream,
            reader,
            host: addr.host_header(),
        })
    }

    /// The TLS version and cipher suite settled on, as rustls names them
    /// (`TLSv1_3`, `TLS13_AES_256_GCM_SHA384`), for a TLS connection.
    pub fn tls_negotiated(&self) -> Option<(String, String)> {
        match &self.writer {
            Stream::Tls(tls) => {
                let tls = lock(tls);
                let version = format!("{:?}", tls.conn.protocol_version()?);
                let suite = format!("{:?}", tls.conn.negotiated_cipher_suite()?.suite());
                Some((version, suite))
            }
            _ => None,
        }
    }

    /// The protocol ALPN settled on, for a TLS connection.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        match &self.writer {
            Stream::Tls(tls) => lock(tls).conn.alpn_protocol().map(<[u8]>::to_vec),
            _ => None,
        }
    }

    /// Changes the read/write timeout (default [`IO_TIMEOUT`]).
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.writer.set_timeout(timeout)
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Half-closes the write side.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.writer.shutdown_write()
    }

    /// Sends `method path` with `headers` and `body` (a Content-Length is
    /// added when `body` is not empty), keep-alive, and reads the final response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes)?;
        self.read_final_response(method == "HEAD")
    }

    /// `GET path` on this connection (keep-alive).
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// `GET path` on a connection that has already served a request, as a
    /// browser or an HTTP library reuses one: [`Reuse::Unanswered`] when
    /// the request could not be sent or the connection closed (or was
    /// reset) before any byte of an answer came back. That is the case a
    /// client retries on a new connection (RFC 9112, 9.3.1), so it is
    /// counted apart from a failure.
    pub fn get_reused(&mut self, path: &str) -> Reuse {
        let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        if let Err(err) = self.send(head.as_bytes()) {
            return Reuse::Unanswered(err);
        }
        match self.reader.fill_buf() {
            Ok([]) => Reuse::Unanswered(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the kept connection closed before any byte of an answer",
            )),
            Ok(_) => Reuse::Answered(self.read_final_response(false)),
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => Reuse::Unanswered(err),
            Err(err) => Reuse::Answered(Err(err)),
        }
    }

    /// Reads the next response, interim (1xx) ones included. `head_request`:
    /// the response answers a HEAD, so it has no body whatever it says.
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let (version, status, reason) = self.read_status_line()?;
        let headers = self.read_fields()?;
        let mut response = Response {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
            chunked: false,
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        if chunked {
            response.chunked = true;
            self.read_chunked(&mut response)?;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad content-length {length:?}")))?;
            response.body.resize(length, 0);
            self.reader.read_exact(&mut response.body)?;
        } else {
            self.reader.read_to_end(&mut response.body)?;
        }
        Ok(response)
    }

    /// Reads responses until a final (non-1xx) one, and returns it.
    pub fn read_final_response(&mut self, head_request: bool) -> io::Result<Response> {
        loop {
            let response = self.read_response(head_request)?;
            if !(100..200).contains(&response.status) || response.status == 101 {
                return Ok(response);
            }
        }
    }

    /// Reads whatever the server sends until it closes (or the timeout).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.reader.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// True when the server has closed the connection (a read returns 0)
    /// within the current timeout; false if bytes arrive instead.
    pub fn at_eof(&mut self) -> io::Result<bool> {
        Ok(self.reader.fill_buf()?.is_empty())
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let read = self.reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(invalid(format!(
                "line not ended by CRLF: {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| invalid("non-UTF-8 line in response head"))
    }

    fn read_status_line(&mut self) -> io::Result<(String, u16, String)> {
        let line = self.read_line()?;
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(format!("bad status line {line:?}")));
        }
        let status = parts
            .next()
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        Ok((version, status, reason))
    }

    fn read_fields(&mut self) -> io::Result<Vec<(String, String)>> {
        let mut fields = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(fields);
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
            fields.push((name.to_owned(), value.trim().to_owned()));
        }
    }

    fn read_chunked(&mut self, response: &mut Response) -> io::Result<()> {
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                response.trailers = self.read_fields()?;
                return Ok(());
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            self.reader.read_exact(&mut response.body[start..])?;
            let mut crlf = [0u8; 2];
            self.reader.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
    }
}

/// `GET path` on a fresh connection, which is closed afterwards.
pub fn get(addr: &Addr, path: &str) -> io::Result<Response> {
    let mut conn = Conn::connect(addr)?;
    conn.request("GET", path, &[("Connection", "close")], b"")
}

/// Sends `bytes` on a fresh connection, half-closes, and returns everything
/// the server sends until it closes.
pub fn raw(addr: &Addr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut conn = Conn::connect(addr)?;
    conn.send(bytes)?;
    // The server may close before reading all input; ignore that error here.
    let _ = conn.shutdown_write();
    conn.read_to_end()
}

/// Sends `bytes` on a fresh connection and parses the one response it gets.
pub fn raw_response(addr: &Addr, bytes: &[u8]) -> io::Result<Response> {
    let mut conn = Conn::connect(addr)?;
    conn.send(bytes)?;
    conn.read_final_response(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn serve_once(reply: &'static [u8]) -> Addr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = Addr::Tcp(listener.local_addr().unwrap());
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            stream.write_all(reply).unwrap();
        });
        addr
    }

    #[test]
    fn parses_listening_tokens() {
        assert_eq!(
            Addr::parse_listening("http://127.0.0.1:8000"),
            Some(Addr::Tcp("127.0.0.1:8000".parse().unwrap()))
        );
        assert_eq!(
            Addr::parse_listening("http://[::1]:9"),
            Some(Addr::Tcp("[::1]:9".parse().unwrap()))
        );
        assert_eq!(
            Addr::parse_listening("unix:/tmp/x.sock"),
            Some(Addr::Unix("/tmp/x.sock".into()))
        );
        assert_eq!(Addr::parse_listening("nonsense"), None);
    }

    #[test]
    fn reads_content_length_body() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA");
        let response = get(&addr, "/").unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
        assert_eq!(response.header("x-a"), Some("b"));
    }

    #[test]
    fn reads_chunked_body_and_trailers() {
        let addr = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
        );
        let response = get(&addr, "/").unwrap();
        assert!(response.chunked);
        assert_eq!(response.body, b"abcde");
        assert_eq!(response.trailers, vec![("T".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn skips_interim_responses_and_reads_to_eof() {
        let addr = serve_once(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nall of it");
        let response = get(&addr, "/").unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "all of it");
    }
}
