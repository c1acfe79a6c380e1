//! `builtin:sleep`: waits `?ms=N` milliseconds (default 100) with the worker
//! class's own kind of wait (`Host::sleep`, or `AsyncCall::sleep` under the
//! async class), then answers. The I/O-bound workload of the comparisons.

use std::time::Duration;

use super::query;
use crate::contract::{App, AppError, AsyncApp, AsyncCall, BoxFuture, Call};

/// The wait when `?ms` is absent.
const DEFAULT_MS: u64 = 100;

/// Sleeps, then answers `slept N ms`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

fn reply(ms: u64) -> Vec<u8> {
    format!("slept {ms} ms\n").into_bytes()
}

impl App for Sleep {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let ms = match query::number(call.head().query(), "ms", DEFAULT_MS) {
            Ok(ms) => ms,
            Err(message) => return super::bad_request(call, &message),
        };
        call.host().sleep(Duration::from_millis(ms));
        let body = reply(ms);
        super::plain(call, 200, &body)
    }
}

impl AsyncApp for Sleep {
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let parsed = query::number(call.head().query(), "ms", DEFAULT_MS);
            let (status, body) = match parsed {
                Ok(ms) => {
                    call.sleep(Duration::from_millis(ms)).await;
                    (200, reply(ms))
                }
                Err(message) => (400, message.into_bytes()),
            };
            super::plain_async(call, status, &body).await
        })
    }
}
