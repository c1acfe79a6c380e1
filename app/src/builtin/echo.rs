//! `builtin:echo`: the introspection app of the conformance tests. It reads
//! the whole body and answers 200 `application/json` describing the request
//! exactly as parsed: header names as received, in received order, and
//! where it came from (`peer`, `client_addr`, `forwarded_host`,
//! `url_scheme`, `server_addr`, and what a PROXY header said:
//! `proxy_protocol`, `proxy_addr`).

use base64::Engine as _;
use serde_json::{json, Value};

use crate::contract::{App, AppError, Call};
use runicorn_http::Header;

/// Describes each request back to the client as JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

fn fields(headers: &[Header]) -> Value {
    headers
        .iter()
        .map(|field| json!([field.name, String::from_utf8_lossy(&field.value)]))
        .collect()
}

impl App for Echo {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let mut body = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let read = call.read_body(&mut buf)?;
            if read == 0 {
                break;
            }
            body.extend_from_slice(&buf[..read]);
        }
        let head = call.head();
        let description = json!({
            "method": head.method,
            "target": head.target,
            "path": head.path(),
            "query": head.query(),
            "version": head.version.as_str(),
            "headers": fields(&head.headers),
            "body_b64": base64::engine::general_purpose::STANDARD.encode(&body),
            "trailers": fields(call.trailers()),
            "peer": call.peer(),
            "client_addr": call.client_addr(),
            "forwarded_host": call.forwarded_host(),
            "proxy_protocol": call.proxy_protocol(),
            "proxy_addr": call.proxy_addr(),
            "url_scheme": call.url_scheme(),
            "server_addr": call.server_addr(),
        });
        let mut encoded = serde_json::to_vec(&description)
            .map_err(|err| AppError::new(format!("cannot encode the echo: {err}")))?;
        encoded.push(b'\n');
        let length = encoded.len().to_string();
        call.start_response(
            200,
            &[
                ("Content-Type", b"application/json"),
                ("Content-Length", length.as_bytes()),
            ],
        )?;
        call.write(&encoded)?;
        Ok(())
    }
}
