//! Benchmark peer (issue 5): may_minihttp's hello example, configured as
//! runicorn's green worker configures may: 1 worker thread, worker pinning
//! off, 64 KiB coroutine stacks. Usage: `may-minihttp-hello 127.0.0.1:PORT`.
//! Never part of the product.

use std::io;

use may_minihttp::{HttpServer, HttpService, Request, Response};

#[derive(Clone)]
struct HelloWorld;

impl HttpService for HelloWorld {
    fn call(&mut self, _req: Request<'_, '_, '_>, res: &mut Response<'_>) -> io::Result<()> {
        res.header("Content-Type: text/plain");
        res.body("Hello, World!");
        Ok(())
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    may::config().set_workers(1).set_stack_size(64 * 1024);
    may::config().set_worker_pin(false);
    let server = HttpServer(HelloWorld).start(&addr).expect("bind");
    eprintln!("may-minihttp-hello listening at http://{addr}");
    server.join().expect("server thread");
}
