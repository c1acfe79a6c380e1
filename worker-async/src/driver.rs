//! The async connection driver: one task per connection, over the `http`
//! crate's sans-IO parser and [`runicorn_http::Cycle`].
//!
//! The loop, top to bottom: parse every complete head buffered (pipelined
//! requests are answered one after the other, their responses coalesced in
//! the output buffer); when more bytes are needed, write the buffered
//! responses out in one write, then read, bounded by the keep-alive timeout
//! between requests or the head deadline within one. Between requests an
//! idle connection also wakes on a graceful stop and closes. Errors before
//! any app get their status and a lingering close.

use std::rc::Rc;
use std::time::SystemTime;

use runicorn_http::{encode_error, parse_head_into, HeadStatus, ParseError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::exchange::Exchange;
use crate::request;
use crate::shared::Local;

/// Most bytes read and discarded during a lingering close.
const LINGER_BYTES: usize = 1 << 20;

/// Serves one connection until it closes.
pub(crate) async fn serve<S>(exchange: Exchange<S>, local: Rc<Local>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut exchange = Box::new(exchange);
    // Registered now, so a stop that comes while a request runs is seen at
    // the next idle wait.
    let stopped = local.stopped();
    tokio::pin!(stopped);
    stopped.as_mut().enable();
    // One timer per connection, moved lazily: a later deadline does not
    // re-arm it; when it fires early it is re-armed to the deadline then in
    // force. So keep-alive costs no timer operation per request.
    let timer = tokio::time::sleep_until(Instant::now() + exchange.config.io_timeout);
    tokio::pin!(timer);
    let mut requests: u64 = 0;
    let mut parse_pending = false;
    let mut head_started: Option<Instant> = None;
    let mut line = String::new();
    loop {
        if parse_pending && !exchange.input.is_empty() {
            parse_pending = false;
            let parsed = {
                let exchange = &mut *exchange;
                parse_head_into(
                    exchange.input.data(),
                    &exchange.config.limits,
                    &mut exchange.head,
                )
            };
            match parsed {
                Ok(HeadStatus::Complete(info)) => {
                    exchange.input.consume(info.head_len);
                    parse_pending = true;
                    head_started = None;
                    requests += 1;
                    match request::run(exchange, info, &local.shared, &mut line).await {
                        Some(kept) => exchange = kept,
                        None => return,
                    }
                    continue;
                }
                Ok(HeadStatus::Partial) => {}
                Err(err) => {
                    bad_request(&exchange, &err);
                    reject(&mut exchange, err.status()).await;
                    return;
                }
            }
        }

        // More bytes are needed.
        let between_requests = exchange.input.is_empty();
        let now = Instant::now();
        let deadline = if between_requests {
            if requests > 0 && (local.is_stopping() || !local.shared.shutdown.is_running()) {
                close(&mut exchange, false).await;
                return;
            }
            let wait = if requests > 0 {
                exchange.config.keepalive
            } else {
                exchange.config.io_timeout
            };
            now + wait
        } else {
            let deadline = *head_started.get_or_insert(now) + exchange.config.io_timeout;
            if now >= deadline {
                reject(&mut exchange, 408).await;
                return;
            }
            deadline
        };
        // Batched writes: every response answered so far goes out in one
        // write, only now that no complete request is buffered.
        if exchange.flush().await.is_err() {
            return;
        }
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        let idle = between_requests && requests > 0;
        let read = loop {
            let woke = tokio::select! {
                biased;
                read = exchange.read_some() => Wake::Read(read),
                () = &mut stopped, if idle => Wake::Stop,
                () = timer.as_mut() => Wake::Timer,
            };
            match woke {
                Wake::Read(read) => break read,
                Wake::Stop => {
                    close(&mut exchange, false).await;
                    return;
                }
                Wake::Timer if Instant::now() >= deadline => {
                    break Err(std::io::ErrorKind::TimedOut.into());
                }
                Wake::Timer => timer.as_mut().reset(deadline),
            }
        };
        match read {
            Ok(0) => {
                // The client closed; a partial head gets no answer.
                close(&mut exchange, false).await;
                return;
            }
            Ok(_) => parse_pending = true,
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                if between_requests {
                    close(&mut exchange, false).await;
                } else {
                    reject(&mut exchange, 408).await;
                }
                return;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == std::io::ErrorKind::OutOfMemory => {
                // The head outgrew the buffer's cap without ending.
                reject(&mut exchange, 431).await;
                return;
            }
            Err(_) => return,
        }
    }
}

/// What ended a wait for more bytes.
enum Wake {
    Read(std::io::Result<usize>),
    Stop,
    Timer,
}

fn bad_request<S>(exchange: &Exchange<S>, err: &ParseError) {
    let peer = if exchange.peer.is_empty() {
        "unix socket"
    } else {
        &exchange.peer
    };
    tracing::debug!("Invalid request from ip={peer}: {err}");
}

/// Answers `status` before (or instead of) any app, then closes lingering.
pub(crate) async fn reject<S>(exchange: &mut Exchange<S>, status: u16)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    exchange.date.update(SystemTime::now());
    let date = *exchange.date.fixed();
    encode_error(&mut exchange.output, status, Some(&date));
    close(exchange, true).await;
}

/// Flushes, then closes; with a lingering close when the client may still
/// be sending (unread input must not turn the answer into a reset).
pub(crate) async fn close<S>(exchange: &mut Exchange<S>, linger: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if exchange.flush().await.is_err() || !linger {
        return;
    }
    if exchange.stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + exchange.config.linger;
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        exchange.input.consume(usize::MAX);
        match exchange.read_more(deadline).await {
            Ok(0) | Err(_) => break,
            Ok(count) => discarded += count,
        }
    }
}
