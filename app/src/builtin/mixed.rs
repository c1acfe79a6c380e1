//! `builtin:mixed`: waits `?ms=N` milliseconds (default 20) with the worker
//! class's own kind of wait, as `builtin:sleep` does, then burns `?n=N`
//! rounds (default 200) of `builtin:cpu`'s loop, and answers. The
//! "realistic web request" workload of the comparisons: a database wait,
//! then rendering.

use std::time::Duration;

use super::{cpu, query};
use crate::contract::{App, AppError, AsyncApp, AsyncCall, BoxFuture, Call};

/// The wait when `?ms` is absent.
const DEFAULT_MS: u64 = 20;

/// Rounds of CPU work when `?n` is absent (about 0.2 ms on a current core).
const DEFAULT_ROUNDS: u64 = 200;

/// Waits, burns, then answers `mixed N ms, M rounds: DIGEST`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mixed;

/// The wait and the rounds a query asks for, or the 400's message.
fn parse(query: &str) -> Result<(u64, u64), String> {
    let ms = query::number(query, "ms", DEFAULT_MS)?;
    let rounds = query::number(query, "n", DEFAULT_ROUNDS)?;
    Ok((ms, rounds))
}

/// Burns `rounds` and says what was done.
fn render(ms: u64, rounds: u64) -> Vec<u8> {
    format!(
        "mixed {ms} ms, {rounds} rounds: {:016x}\n",
        cpu::burn(rounds)
    )
    .into_bytes()
}

impl App for Mixed {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let (ms, rounds) = match parse(call.head().query()) {
            Ok(parsed) => parsed,
            Err(message) => return super::bad_request(call, &message),
        };
        call.host().sleep(Duration::from_millis(ms));
        let body = render(ms, rounds);
        super::plain(call, 200, &body)
    }
}

impl AsyncApp for Mixed {
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let (status, body) = match parse(call.head().query()) {
                Ok((ms, rounds)) => {
                    call.sleep(Duration::from_millis(ms)).await;
                    // The rendering runs on the runtime's thread, as an
                    // async framework's handler does.
                    (200, render(ms, rounds))
                }
                Err(message) => (400, message.into_bytes()),
            };
            super::plain_async(call, status, &body).await
        })
    }
}
