//! `runicorn sleep:app`: `GET /?ms=N` sleeps N milliseconds through the host
//! (a blocked thread under sync/gthread, a yielded coroutine under green),
//! then answers.

use std::time::Duration;

use runicorn_app::{export_app, App, AppError, Call};

struct Sleep;

fn millis(query: &str) -> u64 {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|value| value.parse().ok())
        .unwrap_or(100)
}

impl App for Sleep {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let ms = millis(call.head().query());
        call.host().sleep(Duration::from_millis(ms));
        let body = format!("slept {ms} ms\n");
        let length = body.len().to_string();
        call.start_response(
            200,
            &[
                ("Content-Type", b"text/plain"),
                ("Content-Length", length.as_bytes()),
            ],
        )?;
        call.write(body.as_bytes())?;
        Ok(())
    }
}

export_app!(app, Sleep);
