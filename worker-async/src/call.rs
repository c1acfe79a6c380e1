//! The app's view of one request on a connection, two ways:
//!
//! - [`TaskCall`] implements [`AsyncCall`] for apps with an async entry:
//!   awaited on the connection's own task, their sleeps are tokio timers,
//!   so a thousand sleeping requests cost no thread.
//! - [`BlockingCall`] implements [`Call`] for sync apps, on a thread of the
//!   runtime's blocking pool: each of its waits (`read_body`, a flush) is
//!   the connection's async I/O driven with [`Handle::block_on`], so the
//!   pool thread blocks and the event loop never does. Host services are
//!   [`ThreadHost`]'s: a sleep blocks that pool thread, like a sync
//!   endpoint in Starlette's thread pool.
//!
//! What the two tell of the request and its connection (the head, the
//! peer, the scheme and client a trusted front end gave, the listener,
//! the trailers) and how they start a response are the same, written once
//! in `request_facts!`. [`CatchUnwind`] turns a panic inside an app
//! future into a value.

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use runicorn_app::blocking::{ClientFault, ThreadHost};
use runicorn_app::{AsyncCall, BoxFuture, Call, Header, Host, RequestHead};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;

use crate::connection::Connection;

/// The methods [`AsyncCall`] and [`Call`] share, for a view whose `conn`
/// field is the [`Connection`]: what the request and its connection are,
/// and starting the response.
macro_rules! request_facts {
    () => {
        fn head(&self) -> &RequestHead {
            self.conn.state.head()
        }

        fn peer(&self) -> &str {
            &self.conn.peer
        }

        fn url_scheme(&self) -> &str {
            self.conn.forwarded.scheme.as_str()
        }

        fn client_addr(&self) -> &str {
            client_addr(self.conn)
        }

        fn forwarded_host(&self) -> Option<&str> {
            self.conn.forwarded.host.as_deref()
        }

        fn proxy_protocol(&self) -> Option<&str> {
            self.conn.proxied.as_ref().map(|proxied| proxied.protocol)
        }

        fn proxy_addr(&self) -> Option<&str> {
            self.conn
                .proxied
                .as_ref()
                .map(|proxied| proxied.proxy_addr.as_str())
                .filter(|addr| !addr.is_empty())
        }

        fn server_addr(&self) -> &str {
            &self.conn.server_addr
        }

        fn trailers(&self) -> &[Header] {
            self.conn.state.trailers()
        }

        fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
            self.conn.start_response(status, headers)
        }
    };
}

/// An async app's view of the request, on the connection task.
pub(crate) struct TaskCall<'e, S> {
    pub(crate) conn: &'e mut Connection<S>,
}

/// The future of a write that only buffered: zero-sized, so boxing it
/// allocates nothing on the hot path.
struct Buffered;

impl Future for Buffered {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

impl<S> AsyncCall for TaskCall<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    request_facts!();

    fn read_body<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(async move {
            let result = self.conn.read_body(buf).await;
            noted(self.conn, result)
        })
    }

    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        match self.conn.write_buffered(data) {
            Ok(false) => Box::pin(Buffered),
            Ok(true) => Box::pin(async move {
                let result = self.conn.flush().await;
                noted(self.conn, result)
            }),
            Err(err) => Box::pin(std::future::ready(Err(err))),
        }
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A sync app's view of the request, on a blocking-pool thread.
pub(crate) struct BlockingCall<'e, S> {
    pub(crate) conn: &'e mut Connection<S>,
    pub(crate) handle: &'e Handle,
}

impl<S> Call for BlockingCall<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    request_facts!();

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.handle.block_on(self.conn.read_body(buf));
        noted(self.conn, result)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.conn.write_buffered(data)? {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.handle.block_on(self.conn.flush());
        noted(self.conn, result)
    }

    fn host(&self) -> &dyn Host {
        &ThreadHost
    }
}

/// The client's address: a trusted `Forwarded` or `X-Forwarded-For` hop,
/// else the peer.
fn client_addr<S>(conn: &Connection<S>) -> &str {
    conn.forwarded.client.as_deref().unwrap_or(&conn.peer)
}

/// Notes on the connection a failure that is the client's doing (it went
/// away, or its body broke the framing), so an app that fails because of it
/// is not logged as broken.
fn noted<S, T>(conn: &mut Connection<S>, result: io::Result<T>) -> io::Result<T> {
    if let Err(err) = &result {
        conn.client_fault = conn.client_fault.or(ClientFault::of(err));
    }
    result
}

/// Polls an app future, catching a panic as `Err(payload)`.
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
