//! Gunicorn's server hooks from a library: every hook appends one line to
//! the file named by `HOOKS_LOG` (`post_fork pid=... age=...`), and `app`
//! says hello. Configure with e.g. `post_fork = "hooks:post_fork"`. A hook
//! named by `HOOKS_HANG` (say `worker_int`) never returns after its line, to
//! show that the master still kills a worker stuck in a hook.

use std::io::Write;

use runicorn_app::hooks::HookEvent;
use runicorn_app::{export_app, export_hook, App, AppError, Call};

fn record(event: &HookEvent) -> Result<(), String> {
    let Ok(path) = std::env::var("HOOKS_LOG") else {
        return Ok(());
    };
    let mut line = format!("{} pid={}", event.hook, std::process::id());
    if let Some(worker) = &event.worker {
        line.push_str(&format!(" worker_pid={} age={}", worker.pid, worker.age));
    }
    if let Some(arbiter) = &event.arbiter {
        line.push_str(&format!(" workers={}", arbiter.num_workers));
    }
    if let Some(request) = &event.request {
        line.push_str(&format!(" path={}", request.path()));
    }
    if event.status != 0 {
        line.push_str(&format!(" status={}", event.status));
    }
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|err| err.to_string())?;
    file.write_all(line.as_bytes())
        .map_err(|err| err.to_string())?;
    drop(file);
    if std::env::var("HOOKS_HANG").is_ok_and(|hook| hook == event.hook.as_str()) {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    Ok(())
}

export_hook!(on_starting, record);
export_hook!(on_reload, record);
export_hook!(when_ready, record);
export_hook!(pre_fork, record);
export_hook!(post_fork, record);
export_hook!(post_worker_init, record);
export_hook!(worker_int, record);
export_hook!(worker_abort, record);
export_hook!(pre_request, record);
export_hook!(post_request, record);
export_hook!(child_exit, record);
export_hook!(worker_exit, record);
export_hook!(nworkers_changed, record);
export_hook!(on_exit, record);
export_hook!(pre_exec, record);

struct Hello;

impl App for Hello {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        call.start_response(200, &[("Content-Length", b"6")])?;
        call.write(b"hooks\n")?;
        Ok(())
    }
}

export_app!(app, Hello);
