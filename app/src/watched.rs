//! [`Watched`]: an app's [`Call`] or [`AsyncCall`], passed through, with
//! its response's start watched: the `pre_request`/`post_request` hooks
//! need the status, and a library worker class's host needs to know
//! whether it may still answer 500 for a failing app.

use std::io;
use std::time::Duration;

use crate::{AsyncCall, BoxFuture, Call, Header, Host, RequestHead};

/// A call passed through to `inner`, its response's start watched.
pub(crate) struct Watched<'a, C: ?Sized> {
    inner: &'a mut C,
    /// The app asked to start the response (whether or not it could).
    pub(crate) asked: bool,
    /// The status the response started with.
    pub(crate) status: Option<u16>,
}

impl<'a, C: ?Sized> Watched<'a, C> {
    /// Watches `inner`.
    pub(crate) fn new(inner: &'a mut C) -> Self {
        Watched {
            inner,
            asked: false,
            status: None,
        }
    }
}

/// What a [`Call`] and an [`AsyncCall`] have alike, passed through.
macro_rules! pass_through {
    () => {
        fn head(&self) -> &RequestHead {
            self.inner.head()
        }
        fn peer(&self) -> &str {
            self.inner.peer()
        }
        fn url_scheme(&self) -> &str {
            self.inner.url_scheme()
        }
        fn client_addr(&self) -> &str {
            self.inner.client_addr()
        }
        fn forwarded_host(&self) -> Option<&str> {
            self.inner.forwarded_host()
        }
        fn proxy_protocol(&self) -> Option<&str> {
            self.inner.proxy_protocol()
        }
        fn proxy_addr(&self) -> Option<&str> {
            self.inner.proxy_addr()
        }
        fn server_addr(&self) -> &str {
            self.inner.server_addr()
        }
        fn trailers(&self) -> &[Header] {
            self.inner.trailers()
        }
        fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
            self.asked = true;
            self.inner.start_response(status, headers)?;
            self.status = Some(status);
            Ok(())
        }
    };
}

impl<'c> Call for Watched<'_, dyn Call + 'c> {
    pass_through!();
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_body(buf)
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn host(&self) -> &dyn Host {
        self.inner.host()
    }
}

impl<'c> AsyncCall for Watched<'_, dyn AsyncCall + 'c> {
    pass_through!();
    fn read_body<'b>(&'b mut self, buf: &'b mut [u8]) -> BoxFuture<'b, io::Result<usize>> {
        self.inner.read_body(buf)
    }
    fn write<'b>(&'b mut self, data: &'b [u8]) -> BoxFuture<'b, io::Result<()>> {
        self.inner.write(data)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.inner.sleep(duration)
    }
}
