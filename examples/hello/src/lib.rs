//! `runicorn hello:app`: Hello, World! from a shared library.
//!
//! `/panic` panics on purpose (the worker answers 500 and is recycled), and
//! `init_worker` fails or panics when `HELLO_INIT` is `fail` or `panic`, so
//! the tests can see boot failures (exit 3) through the real binary. With
//! `HELLO_INIT=exit-after:MS` the worker boots and then exits with code 1
//! MS milliseconds later: an app in a crash loop (while the file named by
//! `HELLO_CRASH_FILE` exists, when that is set); with `HELLO_INIT=sleep:MS`
//! it takes MS milliseconds to boot. With `HELLO_BOOTED_DIR` set, each
//! worker creates a file named by its pid there once booted. `/env/NAME`
//! answers the worker's value of the environment variable NAME, or `unset`.

use runicorn_app::{export_app, App, AppError, Call, WorkerInfo};

struct Hello;

impl App for Hello {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        match call.head().path() {
            "/panic" => panic!("hello panicked on purpose"),
            path if path.starts_with("/env/") => {
                let name = &path["/env/".len()..];
                let body = std::env::var(name).unwrap_or_else(|_| "unset".to_owned());
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
        init(std::env::var("HELLO_INIT").as_deref())?;
        if let Some(dir) = std::env::var_os("HELLO_BOOTED_DIR") {
            let marker = std::path::Path::new(&dir).join(std::process::id().to_string());
            std::fs::write(marker, b"").map_err(|err| AppError::new(err.to_string()))?;
        }
        Ok(())
    }
}

/// `HELLO_INIT`'s modes.
fn init(mode: Result<&str, &std::env::VarError>) -> Result<(), AppError> {
    match mode {
        Ok("fail") => Err(AppError::new("HELLO_INIT=fail: refusing to boot")),
        Ok("panic") => panic!("HELLO_INIT=panic: init_worker panicked on purpose"),
        Ok(other) if other.starts_with("sleep:") => {
            let ms = other["sleep:".len()..].parse::<u64>().unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(())
        }
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

export_app!(app, Hello);
