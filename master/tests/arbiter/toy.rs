//! The toy server: a master serving `ToyClass`, a tiny accept-and-answer
//! loop, with `ToyLoader` (apps `toy:ok`, `toy:boot` failing `init_worker`,
//! `toy:crash` whose worker exits at once; anything else fails to load)
//! and `ToyHooks` (each hook logs its name). Configured by `key=value`
//! lines, re-read on HUP.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runicorn_app::{App, AppError, Application, Call, LoadError, WorkerInfo};
use runicorn_master::{
    AppLoader, Arbiter, ArbiterConfig, ArbiterView, Hooks, NoHooks, Role, WorkerView,
};
use runicorn_worker::{Ending, Listener, Settings, Worker, WorkerClass};

struct ToyClass;

impl WorkerClass for ToyClass {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn run(&self, worker: Worker) -> Ending {
        for listener in &worker.listeners {
            listener.set_nonblocking(true).unwrap();
        }
        if worker.settings.app == "toy:crash" {
            return Ending::Exited(1);
        }
        let mut served = 0;
        while worker.shutdown.is_running() {
            worker.slot.heartbeat();
            let mut fds: Vec<PollFd<'_>> = worker
                .listeners
                .iter()
                .map(|listener| PollFd::new(std::os::fd::AsFd::as_fd(listener), PollFlags::POLLIN))
                .collect();
            fds.push(PollFd::new(worker.shutdown.wake_fd(), PollFlags::POLLIN));
            if poll(&mut fds, PollTimeout::from(200u16)).unwrap_or(0) == 0 {
                continue;
            }
            for listener in &worker.listeners {
                let accepted = match listener {
                    Listener::Tcp(tcp) => tcp.accept().map(|(stream, _)| {
                        stream.set_nonblocking(false).unwrap();
                        serve(stream, &worker);
                    }),
                    Listener::Unix(unix) => unix.accept().map(|(stream, _)| {
                        stream.set_nonblocking(false).unwrap();
                        serve(stream, &worker);
                    }),
                };
                if accepted.is_err() {
                    continue;
                }
                served += 1;
                if worker.max_requests > 0 && served >= worker.max_requests {
                    worker.shutdown.request_graceful();
                }
            }
        }
        Ending::Stopped
    }
}

fn serve(mut stream: impl Read + Write, worker: &Worker) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or("").to_owned();
    let _guard = worker.slot.begin_request(&line);
    tracing::info!("toy: handling {line}");
    if line.starts_with("GET /slow") {
        std::thread::sleep(Duration::from_secs(30));
    } else if line.starts_with("GET /sleep") {
        std::thread::sleep(Duration::from_millis(1500));
    }
    let body = std::process::id().to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

struct ToyApp {
    fail_boot: bool,
}

impl App for ToyApp {
    fn call(&self, _call: &mut dyn Call) -> Result<(), AppError> {
        Ok(())
    }
    fn init_worker(&self, _info: &WorkerInfo) -> Result<(), AppError> {
        if self.fail_boot {
            return Err(AppError::new("toy init_worker refuses to boot"));
        }
        Ok(())
    }
}

/// Logs each hook as it is called, so tests can read the order.
struct ToyHooks;

impl Hooks for ToyHooks {
    fn on_starting(&self, _arbiter: &ArbiterView<'_>) {
        tracing::info!("hook: on_starting");
    }
    fn when_ready(&self, arbiter: &ArbiterView<'_>) {
        tracing::info!("hook: when_ready workers={}", arbiter.num_workers);
    }
    fn pre_fork(&self, _arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        tracing::info!("hook: pre_fork age={}", worker.age);
    }
    fn post_fork(&self, _arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        tracing::info!("hook: post_fork pid={}", worker.pid);
    }
    fn post_worker_init(&self, worker: &WorkerView) {
        tracing::info!("hook: post_worker_init pid={}", worker.pid);
    }
    fn worker_exit(&self, _arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        tracing::info!("hook: worker_exit pid={}", worker.pid);
    }
    fn child_exit(&self, _arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        tracing::info!("hook: child_exit pid={}", worker.pid);
    }
    fn nworkers_changed(&self, _arbiter: &ArbiterView<'_>, new: usize, old: Option<usize>) {
        tracing::info!("hook: nworkers_changed {old:?} -> {new}");
    }
    fn on_reload(&self, _arbiter: &ArbiterView<'_>) {
        tracing::info!("hook: on_reload");
    }
    fn on_exit(&self, _arbiter: &ArbiterView<'_>) {
        tracing::info!("hook: on_exit");
    }
}

struct ToyLoader;

impl AppLoader for ToyLoader {
    fn load(&self, settings: &Settings) -> Result<Application, LoadError> {
        match settings.app.as_str() {
            "toy:ok" | "toy:boot" | "toy:crash" => Ok(Application {
                name: settings.app.clone(),
                sync: Arc::new(ToyApp {
                    fail_boot: settings.app == "toy:boot",
                }),
                asynch: None,
            }),
            other => Err(LoadError::NoModule {
                module: other.to_owned(),
                hint: String::new(),
            }),
        }
    }
}

/// `key=value` lines into settings (the toy's whole config language).
fn read_config(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
    let mut settings = Settings {
        bind: vec![],
        app: "toy:ok".into(),
        ..Settings::default()
    };
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("bad line {line:?}"))?;
        let secs = || {
            value
                .parse::<f64>()
                .map(Duration::from_secs_f64)
                .map_err(|err| err.to_string())
        };
        match key {
            "bind" => settings.bind.push(value.to_owned()),
            "workers" => {
                settings.workers = value
                    .parse()
                    .map_err(|_| format!("bad workers {value:?}"))?;
            }
            "timeout" => settings.timeout = secs()?,
            "graceful_timeout" => settings.graceful_timeout = secs()?,
            "app" => settings.app = value.to_owned(),
            "pidfile" => settings.pidfile = Some(value.into()),
            "errorlog" => settings.errorlog = value.to_owned(),
            "daemon" => settings.daemon = value == "1",
            "user" => settings.user = Some(value.to_owned()),
            "group" => settings.group = Some(value.to_owned()),
            "name" => settings.proc_name = Some(value.to_owned()),
            "max_requests" => {
                settings.max_requests = value.parse().map_err(|_| "bad max_requests")?;
            }
            other => return Err(format!("unknown key {other}")),
        }
    }
    Ok(settings)
}

pub fn toy_server(config: PathBuf) -> ExitCode {
    let settings = match read_config(&config) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("toy config: {err}");
            return ExitCode::from(2);
        }
    };
    let arbiter = Arbiter::new(ArbiterConfig {
        settings,
        class: Arc::new(ToyClass),
        loader: Arc::new(ToyLoader),
        reload: Box::new(move || read_config(&config)),
        hooks: if std::env::var_os("TOY_HOOKS").is_some() {
            Arc::new(ToyHooks)
        } else {
            Arc::new(NoHooks)
        },
    });
    match arbiter {
        Ok(arbiter) => match arbiter.run() {
            Role::Master(code) => code,
            Role::Worker(child) => child.run().into(),
        },
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
