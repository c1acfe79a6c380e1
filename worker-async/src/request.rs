//! One request on a connection, as the worker sees it: claim a scoreboard
//! lane, count it toward `--max-requests`, read what a trusted front end's
//! forwarding fields say, call the app the way it wants to be called, and
//! log what went wrong. What the connection does next (keep it, drain an
//! unread body, close) is the connection state's decision, made in
//! `ConnState::finish`.
//!
//! The app is called one of three ways (see [`crate::call`]): its async
//! entry awaited on this task; its sync entry on the runtime's blocking
//! pool, the boxed [`Exchange`] moved to the pool thread and back; or, in
//! the test-only inline mode, its sync entry right here on the runtime thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use runicorn_app::blocking::panic_message;
use runicorn_app::{App, AppError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;

use crate::call::{BlockingCall, CatchUnwind, InlineCall, TaskCall};
use crate::exchange::Exchange;
use crate::shared::Shared;

/// Serves the request whose head the exchange's state has just parsed.
/// Returns the exchange, or `None` if the blocking pool lost it (the
/// runtime is shutting down).
pub(crate) async fn run<S>(
    mut exchange: Box<Exchange<S>>,
    shared: &Arc<Shared>,
    line: &mut String,
) -> Option<Box<Exchange<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if shared.start_request() {
        exchange.state.close_after();
    }
    exchange.client_fault = None;
    line.clear();
    let head = exchange.state.head();
    line.push_str(&head.method);
    line.push(' ');
    line.push_str(&head.target);
    line.push(' ');
    line.push_str(head.version.as_str());
    // Dropping the guard frees the lane and counts the request served.
    let in_flight = shared.slot.begin_request(line);
    if shared.log_requests {
        let head = exchange.state.head();
        tracing::debug!("{} {}", head.method, head.target);
    }

    // A trusted front end's contradictory scheme fields: answered 400
    // (through the body-error path) and closed; the app is not called.
    let refused = match shared
        .forwarded
        .resolve(exchange.state.head(), &exchange.peer)
    {
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
            exchange.state.refuse(err);
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
            exchange.state.close_after();
            Err(AppError {
                message: format!("the app panicked: {}", panic_message(&*payload)),
                panicked: true,
            })
        }
    };
    if result.is_err() && exchange.state.response_started() {
        // A body cut short must not be ended as if it were complete.
        exchange.state.fail_response();
    }
    let target = &exchange.state.head().target;
    match (&result, exchange.client_fault) {
        (Err(err), Some(fault)) if !err.panicked => fault.log(target, &exchange.peer, err),
        (Err(err), _) => tracing::error!("Error handling request {target}: {err}"),
        (Ok(()), _) if was_refused || exchange.client_fault.is_some() => {}
        (Ok(()), _) if !exchange.state.response_started() => tracing::error!(
            "Error handling request {target}: the app returned without starting a response"
        ),
        (Ok(()), _) => {}
    }

    let end = exchange.state.finish();
    if let Some(err) = &end.body_error {
        tracing::debug!("Invalid request body: {err}");
    }
    drop(in_flight);
    if result.as_ref().is_err_and(|err| err.panicked) {
        shared.retire_after_panic();
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
