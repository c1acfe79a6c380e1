//! Process-level tests of the arbiter with a toy worker class.
//!
//! The test binary re-executes itself with `--toy-server CONFIG` to become a
//! master (single-threaded: this target has no libtest harness) serving
//! `ToyClass`, a tiny accept-and-answer loop, and `ToyLoader`. Each test
//! starts its master in its own process group, kills the whole group on
//! drop (also on panic), binds 127.0.0.1:0 and reads the port from the log,
//! and waits on conditions with deadlines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use runicorn_app::{App, AppError, Application, Call, LoadError, WorkerInfo};
use runicorn_master::{
    AppLoader, Arbiter, ArbiterConfig, ArbiterView, Hooks, Listener, NoHooks, Settings, Worker,
    WorkerClass, WorkerView,
};

// --- the toy server -------------------------------------------------------

struct ToyClass;

impl WorkerClass for ToyClass {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn run(&self, worker: Worker) -> ExitCode {
        for listener in &worker.listeners {
            listener.set_nonblocking(true).unwrap();
        }
        if worker.settings.app == "toy:crash" {
            return ExitCode::from(1);
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
        ExitCode::SUCCESS
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

fn toy_server(config: PathBuf) -> ExitCode {
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
        Ok(arbiter) => arbiter.run(),
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

// --- the harness side -------------------------------------------------------

/// A running toy master; its process group is killed on drop.
struct Server {
    child: Child,
    /// Process groups of daemonized masters, killed on drop too.
    daemon_groups: std::cell::RefCell<Vec<i32>>,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Server {
    fn start(lines: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("toy.conf");
        let log = dir.path().join("error.log");
        let mut text = format!("errorlog={}\n", log.display());
        if !lines.iter().any(|line| line.starts_with("bind=")) {
            text.push_str("bind=127.0.0.1:0\n");
        }
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&config, text).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("--toy-server")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        LIVE_GROUPS.lock().unwrap().push(child.id() as i32);
        Server {
            child,
            daemon_groups: Default::default(),
            dir,
            config,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn wait_log(&self, what: &str, deadline: Duration) -> String {
        let log = wait_for(deadline, || {
            let log = self.log();
            log.contains(what).then_some(log)
        });
        log.unwrap_or_else(|| panic!("log never said {what:?}; log:\n{}", self.log()))
    }

    fn port(&self) -> u16 {
        let log = self.wait_log("Listening at: http://127.0.0.1:", Duration::from_secs(10));
        let rest = log.split("Listening at: http://127.0.0.1:").nth(1).unwrap();
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    /// The pids named in `Booting worker with pid: N` lines, in order.
    fn booted(&self) -> Vec<i32> {
        self.log()
            .lines()
            .filter_map(|line| line.split("Booting worker with pid: ").nth(1))
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    }

    fn wait_booted(&self, count: usize) -> Vec<i32> {
        wait_for(Duration::from_secs(10), || {
            let booted = self.booted();
            (booted.len() >= count).then_some(booted)
        })
        .unwrap_or_else(|| panic!("{count} workers never booted; log:\n{}", self.log()))
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap();
    }

    fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let status = wait_for(deadline, || self.child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("master did not exit; log:\n{}", self.log()));
        status.code().unwrap_or(-1)
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }

    fn set_config(&self, lines: &[&str]) {
        let log = self.dir.path().join("error.log");
        let mut text = format!("errorlog={}\n", log.display());
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&self.config, text).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for group in self.daemon_groups.borrow().iter() {
            let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
            LIVE_GROUPS.lock().unwrap().retain(|live| live != group);
        }
        LIVE_GROUPS
            .lock()
            .unwrap()
            .retain(|live| *live != self.pid());
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Every process group a test started and has not killed yet, for the
/// watchdog.
static LIVE_GROUPS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// The longest one test may take before the run is abandoned.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// Kills every live group and exits if `done` is not signalled in time.
fn watchdog(name: &'static str) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(TEST_DEADLINE) {
            eprintln!("test {name} ... TIMED OUT after {TEST_DEADLINE:?}");
            for group in LIVE_GROUPS.lock().unwrap().iter() {
                let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
            }
            std::process::exit(1);
        }
    });
    done
}

fn wait_for<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): check /proc for the state too.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !status.is_empty() && !status.contains(") Z ")
}

fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

fn workers_gone(pids: &[i32]) -> bool {
    wait_for(Duration::from_secs(5), || {
        pids.iter().all(|pid| !alive(*pid)).then_some(())
    })
    .is_some()
}

// --- the tests --------------------------------------------------------------

fn workers_spawned_and_replaced_after_sigkill() {
    let mut server = Server::start(&["workers=2"]);
    let port = server.port();
    let pids = server.wait_booted(2);
    assert!(pids.contains(&get(port, "/").unwrap().parse().unwrap()));
    kill(Pid::from_raw(pids[0]), Signal::SIGKILL).unwrap();
    let log = server.wait_log(
        &format!("Worker (pid:{}) was sent SIGKILL!", pids[0]),
        Duration::from_secs(5),
    );
    assert!(log.contains("The master did not send it"), "{log}");
    let booted = server.wait_booted(3);
    assert!(alive(booted[2]));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(workers_gone(&booted));
}

fn term_is_graceful_and_exits_zero() {
    let mut server = Server::start(&["workers=1", "graceful_timeout=10"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let client = std::thread::spawn(move || get(port, "/sleep"));
    server.wait_log("toy: handling GET /sleep", Duration::from_secs(5));
    server.signal(Signal::SIGTERM);
    let body = client
        .join()
        .unwrap()
        .expect("the in-flight request finishes");
    assert_eq!(body, pids[0].to_string());
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(workers_gone(&pids));
    assert!(server.log().contains("Shutting down: Master"));
}

fn term_kills_what_overruns_graceful_timeout() {
    let mut server = Server::start(&["workers=1", "graceful_timeout=1", "timeout=60"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let client = std::thread::spawn(move || get(port, "/slow"));
    server.wait_log("toy: handling GET /slow", Duration::from_secs(5));
    let started = Instant::now();
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    // Generous bound: 1 s of grace, then SIGKILL, far below the 30 s request.
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(workers_gone(&pids));
    let _ = client.join();
}

fn hooks_are_called_where_gunicorn_calls_them() {
    std::env::set_var("TOY_HOOKS", "1");
    let mut server = Server::start(&["workers=1"]);
    std::env::remove_var("TOY_HOOKS");
    let pids = server.wait_booted(1);
    server.wait_log(
        &format!("hook: post_worker_init pid={}", pids[0]),
        Duration::from_secs(5),
    );
    server.signal(Signal::SIGTTIN);
    server.wait_log(
        "hook: nworkers_changed Some(1) -> 2",
        Duration::from_secs(5),
    );
    server.wait_booted(2);
    server.signal(Signal::SIGHUP);
    server.wait_log("hook: on_reload", Duration::from_secs(5));
    server.wait_log(
        &format!("hook: child_exit pid={}", pids[0]),
        Duration::from_secs(5),
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    let log = server.log();
    let order = [
        "hook: on_starting",
        "hook: when_ready workers=1",
        "hook: nworkers_changed None -> 1",
        "hook: pre_fork age=1",
        "hook: post_fork pid=",
        "hook: post_worker_init pid=",
        "hook: worker_exit pid=",
        "hook: on_exit",
    ];
    let mut from = 0;
    for hook in order {
        let at = log[from..]
            .find(hook)
            .unwrap_or_else(|| panic!("{hook} missing or out of order:\n{log}"));
        from += at;
    }
}

fn workers_drop_privileges_when_root() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("(skipped: not root)");
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("(skipped: no user nobody)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p.sock");
    let bind_line = format!("bind=unix:{}", socket.display());
    let mut server = Server::start(&["workers=1", "user=nobody", &bind_line]);
    let pids = server.wait_booted(1);
    let status = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .map(|line| {
                line.split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let worker = wait_for(Duration::from_secs(5), || {
        let text = status(pids[0]);
        field(&text, "Uid:")
            .starts_with(&nobody.uid.to_string())
            .then_some(text)
    })
    .unwrap_or_else(|| panic!("worker still {}", field(&status(pids[0]), "Uid:")));
    let uid = nobody.uid.to_string();
    let gid = nobody.gid.to_string();
    assert_eq!(field(&worker, "Uid:"), [uid.as_str(); 4].join(" "));
    assert_eq!(field(&worker, "Gid:"), [gid.as_str(); 4].join(" "));
    assert_eq!(field(&worker, "Groups:"), "");
    assert!(
        field(&status(server.pid()), "Uid:").starts_with("0 "),
        "master keeps root"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().uid(),
        nobody.uid.as_raw()
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn quit_is_quick() {
    let mut server = Server::start(&["workers=2", "graceful_timeout=20"]);
    let pids = server.wait_booted(2);
    let started = Instant::now();
    server.signal(Signal::SIGQUIT);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(workers_gone(&pids));
}

fn ttin_and_ttou_change_the_count() {
    let mut server = Server::start(&["workers=1"]);
    let first = server.wait_booted(1);
    server.signal(Signal::SIGTTIN);
    let two = server.wait_booted(2);
    server.signal(Signal::SIGTTOU);
    // The oldest worker retires.
    assert!(workers_gone(&first), "log:\n{}", server.log());
    assert!(alive(two[1]));
    server.signal(Signal::SIGTTOU);
    server.wait_log("Keeping 1 worker", Duration::from_secs(5));
    assert!(alive(two[1]));
    assert_eq!(server.booted().len(), 2);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn hup_replaces_every_worker() {
    let mut server = Server::start(&["workers=2"]);
    let port = server.port();
    let old = server.wait_booted(2);
    server.signal(Signal::SIGHUP);
    let all = server.wait_booted(4);
    assert!(
        workers_gone(&old),
        "old workers retire; log:\n{}",
        server.log()
    );
    let served: i32 = get(port, "/").unwrap().parse().unwrap();
    assert!(all[2..].contains(&served));
    // A broken config keeps the running one.
    std::fs::write(&server.config, "workers=lots\n").unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_log(
        "Reload failed, keeping the running configuration",
        Duration::from_secs(5),
    );
    assert!(
        all[2..].iter().all(|pid| alive(*pid)),
        "{all:?} log:\n{}",
        server.log()
    );
    // A config whose workers cannot boot keeps the old workers serving.
    server.set_config(&["bind=127.0.0.1:0", "workers=2", "app=toy:boot"]);
    server.signal(Signal::SIGHUP);
    server.wait_log("cannot boot", Duration::from_secs(10));
    assert!(
        all[2..].iter().all(|pid| alive(*pid)),
        "{all:?} log:\n{}",
        server.log()
    );
    let served: i32 = get(port, "/").unwrap().parse().unwrap();
    assert!(all[2..].contains(&served));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn timeout_kills_and_names_the_request() {
    let mut server = Server::start(&["workers=1", "timeout=1"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let client = std::thread::spawn(move || get(port, "/slow"));
    let log = server.wait_log("WORKER TIMEOUT", Duration::from_secs(10));
    assert!(
        log.contains(&format!("WORKER TIMEOUT (pid:{})", pids[0])),
        "{log}"
    );
    assert!(
        log.contains("handling \"GET /slow HTTP/1.1\" (started"),
        "{log}"
    );
    let _ = client.join();
    server.wait_booted(2);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn boot_failure_halts_with_the_code() {
    let mut server = Server::start(&["workers=2", "app=toy:boot"]);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 3);
    assert!(
        server.log().contains("Reason: Worker failed to boot."),
        "{}",
        server.log()
    );
    let mut server = Server::start(&["workers=1", "app=nope:app"]);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 4);
    assert!(
        server.log().contains("Reason: App failed to load."),
        "{}",
        server.log()
    );
    assert!(
        server.log().contains("No module named 'nope:app'"),
        "{}",
        server.log()
    );
}

fn pidfile_and_unix_socket_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("toy.pid");
    let socket = dir.path().join("toy.sock");
    let pid_line = format!("pidfile={}", pidfile.display());
    let bind_line = format!("bind=unix:{}", socket.display());
    let mut server = Server::start(&[&pid_line, &bind_line, "workers=1"]);
    server.wait_booted(1);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        server.pid().to_string()
    );
    assert!(socket.exists());
    // A second master with the same pidfile is refused.
    let mut second = Server::start(&[&pid_line, "workers=1"]);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), 1);
    assert!(second.stderr().contains("already running"));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(!pidfile.exists(), "pidfile removed");
    assert!(!socket.exists(), "socket file removed");
}

fn port_in_use_is_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let bind_line = format!("bind={address}");
    let mut server = Server::start(&[&bind_line]);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 1);
    let stderr = server.stderr();
    assert!(
        stderr.contains(&format!("Connection in use: {address}")),
        "{stderr}"
    );
}

fn max_requests_recycles() {
    let mut server = Server::start(&["workers=1", "max_requests=2"]);
    let port = server.port();
    let first = server.wait_booted(1);
    for _ in 0..2 {
        assert_eq!(get(port, "/").unwrap(), first[0].to_string());
    }
    let booted = server.wait_booted(2);
    assert!(workers_gone(&first));
    assert_eq!(get(port, "/").unwrap(), booted[1].to_string());
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn process_titles_name_the_role() {
    let mut server = Server::start(&["workers=1", "name=shop"]);
    let pids = server.wait_booted(1);
    let cmdline = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline(server.pid()).starts_with("runicorn: master [shop]"),
        "{:?}",
        cmdline(server.pid())
    );
    assert!(
        cmdline(pids[0]).starts_with("runicorn: worker [shop]"),
        "{:?}",
        cmdline(pids[0])
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pids[0])).unwrap();
    assert_eq!(comm.trim(), "runicorn-worker");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn usr1_reopens_the_log_in_master_and_workers() {
    let mut server = Server::start(&["workers=1"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let log = server.dir.path().join("error.log");
    std::fs::rename(&log, server.dir.path().join("error.log.1")).unwrap();
    server.signal(Signal::SIGUSR1);
    server.wait_log("Handling signal: usr1", Duration::from_secs(5));
    // Give the worker its USR1 before its next line: wait for it to be
    // delivered by asking until the worker's line lands in the new file.
    let landed = wait_for(Duration::from_secs(5), || {
        get(port, "/").ok()?;
        server.log().contains("toy: handling GET /").then_some(())
    });
    assert!(
        landed.is_some(),
        "worker kept the old file; new log:\n{}",
        server.log()
    );
    assert!(alive(pids[0]));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn hup_rebinds_when_bind_changes() {
    let mut server = Server::start(&["workers=1"]);
    let port = server.port();
    let old = server.wait_booted(1);
    let socket = server.dir.path().join("new.sock");
    let bind_line = format!("bind=unix:{}", socket.display());
    server.set_config(&[&bind_line, "workers=1"]);
    server.signal(Signal::SIGHUP);
    let booted = server.wait_booted(2);
    assert!(workers_gone(&old), "log:\n{}", server.log());
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET / HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.ends_with(&booted[1].to_string()), "{response}");
    // The old listener closes once its generation is gone.
    let closed = wait_for(Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    assert!(
        closed.is_some(),
        "old port still open; log:\n{}",
        server.log()
    );
    // A spec kept across a HUP is reused, not rebound: same socket file.
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&socket).unwrap().ino();
    server.set_config(&[&bind_line, "bind=127.0.0.1:0", "workers=1"]);
    server.signal(Signal::SIGHUP);
    server.wait_booted(3);
    assert_eq!(std::fs::metadata(&socket).unwrap().ino(), inode);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(!socket.exists());
}

fn fast_deaths_back_off() {
    let mut server = Server::start(&["workers=1", "app=toy:crash"]);
    server.wait_log("respawning in 0.4s", Duration::from_secs(10));
    // 100 + 200 + 400 ms of back-off: a handful of boots, not a tight loop.
    let boots = server.booted().len();
    assert!(
        (3..=12).contains(&boots),
        "{boots} boots; log:\n{}",
        server.log()
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn daemon_detaches_and_writes_the_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("d.pid");
    let pid_line = format!("pidfile={}", pidfile.display());
    let mut server = Server::start(&["workers=1", "daemon=1", &pid_line]);
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)),
        0,
        "the launcher exits at once"
    );
    let daemon =
        wait_for(Duration::from_secs(10), || pidfile::read(&pidfile)).expect("pidfile written");
    if let Ok(group) = nix::unistd::getpgid(Some(Pid::from_raw(daemon))) {
        server.daemon_groups.borrow_mut().push(group.as_raw());
    }
    assert_ne!(daemon, server.pid());
    let port = server.port();
    let body = wait_for(Duration::from_secs(10), || {
        get(port, "/").ok().filter(|body| !body.is_empty())
    });
    assert!(body.is_some());
    kill(Pid::from_raw(daemon), Signal::SIGTERM).unwrap();
    let removed = wait_for(Duration::from_secs(10), || {
        (!pidfile.exists()).then_some(())
    });
    assert!(removed.is_some(), "log:\n{}", server.log());
}

mod pidfile {
    pub fn read(path: &std::path::Path) -> Option<i32> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--toy-server") {
        return toy_server(PathBuf::from(&args[2]));
    }
    let filter = args
        .iter()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .cloned();
    let tests: &[(&'static str, fn())] = &[
        (
            "workers_spawned_and_replaced_after_sigkill",
            workers_spawned_and_replaced_after_sigkill,
        ),
        (
            "term_is_graceful_and_exits_zero",
            term_is_graceful_and_exits_zero,
        ),
        (
            "term_kills_what_overruns_graceful_timeout",
            term_kills_what_overruns_graceful_timeout,
        ),
        (
            "hooks_are_called_where_gunicorn_calls_them",
            hooks_are_called_where_gunicorn_calls_them,
        ),
        (
            "workers_drop_privileges_when_root",
            workers_drop_privileges_when_root,
        ),
        ("quit_is_quick", quit_is_quick),
        (
            "ttin_and_ttou_change_the_count",
            ttin_and_ttou_change_the_count,
        ),
        ("hup_replaces_every_worker", hup_replaces_every_worker),
        (
            "timeout_kills_and_names_the_request",
            timeout_kills_and_names_the_request,
        ),
        (
            "boot_failure_halts_with_the_code",
            boot_failure_halts_with_the_code,
        ),
        (
            "pidfile_and_unix_socket_semantics",
            pidfile_and_unix_socket_semantics,
        ),
        (
            "port_in_use_is_one_clear_line",
            port_in_use_is_one_clear_line,
        ),
        ("max_requests_recycles", max_requests_recycles),
        ("process_titles_name_the_role", process_titles_name_the_role),
        (
            "usr1_reopens_the_log_in_master_and_workers",
            usr1_reopens_the_log_in_master_and_workers,
        ),
        (
            "hup_rebinds_when_bind_changes",
            hup_rebinds_when_bind_changes,
        ),
        ("fast_deaths_back_off", fast_deaths_back_off),
        (
            "daemon_detaches_and_writes_the_pidfile",
            daemon_detaches_and_writes_the_pidfile,
        ),
    ];
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        if filter
            .as_ref()
            .is_some_and(|filter| !name.contains(filter.as_str()))
        {
            continue;
        }
        ran += 1;
        let started = Instant::now();
        let done = watchdog(name);
        let outcome = std::panic::catch_unwind(test);
        let _ = done.send(());
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        eprintln!(
            "test {name} ... {verdict} ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    eprintln!(
        "test result: {} passed; {} failed",
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
