//! The arbiter: the master's one loop.
//!
//! Gunicorn's steps, top to bottom: wait for a signal or a second, handle
//! each queued signal (`handle_<signal>`, in `signals.rs`), reap exited
//! workers (`reap.rs`), murder silent ones, fix the number of workers
//! (`manage_workers`, forking with `spawn_worker` in `spawn.rs`). The
//! decisions are pure code in `supervisor.rs`. Single-threaded for its whole
//! life; signal handlers only write a byte to a self-pipe.

mod reap;
mod signals;
mod spawn;
pub mod supervisor;

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use runicorn_app::Application;

use crate::clock::monotonic_now;
use crate::error::MasterError;
use crate::hooks::{ArbiterView, Hooks};
use crate::listener::{self, BindOptions, Listener};
use crate::loader::AppLoader;
use crate::oom::{self, OomCount};
use crate::pidfile::Pidfile;
use crate::privileges::Credentials;
use crate::scoreboard::Scoreboard;
use crate::settings::Settings;
use crate::worker::WorkerClass;
use crate::{log, sys};
use supervisor::{Murder, WorkerState};

/// Re-reads every configuration source on HUP; an error keeps the running
/// configuration and is logged.
pub type ReloadFn = Box<dyn FnMut() -> Result<Settings, String>>;

/// The version the master logs at start.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The longest the loop sleeps without a signal.
const TICK: Duration = Duration::from_secs(1);
/// How often the loop looks for a booting worker's first heartbeat.
const BOOT_POLL: Duration = Duration::from_millis(100);

/// What the cli hands the master.
pub struct ArbiterConfig {
    /// The validated settings.
    pub settings: Settings,
    /// The worker class `-k` selected.
    pub class: Arc<dyn WorkerClass>,
    /// Loads the app (in each worker, or once in the master with `--preload`).
    pub loader: Arc<dyn AppLoader>,
    /// Re-reads the configuration on HUP.
    pub reload: ReloadFn,
    /// Server hooks.
    pub hooks: Arc<dyn Hooks>,
}

impl fmt::Debug for ArbiterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArbiterConfig")
            .field("settings", &self.settings)
            .field("class", &self.class.name())
            .finish_non_exhaustive()
    }
}

/// One worker, as the master tracks it.
#[derive(Debug, Clone)]
struct WorkerRecord {
    state: WorkerState,
    slot: usize,
    /// The master sent it TERM/QUIT/KILL, so its death is expected.
    signalled: bool,
}

/// A HUP whose new generation has not booted yet: what to go back to.
#[derive(Debug)]
struct PendingReload {
    generation: u64,
    settings: Arc<Settings>,
    num_workers: usize,
    listeners: Option<(Vec<String>, Vec<Listener>)>,
    preloaded: Option<Application>,
}

/// Listeners of a retired configuration, closed once its workers are gone.
#[derive(Debug)]
struct RetiredListeners {
    newest_generation: u64,
    listeners: Vec<Listener>,
}

/// The stop the arbiter is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Graceful,
    Quick,
}

/// A forked child leaving the master's code: its exit code travels up to
/// `main` as the value of [`Arbiter::run`].
#[derive(Debug)]
struct ChildDone(ExitCode);

/// The master process.
pub struct Arbiter {
    settings: Arc<Settings>,
    class: Arc<dyn WorkerClass>,
    loader: Arc<dyn AppLoader>,
    reload: ReloadFn,
    hooks: Arc<dyn Hooks>,
    pid: Pid,
    listeners: Vec<Listener>,
    /// The `-b` value each listener came from (parallel to `listeners`).
    listener_specs: Vec<String>,
    retired_listeners: Vec<RetiredListeners>,
    /// Unix socket files this master created, removed at exit.
    unix_paths: Vec<PathBuf>,
    scoreboard: Scoreboard,
    workers: BTreeMap<i32, WorkerRecord>,
    num_workers: usize,
    generation: u64,
    worker_age: u64,
    signal_read: OwnedFd,
    signal_write: OwnedFd,
    pidfile: Option<Pidfile>,
    credentials: Option<Credentials>,
    preloaded: Option<Application>,
    pending: Option<PendingReload>,
    fast_deaths: u32,
    next_spawn_at: Duration,
    halt: Option<(String, u8)>,
    oom_baseline: Option<OomCount>,
}

impl fmt::Debug for Arbiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arbiter")
            .field("pid", &self.pid)
            .field("listeners", &self.listeners)
            .field("workers", &self.workers.keys().collect::<Vec<_>>())
            .field("num_workers", &self.num_workers)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Arbiter {
    /// Prepares the master: logging, daemon, pidfile, signals, listeners,
    /// scoreboard, preload. Errors are one line for the cli to print; exit
    /// with [`MasterError::exit_code`].
    pub fn new(config: ArbiterConfig) -> Result<Arbiter, MasterError> {
        let ArbiterConfig {
            settings,
            class,
            loader,
            reload,
            hooks,
        } = config;
        log::init(&settings.loglevel, &settings.errorlog)?;
        let credentials = Credentials::resolve(&settings)?;
        if settings.daemon {
            sys::daemonize(settings.errorlog != "-")
                .map_err(|err| MasterError::system("daemonizing", err))?;
        }
        let pid = nix::unistd::getpid();
        sys::set_process_title(
            &format!("runicorn: master [{}]", proc_name(&settings)),
            "runicorn-master",
        );
        let view = ArbiterView {
            pid: pid.as_raw() as u32,
            settings: &settings,
            num_workers: settings.workers,
        };
        hooks.on_starting(&view);
        tracing::info!("Starting runicorn {VERSION}");
        let pidfile = settings
            .pidfile
            .as_deref()
            .map(Pidfile::create)
            .transpose()?;
        let (signal_read, signal_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|err| MasterError::system("creating the signal pipe", err))?;
        sys::install_master_signals(&signal_write)
            .map_err(|err| MasterError::system("installing signal handlers", err))?;
        let (listener_specs, listeners): (Vec<String>, Vec<Listener>) =
            match bind_listeners(&settings, credentials.as_ref(), true, &[]) {
                Ok(bound) => bound.into_iter().unzip(),
                Err(err) => {
                    if let Some(pidfile) = &pidfile {
                        pidfile.remove();
                    }
                    return Err(err);
                }
            };
        let unix_paths = owned_unix_paths(&settings, &listeners);
        let capacity = (settings.workers * 4).max(256);
        let scoreboard = Scoreboard::new(capacity)
            .map_err(|err| MasterError::system("mapping the scoreboard", err))?;
        let preloaded = if settings.preload_app {
            match loader.load(&settings) {
                Ok(app) => Some(app),
                Err(err) => {
                    for path in &unix_paths {
                        let _ = std::fs::remove_file(path);
                    }
                    if let Some(pidfile) = &pidfile {
                        pidfile.remove();
                    }
                    return Err(MasterError::AppLoad(err));
                }
            }
        } else {
            None
        };
        let num_workers = settings.workers.max(1);
        Ok(Arbiter {
            settings: Arc::new(settings),
            class,
            loader,
            reload,
            hooks,
            pid,
            listeners,
            listener_specs,
            retired_listeners: Vec::new(),
            unix_paths,
            scoreboard,
            workers: BTreeMap::new(),
            num_workers,
            generation: 0,
            worker_age: 0,
            signal_read,
            signal_write,
            pidfile,
            credentials,
            preloaded,
            pending: None,
            fast_deaths: 0,
            next_spawn_at: Duration::ZERO,
            halt: None,
            oom_baseline: oom::read_oom_kills(),
        })
    }

    /// The listeners, as bound (for the cli and tests).
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Runs until stopped. Returns the master's exit code, or, in a forked
    /// worker, the worker's: the caller returns it from `main` either way.
    pub fn run(mut self) -> ExitCode {
        let result = self.run_master();
        match result {
            Ok(code) => {
                self.cleanup();
                ExitCode::from(code)
            }
            Err(ChildDone(code)) => code,
        }
    }

    fn view(&self) -> ArbiterView<'_> {
        ArbiterView {
            pid: self.pid.as_raw() as u32,
            settings: &self.settings,
            num_workers: self.num_workers,
        }
    }

    fn run_master(&mut self) -> Result<u8, ChildDone> {
        for listener in &self.listeners {
            tracing::info!("Listening at: {} ({})", listener.describe(), self.pid);
        }
        tracing::info!("Using worker: {}", self.class.name());
        self.hooks.when_ready(&self.view());
        self.hooks
            .nworkers_changed(&self.view(), self.num_workers, None);
        self.manage_workers()?;
        loop {
            let tick = self.next_tick();
            for signal in self.wait_for_signals(tick) {
                match signal {
                    Signal::SIGCHLD => {}
                    Signal::SIGTERM => return Ok(self.handle_term()),
                    Signal::SIGINT | Signal::SIGQUIT => return Ok(self.handle_quit(signal)),
                    Signal::SIGHUP => self.handle_hup()?,
                    Signal::SIGTTIN => self.handle_ttin(),
                    Signal::SIGTTOU => self.handle_ttou(),
                    Signal::SIGUSR1 => self.handle_usr1(),
                    other => self.handle_unsupported(other),
                }
            }
            self.reap_workers();
            if let Some((reason, code)) = self.halt.take() {
                return Ok(self.halt_with(&reason, code));
            }
            self.murder_workers();
            self.manage_workers()?;
        }
    }

    /// How long the loop may sleep: a second, less while a worker is still
    /// booting (so a HUP retires the old generation promptly) or a delayed
    /// respawn is due.
    fn next_tick(&self) -> Duration {
        let now = monotonic_now();
        let mut tick = TICK;
        if self.next_spawn_at > now {
            tick = tick.min(self.next_spawn_at - now);
        }
        let booting = self.workers.values().any(|record| {
            record.state.retiring_since.is_none()
                && self.scoreboard.slot(record.slot).booted_at().is_none()
        });
        if booting {
            tick = tick.min(BOOT_POLL);
        }
        tick.max(Duration::from_millis(1))
    }

    /// Waits up to `timeout` for signals; returns them in arrival order,
    /// duplicates of one signal collapsed.
    fn wait_for_signals(&mut self, timeout: Duration) -> Vec<Signal> {
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.signal_read.as_fd(), PollFlags::POLLIN)];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        );
        let mut signals = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(count) = nix::unistd::read(&self.signal_read, &mut buf) {
            if count == 0 {
                break;
            }
            for byte in &buf[..count] {
                if let Ok(signal) = Signal::try_from(i32::from(*byte)) {
                    if !signals.contains(&signal) {
                        signals.push(signal);
                    }
                }
            }
        }
        signals
    }

    /// The supervisor's view of every worker, heartbeats from the scoreboard.
    fn worker_states(&self) -> Vec<WorkerState> {
        self.workers
            .values()
            .map(|record| {
                let mut state = record.state.clone();
                state.last_beat = self.scoreboard.slot(record.slot).last_heartbeat();
                state
            })
            .collect()
    }

    /// Gunicorn's `murder_workers`: SIGABRT the silent, SIGKILL the stuck.
    fn murder_workers(&mut self) {
        let now = monotonic_now();
        let actions = supervisor::murder(
            &self.worker_states(),
            now,
            self.settings.timeout,
            self.settings.graceful_timeout,
        );
        for action in actions {
            match action {
                Murder::Abort(pid) => {
                    let Some(record) = self.workers.get(&pid) else {
                        continue;
                    };
                    let slot = self.scoreboard.slot(record.slot);
                    let silent =
                        now.saturating_sub(slot.last_heartbeat().unwrap_or(record.state.spawned));
                    let what = match (slot.last_heartbeat(), slot.oldest_request()) {
                        (_, Some((age, line))) => {
                            format!(
                                "handling \"{line}\" (started {:.1}s ago)",
                                age.as_secs_f64()
                            )
                        }
                        (None, None) => {
                            "while booting (loading the app or init_worker took longer than \
                                         --timeout: raise -t or make the app's start faster)"
                                .to_owned()
                        }
                        (Some(_), None) => {
                            "while idle: no request in flight (stuck outside any request, \
                                            e.g. in the app's own threads or the worker's loop)"
                                .to_owned()
                        }
                    };
                    tracing::error!(
                        "WORKER TIMEOUT (pid:{pid}) after {:.1}s {what}",
                        silent.as_secs_f64()
                    );
                    self.signal_worker(pid, Signal::SIGABRT);
                    if let Some(record) = self.workers.get_mut(&pid) {
                        record.state.aborted_at = Some(now);
                    }
                }
                Murder::Kill(pid) => {
                    if self
                        .workers
                        .get(&pid)
                        .is_some_and(|record| record.state.retiring_since.is_some())
                    {
                        tracing::warn!(
                            "Worker (pid:{pid}) did not stop within --graceful-timeout ({:.1}s): sending SIGKILL",
                            self.settings.graceful_timeout.as_secs_f64()
                        );
                    }
                    self.signal_worker(pid, Signal::SIGKILL);
                    if let Some(record) = self.workers.get_mut(&pid) {
                        record.state.killed = true;
                    }
                }
            }
        }
    }

    /// Gunicorn's `manage_workers`: spawn to the target, retire extras and
    /// old generations, close listeners nobody uses any more.
    fn manage_workers(&mut self) -> Result<(), ChildDone> {
        let now = monotonic_now();
        let plan = supervisor::manage(&self.worker_states(), self.num_workers, self.generation);
        if plan.generation_ready {
            if let Some(pending) = self.pending.take() {
                tracing::info!(
                    "Reload complete: the new workers have booted; old workers are stopping gracefully"
                );
                if let Some((_, listeners)) = pending.listeners {
                    self.retired_listeners.push(RetiredListeners {
                        newest_generation: self.generation.saturating_sub(1),
                        listeners,
                    });
                }
            }
        }
        for pid in plan.retire {
            self.retire_worker(pid, now);
        }
        self.close_retired_listeners();
        if plan.spawn > 0 && now >= self.next_spawn_at {
            let count = if self.fast_deaths > 0 { 1 } else { plan.spawn };
            for _ in 0..count {
                self.spawn_worker()?;
            }
        }
        Ok(())
    }

    fn retire_worker(&mut self, pid: i32, now: Duration) {
        self.signal_worker(pid, Signal::SIGTERM);
        if let Some(record) = self.workers.get_mut(&pid) {
            record.state.retiring_since = Some(now);
        }
    }

    fn close_retired_listeners(&mut self) {
        let oldest_alive = self
            .workers
            .values()
            .map(|record| record.state.generation)
            .min();
        let mut still = Vec::new();
        for retired in std::mem::take(&mut self.retired_listeners) {
            if oldest_alive.is_some_and(|oldest| oldest <= retired.newest_generation) {
                still.push(retired);
                continue;
            }
            for listener in retired.listeners {
                tracing::info!("Closing listener {} (no longer bound)", listener.describe());
                let path = listener.unix_path();
                drop(listener);
                if let Some(path) = path {
                    if self.unix_paths.contains(&path) && !self.bound_unix_paths().contains(&path) {
                        let _ = std::fs::remove_file(&path);
                        self.unix_paths.retain(|known| known != &path);
                    }
                }
            }
        }
        self.retired_listeners = still;
    }

    fn bound_unix_paths(&self) -> Vec<PathBuf> {
        self.listeners
            .iter()
            .filter_map(Listener::unix_path)
            .collect()
    }

    /// Sends `signal` to one worker; the master then expects its death.
    fn signal_worker(&mut self, pid: i32, signal: Signal) {
        if let Some(record) = self.workers.get_mut(&pid) {
            if signal != Signal::SIGABRT && signal != Signal::SIGUSR1 {
                record.signalled = true;
            }
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
    }

    fn signal_all(&mut self, signal: Signal) {
        let pids: Vec<i32> = self.workers.keys().copied().collect();
        for pid in pids {
            self.signal_worker(pid, signal);
        }
    }

    /// Gunicorn's `stop`: TERM (graceful) or QUIT (quick) to every worker,
    /// wait up to `graceful_timeout`, then SIGKILL what is left.
    fn stop(&mut self, mut stop: Stop) {
        self.signal_all(if stop == Stop::Graceful {
            Signal::SIGTERM
        } else {
            Signal::SIGQUIT
        });
        let deadline = monotonic_now() + self.settings.graceful_timeout;
        while !self.workers.is_empty() {
            let now = monotonic_now();
            if now >= deadline {
                break;
            }
            for signal in self.wait_for_signals((deadline - now).min(TICK)) {
                if stop == Stop::Graceful && matches!(signal, Signal::SIGINT | Signal::SIGQUIT) {
                    stop = Stop::Quick;
                    self.signal_all(Signal::SIGQUIT);
                }
            }
            self.reap_workers();
        }
        if !self.workers.is_empty() {
            self.signal_all(Signal::SIGKILL);
            for pid in self.workers.keys().copied().collect::<Vec<_>>() {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
                self.workers.remove(&pid);
            }
        }
        self.reap_workers();
    }

    /// Gunicorn's `halt`: stop the workers, say why, exit with `code`.
    fn halt_with(&mut self, reason: &str, code: u8) -> u8 {
        self.stop(Stop::Graceful);
        tracing::info!("Shutting down: Master");
        tracing::info!("Reason: {reason}");
        code
    }

    fn cleanup(&mut self) {
        if nix::unistd::getpid() != self.pid {
            return;
        }
        self.hooks.on_exit(&self.view());
        for path in &self.unix_paths {
            let _ = std::fs::remove_file(path);
        }
        if let Some(pidfile) = &self.pidfile {
            pidfile.remove();
        }
        let _ = &self.signal_write;
    }
}

/// The `[name]` of process titles: `-n/--name`, else the app, as Gunicorn.
fn proc_name(settings: &Settings) -> &str {
    settings.proc_name.as_deref().unwrap_or(&settings.app)
}

/// Binds `settings.bind` (or takes systemd's sockets at first start),
/// under `--umask`, handing unix sockets to the workers' user. A spec
/// already bound (in `current`, on HUP) is reused, never rebound: its
/// accept queue carries over.
fn bind_listeners(
    settings: &Settings,
    credentials: Option<&Credentials>,
    first_start: bool,
    current: &[(&String, &Listener)],
) -> Result<Vec<(String, Listener)>, MasterError> {
    if first_start {
        if let Some(listeners) = listener::systemd_listeners()? {
            return Ok(listeners
                .into_iter()
                .map(|listener| ("LISTEN_FDS".to_owned(), listener))
                .collect());
        }
    }
    let options = BindOptions {
        backlog: settings.backlog,
        reuse_port: settings.reuse_port,
        // On HUP, do not block the running master in retries.
        attempts: if first_start {
            listener::BIND_ATTEMPTS
        } else {
            1
        },
        ..BindOptions::default()
    };
    let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        settings.umask as _,
    ));
    let mut bound = Vec::new();
    let mut fresh_paths = Vec::new();
    let mut failure = None;
    for spec in &settings.bind {
        let reused: Vec<Listener> = current
            .iter()
            .filter(|(known, _)| *known == spec)
            .filter_map(|(_, listener)| listener.try_clone().ok())
            .collect();
        if !reused.is_empty() {
            bound.extend(reused.into_iter().map(|listener| (spec.clone(), listener)));
            continue;
        }
        match listener::BindSpec::parse(spec).and_then(|parsed| listener::bind(&parsed, options)) {
            Ok(listeners) => {
                fresh_paths.extend(listeners.iter().filter_map(Listener::unix_path));
                bound.extend(
                    listeners
                        .into_iter()
                        .map(|listener| (spec.clone(), listener)),
                );
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    nix::sys::stat::umask(old_umask);
    if let Some(err) = failure {
        // Do not leave socket files of a half-done bind behind.
        for path in fresh_paths {
            let _ = std::fs::remove_file(path);
        }
        return Err(err);
    }
    if let Some(credentials) = credentials {
        for path in fresh_paths {
            if let Err(err) = credentials.chown(&path) {
                tracing::warn!("cannot give {} to the workers' user: {err}", path.display());
            }
        }
    }
    Ok(bound)
}

/// The unix socket files among `listeners` that came from `-b unix:` (not
/// inherited), so the master removes them at exit.
fn owned_unix_paths(settings: &Settings, listeners: &[Listener]) -> Vec<PathBuf> {
    listeners
        .iter()
        .filter_map(Listener::unix_path)
        .filter(|path| {
            settings.bind.iter().any(|spec| {
                spec.strip_prefix("unix:")
                    .is_some_and(|p| path.ends_with(p.trim_start_matches("//")))
            })
        })
        .collect()
}
