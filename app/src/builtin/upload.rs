//! `builtin:upload`: reads the whole request body into a fixed buffer
//! (nothing kept, so any size costs the same memory) and answers
//! `received N bytes`. The upload workload of the comparisons.

use crate::contract::{App, AppError, AsyncApp, AsyncCall, BoxFuture, Call};

/// The buffer each read fills.
const BUFFER: usize = 64 * 1024;

/// Reads and counts the body, then answers `received N bytes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Upload;

fn reply(received: u64) -> Vec<u8> {
    format!("received {received} bytes\n").into_bytes()
}

impl App for Upload {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let mut buf = vec![0u8; BUFFER];
        let mut received = 0u64;
        loop {
            let read = call.read_body(&mut buf)?;
            if read == 0 {
                break;
            }
            received += read as u64;
        }
        super::plain(call, 200, &reply(received))
    }
}

impl AsyncApp for Upload {
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let mut buf = vec![0u8; BUFFER];
            let mut received = 0u64;
            loop {
                let read = call.read_body(&mut buf).await?;
                if read == 0 {
                    break;
                }
                received += read as u64;
            }
            super::plain_async(call, 200, &reply(received)).await
        })
    }
}
