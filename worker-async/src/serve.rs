//! One request on a connection, as the worker sees it: claim a scoreboard
//! lane, count it toward `--max-requests`, read what a trusted front end's
//! forwarding fields say, call the app the way it wants to be called, and
//! log what went wrong. What the connection does next (keep it, drain an
//! unread body, close) is the connection state's decision, made in
//! `ConnState::finish`.
//!
//! The app is called one of two ways (see [`crate::call`]): its async
//! entry awaited on this task; or its sync entry on the runtime's blocking
//! pool, the boxed [`Connection`] moved to the pool thread and back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use runicorn_app::blocking::{log_invalid_request, panic_message};
use runicorn_app::{App, AppError};
use runicorn_http::RequestDone;
use runicorn_worker::Unanswered;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;

use crate::call::{BlockingCall, CatchUnwind, TaskCall};
use crate::connection::Connection;
use crate::local::Local;

/// Serves the request whose head the connection's state has just parsed.
/// Returns the connection, or `None` if the blocking pool lost it (the
/// runtime is shutting down).
pub(crate) async fn run<S>(
    mut conn: Box<Connection<S>>,
    local: &Local,
) -> Option<Box<Connection<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = &local.shared;
    conn.unanswered = Unanswered::register(conn.fd);
    // Ended by `end_request` below: the lane freed, the request counted
    // and logged.
    let started = shared.start_request(&mut conn.state, &conn.peer);
    if started.last {
        conn.state.close_after();
    }
    conn.client_fault = None;
    if local.serving.log_requests {
        let head = conn.state.head();
        tracing::debug!("{} {}", head.method, head.target);
    }

    // A trusted front end's contradictory scheme fields: answered 400
    // (through the body-error path) and closed; the app is not called.
    let refused = match shared.forwarded().resolve(conn.state.head(), &conn.peer) {
        Ok(forwarded) => {
            conn.forwarded = forwarded;
            None
        }
        Err(err) => Some(err),
    };
    let was_refused = refused.is_some();
    let (mut conn, result) = match (refused, &shared.app.asynch) {
        (Some(err), _) => {
            log_invalid_request(&conn.peer, &err);
            conn.state.refuse(err);
            (conn, Ok(Ok(())))
        }
        (None, Some(app)) => {
            let result = {
                let mut call = TaskCall { conn: &mut conn };
                CatchUnwind(app.call(&mut call)).await
            };
            (conn, result)
        }
        (None, None) => call_blocking(conn, Arc::clone(&shared.app.sync)).await?,
    };
    let result = match result {
        Ok(result) => result,
        Err(payload) => {
            conn.state.close_after();
            Err(AppError {
                message: format!("the app panicked: {}", panic_message(&*payload)),
                panicked: true,
            })
        }
    };
    if result.is_err() && conn.state.response_started() {
        // A body cut short must not be ended as if it were complete.
        conn.state.fail_response();
    }
    let target = &conn.state.head().target;
    let method = &conn.state.head().method;
    match (&result, conn.client_fault) {
        (Err(err), Some(fault)) if !err.panicked => fault.log(target, &conn.peer, err),
        (Err(err), _) => tracing::error!(
            method = %method,
            target = %target,
            peer = conn.peer.as_str(),
            "Error handling request {target}: {err}"
        ),
        (Ok(()), _) if was_refused || conn.client_fault.is_some() => {}
        (Ok(()), _) if !conn.state.response_started() => tracing::error!(
            method = %method,
            target = %target,
            peer = conn.peer.as_str(),
            "Error handling request {target}: the app returned without starting a response"
        ),
        (Ok(()), _) => {}
    }

    let end = conn.state.finish();
    if let Some(err) = &end.body_error {
        tracing::debug!("Invalid request body: {err}");
    }
    shared.end_request(
        started,
        &RequestDone {
            head: conn.state.head(),
            peer: &conn.peer,
            response_fields: conn.state.kept_response_fields(),
            status: end.status,
            body_bytes: end.body_bytes,
            keep_alive: end.keep_alive,
        },
    );
    shared.app_returned(&result);
    Some(conn)
}

type Outcome = Result<Result<(), AppError>, Box<dyn std::any::Any + Send>>;

/// Runs a sync app on the blocking pool with the connection moved there;
/// `None` if the pool lost it (the runtime is shutting down).
async fn call_blocking<S>(
    conn: Box<Connection<S>>,
    app: Arc<dyn App>,
) -> Option<(Box<Connection<S>>, Outcome)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handle = Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        let mut conn = conn;
        let outcome = {
            let mut call = BlockingCall {
                conn: &mut conn,
                handle: &handle,
            };
            catch_unwind(AssertUnwindSafe(|| app.call(&mut call)))
        };
        (conn, outcome)
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
