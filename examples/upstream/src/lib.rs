//! `runicorn upstream:app`: `GET /?addr=127.0.0.1:PORT` opens a TCP
//! connection to that upstream *through the host*, sends one line, and
//! answers with everything the upstream sent back before closing. Because the
//! host does the I/O, the worker class decides what waiting means: under
//! `green` many of these wait at once in one thread.

use runicorn_app::{export_app, App, AppError, Call};

struct UpstreamApp;

fn addr(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| pair.strip_prefix("addr="))
}

impl App for UpstreamApp {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let Some(addr) = addr(call.head().query()).map(str::to_owned) else {
            call.start_response(400, &[("Content-Length", b"22")])?;
            call.write(b"missing ?addr=host:port")?;
            return Ok(());
        };
        let mut upstream = call.host().connect(&addr)?;
        upstream
            .write_all(format!("{} {}\n", call.head().method, call.head().target).as_bytes())?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let read = upstream.read(&mut buf)?;
            if read == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..read]);
        }
        let length = reply.len().to_string();
        call.start_response(
            200,
            &[
                ("Content-Type", b"text/plain"),
                ("Content-Length", length.as_bytes()),
            ],
        )?;
        call.write(&reply)?;
        Ok(())
    }
}

export_app!(app, UpstreamApp);
