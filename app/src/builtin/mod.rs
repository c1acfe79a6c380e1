//! The apps compiled into the binary, served as `builtin:NAME`: for trying
//! runicorn without writing an app, for conformance tests (`echo`) and for
//! comparing concurrency models on sleeping, CPU-bound, mixed, streaming,
//! uploading and upstream-bound work. Each app is one small file; [`lookup`]
//! is the table.

mod cpu;
mod echo;
mod hello;
mod mixed;
mod query;
mod sleep;
mod stream;
mod upload;
mod upstream;

use std::sync::Arc;

use crate::contract::{App, Application, AsyncApp, LoadError};

pub use cpu::Cpu;
pub use echo::Echo;
pub use hello::Hello;
pub use mixed::Mixed;
pub use sleep::Sleep;
pub use stream::Stream;
pub use upload::Upload;
pub use upstream::UpstreamApp;

/// The module name of the built-in apps (`builtin:hello`).
pub const MODULE: &str = "builtin";

/// Every built-in app's name, in the order `--help` and errors list them.
pub const NAMES: [&str; 8] = [
    "hello", "echo", "sleep", "cpu", "mixed", "stream", "upload", "upstream",
];

/// The built-in app called `name` (the part after `builtin:`).
///
/// An unknown name gets Gunicorn's older words,
/// `Failed to find application object 'nope' in 'builtin'`, and the list of
/// the names that exist.
pub fn lookup(name: &str) -> Result<Application, LoadError> {
    let (sync, asynch): (Arc<dyn App>, Option<Arc<dyn AsyncApp>>) = match name {
        "hello" => (Arc::new(Hello), Some(Arc::new(Hello))),
        "echo" => (Arc::new(Echo), None),
        "sleep" => (Arc::new(Sleep), Some(Arc::new(Sleep))),
        "cpu" => (Arc::new(Cpu), None),
        "mixed" => (Arc::new(Mixed), Some(Arc::new(Mixed))),
        "stream" => (Arc::new(Stream), None),
        "upload" => (Arc::new(Upload), Some(Arc::new(Upload))),
        "upstream" => (Arc::new(UpstreamApp), None),
        _ => {
            return Err(LoadError::NoObject {
                object: name.to_owned(),
                module: MODULE.to_owned(),
                hint: format!(
                    "; the built-in apps are {} (for example `runicorn builtin:hello`)",
                    NAMES.join(", ")
                ),
            })
        }
    };
    Ok(Application {
        name: format!("{MODULE}:{name}"),
        sync,
        asynch,
    })
}

/// Answers 400 with `message` (a bad query parameter of a built-in app).
fn bad_request(
    call: &mut dyn crate::contract::Call,
    message: &str,
) -> Result<(), crate::contract::AppError> {
    plain(call, 400, message.as_bytes())
}

/// Answers `status` with `body` as text/plain with its Content-Length: the
/// whole response of every small built-in app.
fn plain(
    call: &mut dyn crate::contract::Call,
    status: u16,
    body: &[u8],
) -> Result<(), crate::contract::AppError> {
    let length = body.len().to_string();
    call.start_response(
        status,
        &[
            ("Content-Type", b"text/plain"),
            ("Content-Length", length.as_bytes()),
        ],
    )?;
    call.write(body)?;
    Ok(())
}

/// [`plain`] for an async app.
async fn plain_async(
    call: &mut dyn crate::contract::AsyncCall,
    status: u16,
    body: &[u8],
) -> Result<(), crate::contract::AppError> {
    let length = body.len().to_string();
    call.start_response(
        status,
        &[
            ("Content-Type", b"text/plain"),
            ("Content-Length", length.as_bytes()),
        ],
    )?;
    call.write(body).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
