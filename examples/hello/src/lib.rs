//! `runicorn hello:app`: Hello, World! from a shared library.
//!
//! `/panic` panics on purpose (the worker answers 500 and is recycled), and
//! `init_worker` fails or panics when `HELLO_INIT` is `fail` or `panic`, so
//! the tests can see boot failures (exit 3) through the real binary. With
//! `HELLO_INIT=exit-after:MS` the worker boots and then exits with code 1
//! MS milliseconds later: an app in a crash loop (while the file named by
//! `HELLO_CRASH_FILE` exists, when that is set).

use runicorn_app::{export_app, App, AppError, Call, WorkerInfo};

struct Hello;

impl App for Hello {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        match call.head().path() {
            "/panic" => panic!("hello panicked on purpose"),
            "/pid" => {
                let body = std::process::id().to_string();
                let length = body.len().to_string();
                call.start_response(
                    200,
                    &[
                        ("Content-Type", b"text/plain"),
                        ("Content-Length", length.as_bytes()),
                    ],
                )?;
                call.write(body.as_bytes())?;
            }
            _ => {
                let body = b"Hello, World!\n";
                call.start_response(
                    200,
                    &[("Content-Type", b"text/plain"), ("Content-Length", b"14")],
                )?;
                call.write(body)?;
            }
        }
        Ok(())
    }

    fn init_worker(&self, _info: &WorkerInfo) -> Result<(), AppError> {
        match std::env::var("HELLO_INIT").as_deref() {
            Ok("fail") => Err(AppError::new("HELLO_INIT=fail: refusing to boot")),
            Ok("panic") => panic!("HELLO_INIT=panic: init_worker panicked on purpose"),
            Ok(other) => {
                let crashing = std::env::var_os("HELLO_CRASH_FILE")
                    .is_none_or(|file| std::path::Path::new(&file).exists());
                if let Some(ms) = other
                    .strip_prefix("exit-after:")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .filter(|_| crashing)
                {
                    // init_worker is where an app may start threads.
                    std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_millis(ms));
                        std::process::exit(1);
                    });
                }
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }
}

export_app!(app, Hello);
