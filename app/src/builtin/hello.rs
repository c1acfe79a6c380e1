//! `builtin:hello`: 200 `Hello, World!` as text/plain, the smallest app.

use crate::contract::{App, AppError, AsyncApp, AsyncCall, BoxFuture, Call};

const BODY: &[u8] = b"Hello, World!";
const CONTENT_LENGTH: &[u8] = b"13";

/// Answers every request with `Hello, World!`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hello;

impl App for Hello {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        call.start_response(
            200,
            &[
                ("Content-Type", b"text/plain"),
                ("Content-Length", CONTENT_LENGTH),
            ],
        )?;
        call.write(BODY)?;
        Ok(())
    }
}

impl AsyncApp for Hello {
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            call.start_response(
                200,
                &[
                    ("Content-Type", b"text/plain"),
                    ("Content-Length", CONTENT_LENGTH),
                ],
            )?;
            call.write(BODY).await?;
            Ok(())
        })
    }
}
