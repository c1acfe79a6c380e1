//! Benchmark peer (issue 6): the smallest honest hyper 1.x HTTP/1.1 server,
//! one tokio `current_thread` runtime, one task per connection, keep-alive on.
//! Usage: `async-hyper-hello 127.0.0.1:PORT`. Never part of the product.
//!
//! Its response has the same header set as runicorn's (`Server`, `Date`,
//! `Content-Type`, `Content-Length`) and the same length in bytes: with one
//! wrk thread as the bottleneck, a shorter response would make the client
//! do less work per request and measure the response, not the server.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"Hello, World!";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    let headers = res.headers_mut();
    // `Server: runicorn` is 8 bytes of value; so is `hyper-1x`.
    headers.insert(SERVER, HeaderValue::from_static("hyper-1x"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(res)
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!(
            "async-hyper-hello listening at http://{}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::task::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}
