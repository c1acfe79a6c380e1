//! `runicorn` with an app linked in for the tests (as the built-in apps
//! are, through `runicorn_cli::main_with_apps`): `stall:app`, whose async
//! entry holds its runtime's thread for `?secs=N` without awaiting, as an
//! async handler that does blocking work would. That is what the async
//! worker's heartbeat must catch (the matrix's hung-request scenario); the
//! blocking entry sleeps alike, for the other classes. And `status:app`,
//! which answers `?code=N` with status N (200 without it), and fails
//! (an app error, no response started) for `?fail=1`: the statuses and
//! log lines the metrics tests count.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use runicorn_app::{App, AppError, Application, AsyncApp, AsyncCall, BoxFuture, Call};

/// Holds the calling thread for `?secs=N` (0 when absent), then answers.
#[derive(Debug)]
struct Stall;

/// `?secs=N` of the request target.
fn secs(query: &str) -> u64 {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("secs="))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

const BODY: &[u8] = b"stalled\n";

impl App for Stall {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        std::thread::sleep(Duration::from_secs(secs(call.head().query())));
        call.start_response(200, &[("Content-Length", b"8")])?;
        call.write(BODY)?;
        Ok(())
    }
}

impl AsyncApp for Stall {
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            // Blocks the runtime's thread: no await until it is over.
            std::thread::sleep(Duration::from_secs(secs(call.head().query())));
            call.start_response(200, &[("Content-Length", b"8")])?;
            call.write(BODY).await?;
            Ok(())
        })
    }
}

/// Answers `?code=N` with status N.
#[derive(Debug)]
struct Status;

/// `?code=N` of the request target (200 when absent).
fn code(query: &str) -> u16 {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("code="))
        .and_then(|value| value.parse().ok())
        .unwrap_or(200)
}

/// `?fail=1`: the app fails before it starts a response.
fn fails(query: &str) -> bool {
    query.split('&').any(|pair| pair == "fail=1")
}

impl App for Status {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        if fails(call.head().query()) {
            return Err(AppError::new("status:app failed on purpose"));
        }
        let status = code(call.head().query());
        call.start_response(status, &[("Content-Length", b"3")])?;
        call.write(b"ok\n")?;
        Ok(())
    }
}

impl AsyncApp for Status {
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            if fails(call.head().query()) {
                return Err(AppError::new("status:app failed on purpose"));
            }
            let status = code(call.head().query());
            call.start_response(status, &[("Content-Length", b"3")])?;
            call.write(b"ok\n").await?;
            Ok(())
        })
    }
}

fn main() -> ExitCode {
    let stall = Application {
        name: "stall:app".to_owned(),
        sync: Arc::new(Stall),
        asynch: Some(Arc::new(Stall)),
    };
    let status = Application {
        name: "status:app".to_owned(),
        sync: Arc::new(Status),
        asynch: Some(Arc::new(Status)),
    };
    runicorn_cli::main_with_apps(Arc::from([
        ("stall:app".to_owned(), stall),
        ("status:app".to_owned(), status),
    ]))
}
