//! `runicorn echo:app`: answers with the request body (and its content
//! type), read through the host in small pieces.

use runicorn_app::{export_app, App, AppError, Call};

struct Echo;

impl App for Echo {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let mut body = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let read = call.read_body(&mut buf)?;
            if read == 0 {
                break;
            }
            body.extend_from_slice(&buf[..read]);
        }
        let content_type = call
            .head()
            .header("content-type")
            .unwrap_or(b"application/octet-stream")
            .to_vec();
        let length = body.len().to_string();
        call.start_response(
            200,
            &[
                ("Content-Type", &content_type),
                ("Content-Length", length.as_bytes()),
            ],
        )?;
        call.write(&body)?;
        Ok(())
    }
}

export_app!(app, Echo);
