//! The async worker's connection loop: one task per connection, doing
//! what the `http` crate's [`runicorn_http::ConnState`] says (read within a
//! timeout, write its output, call the app, half-close, close) and deciding
//! nothing about HTTP. What it adds is the async I/O: one lazily moved timer
//! per connection for every read's timeout. A stopping worker does not
//! close an idle connection (its client may be sending a request at that
//! moment): the connection state answers its next request with
//! `Connection: close`, or the keep-alive wait ends it.

use std::rc::Rc;

use runicorn_app::blocking::log_invalid_request;
use runicorn_http::{Action, SystemClock};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::connection::Connection;
use crate::local::Local;
use crate::serve;

/// Serves one connection until it closes.
pub(crate) async fn serve<S>(conn: Connection<S>, local: Rc<Local>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = Box::new(conn);
    // One timer per connection, moved lazily: a later deadline does not
    // re-arm it; when it fires early it is re-armed to the deadline then in
    // force. So keep-alive costs no timer operation per request.
    let timer = tokio::time::sleep_until(Instant::now() + conn.state.config().header_timeout);
    tokio::pin!(timer);
    loop {
        match conn.state.poll(&SystemClock) {
            Action::Read(wait) => {
                let deadline = wait.timeout.map(|timeout| Instant::now() + timeout);
                if let Some(deadline) = deadline.filter(|&deadline| deadline < timer.deadline()) {
                    timer.as_mut().reset(deadline);
                }
                let woke = loop {
                    let woke = tokio::select! {
                        biased;
                        read = conn.read_some() => Wake::Read(read),
                        () = timer.as_mut(), if deadline.is_some() => Wake::Timer,
                    };
                    match (woke, deadline) {
                        (Wake::Timer, Some(deadline)) if Instant::now() < deadline => {
                            timer.as_mut().reset(deadline);
                        }
                        (woke, _) => break woke,
                    }
                };
                match woke {
                    Wake::Read(result) => conn.state.received(result),
                    Wake::Timer => conn
                        .state
                        .received(Err(std::io::ErrorKind::TimedOut.into())),
                }
            }
            Action::Write => {
                // A failure is the state's to judge; it closes.
                let _ = conn.flush().await;
            }
            Action::Serve => match serve::run(conn, &local).await {
                Some(kept) => conn = kept,
                None => return,
            },
            Action::BadRequest(err) => log_invalid_request(&conn.peer, &err),
            Action::Shutdown => {
                let result = conn.stream.shutdown().await;
                conn.state.shut_down(result);
            }
            Action::Close => {
                conn.closing().await;
                return;
            }
        }
    }
}

/// What ended a wait for more bytes.
enum Wake {
    Read(std::io::Result<usize>),
    Timer,
}
