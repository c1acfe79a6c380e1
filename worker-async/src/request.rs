//! One request on a connection: reset the cycle, claim a scoreboard lane,
//! call the app the way it wants to be called, finish the response, and
//! decide whether the connection is kept (draining an unread body if so).
//!
//! The app is called one of three ways (see [`crate::call`]): its async
//! entry awaited on this task; its sync entry on the runtime's blocking
//! pool, the boxed [`Exchange`] moved to the pool thread and back; or, in
//! the test-only inline mode, its sync entry right here on the runtime thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::SystemTime;

use runicorn_app::blocking::panic_message;
use runicorn_app::{App, AppError};
use runicorn_http::{CycleOptions, RequestInfo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::call::{BlockingCall, CatchUnwind, InlineCall, TaskCall};
use crate::driver::close;
use crate::exchange::{Exchange, FLUSH_THRESHOLD};
use crate::shared::Shared;

/// Serves the request whose head is in `exchange`. Returns the exchange
/// when the connection may serve another request, `None` once it is closed.
pub(crate) async fn run<S>(
    mut exchange: Box<Exchange<S>>,
    info: RequestInfo,
    shared: &Arc<Shared>,
    line: &mut String,
) -> Option<Box<Exchange<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    exchange.date.update(SystemTime::now());
    let last = shared.start_request();
    let options = CycleOptions {
        keep_alive: true,
        last,
        max_drain: exchange.config.max_drain,
    };
    {
        let exchange = &mut *exchange;
        exchange
            .cycle
            .reset(info, &exchange.head, &exchange.config.limits, options);
        exchange.body_error = None;
        exchange.io_failed = false;
        exchange.client_fault = None;
        line.clear();
        let head = &exchange.head;
        line.push_str(&head.method);
        line.push(' ');
        line.push_str(&head.target);
        line.push(' ');
        line.push_str(head.version.as_str());
    }
    // Dropping the guard frees the lane and counts the request served.
    let in_flight = shared.slot.begin_request(line);
    if shared.log_requests {
        tracing::debug!("{} {}", exchange.head.method, exchange.head.target);
    }

    // A trusted front end's contradictory scheme fields: answered 400
    // (through the body-error path) and closed; the app is not called.
    let refused = match shared.forwarded.resolve(&exchange.head, &exchange.peer) {
        Ok(forwarded) => {
            exchange.forwarded = forwarded;
            None
        }
        Err(err) => Some(err),
    };
    let was_refused = refused.is_some();
    let (mut exchange, result) = match (refused, &shared.app.asynch) {
        (Some(err), _) => {
            tracing::debug!("Invalid request from ip={}: {err}", exchange.peer);
            exchange.body_error = Some(err);
            (exchange, Ok(Ok(())))
        }
        (None, Some(app)) => {
            let result = {
                let mut call = TaskCall {
                    exchange: &mut exchange,
                };
                CatchUnwind(app.call(&mut call)).await
            };
            (exchange, result)
        }
        (None, None) if shared.inline_sync => {
            let result = {
                let mut call = InlineCall {
                    exchange: &mut exchange,
                };
                catch_unwind(AssertUnwindSafe(|| shared.app.sync.call(&mut call)))
            };
            (exchange, result)
        }
        (None, None) => call_blocking(exchange, Arc::clone(&shared.app.sync)).await?,
    };
    let result = match result {
        Ok(result) => result,
        Err(payload) => {
            exchange.cycle.set_last();
            Err(AppError {
                message: format!("the app panicked: {}", panic_message(&*payload)),
                panicked: true,
            })
        }
    };
    if result.is_err() && exchange.cycle.response_started() {
        // A body cut short must not be ended as if it were complete.
        exchange.cycle.fail_response();
    }
    match (&result, exchange.client_fault) {
        (Err(err), Some(fault)) if !err.panicked => {
            fault.log(&exchange.head.target, &exchange.peer, err);
        }
        (Err(err), _) => tracing::error!("Error handling request {}: {err}", exchange.head.target),
        (Ok(()), _) if was_refused || exchange.client_fault.is_some() => {}
        (Ok(()), _) if !exchange.cycle.response_started() => tracing::error!(
            "Error handling request {}: the app returned without starting a response",
            exchange.head.target
        ),
        (Ok(()), _) => {}
    }

    let date = *exchange.date.fixed();
    let finish = {
        let exchange = &mut *exchange;
        match exchange.body_error.take() {
            Some(err) => {
                tracing::debug!("Invalid request body: {err}");
                exchange.cycle.fail(&mut exchange.output, &err, &date)
            }
            None => exchange.cycle.finish(&mut exchange.output, &date),
        }
    };
    drop(in_flight);
    if result.as_ref().is_err_and(|err| err.panicked) {
        shared.retire_after_panic();
    }
    if exchange.io_failed {
        return None;
    }
    let keep = finish.keep_alive && (!finish.drain || drain_body(&mut exchange).await);
    if !keep {
        let linger = !exchange.cycle.body_done();
        close(&mut exchange, linger).await;
        return None;
    }
    if exchange.output.len() >= FLUSH_THRESHOLD && exchange.flush().await.is_err() {
        return None;
    }
    Some(exchange)
}

type Outcome = Result<Result<(), AppError>, Box<dyn std::any::Any + Send>>;

/// Runs a sync app on the blocking pool with the exchange moved there;
/// `None` if the pool lost it (the runtime is shutting down).
async fn call_blocking<S>(
    exchange: Box<Exchange<S>>,
    app: Arc<dyn App>,
) -> Option<(Box<Exchange<S>>, Outcome)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handle = Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        let mut exchange = exchange;
        let outcome = {
            let mut call = BlockingCall {
                exchange: &mut exchange,
                handle: &handle,
            };
            catch_unwind(AssertUnwindSafe(|| app.call(&mut call)))
        };
        (exchange, outcome)
    })
    .await;
    match joined {
        Ok(done) => Some(done),
        Err(err) => {
            tracing::error!("a sync app's blocking task was lost: {err}");
            None
        }
    }
}

/// Reads and discards the rest of an unread body (bounded by `max_drain`
/// and the I/O timeout). True when the connection can be reused.
async fn drain_body<S>(exchange: &mut Exchange<S>) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let used = {
            let exchange = &mut *exchange;
            match exchange.cycle.drain(exchange.input.data()) {
                Ok(used) => used,
                Err(_) => return false,
            }
        };
        exchange.input.consume(used);
        if exchange.cycle.body_done() {
            return true;
        }
        if exchange.flush().await.is_err() {
            return false;
        }
        let deadline = Instant::now() + exchange.config.io_timeout;
        match exchange.read_more(deadline).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}
