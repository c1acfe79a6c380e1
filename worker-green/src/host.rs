//! The host services of the green class: the app's waits yield its
//! coroutine instead of blocking may's thread, so one thread serves
//! thousands of sleeping or upstream-bound requests.

use std::io::{self, Read, Write};
use std::time::Duration;

use runicorn_app::blocking::{connect_first, log_line, UPSTREAM_TIMEOUT};
use runicorn_app::{Host, LogLevel, Upstream};

use crate::runtime;

/// Host services whose waits yield the calling coroutine.
#[derive(Debug, Clone, Copy, Default)]
pub struct GreenHost;

/// A may TCP connection to an upstream.
#[derive(Debug)]
pub struct GreenUpstream(pub may::net::TcpStream);

impl Upstream for GreenUpstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        Write::write_all(&mut self.0, data)
    }
}

/// Connects to `addr` (`host:port`) with may, trying each resolved address
/// in turn, with [`UPSTREAM_TIMEOUT`] on the connect and on every read and
/// write. Name resolution itself (`getaddrinfo`) still blocks the thread:
/// give upstreams as IP addresses where it matters.
pub fn connect_tcp(addr: &str) -> io::Result<may::net::TcpStream> {
    let stream = connect_first(addr, |resolved| {
        may::net::TcpStream::connect_timeout(resolved, UPSTREAM_TIMEOUT)
    })?;
    stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Host for GreenHost {
    fn sleep(&self, duration: Duration) {
        runtime::sleep(duration);
    }

    fn connect(&self, addr: &str) -> io::Result<Box<dyn Upstream>> {
        Ok(Box::new(GreenUpstream(connect_tcp(addr)?)))
    }

    fn log(&self, level: LogLevel, message: &str) {
        log_line(level, message);
    }
}
