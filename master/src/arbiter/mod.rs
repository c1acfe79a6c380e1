//! The arbiter: the master's one loop.
//!
//! Gunicorn's steps, top to bottom: wait for a signal or a second, handle
//! each queued signal (`handle_<signal>`, in `signals.rs`), reap exited
//! workers (`reap.rs`), murder silent ones and fix the number of workers
//! (`manage.rs`, forking with `spawn_worker` in `spawn.rs`), sample their
//! memory and retire those past `--max-worker-memory` (`memory.rs`); `stop.rs`
//! brings them all down, `bind.rs` binds `-b`; `upgrade.rs` is the binary
//! upgrade (USR2, WINCH, promotion). The decisions are pure code in
//! `supervisor.rs`; what systemd is told is `crate::notify`. Single-threaded for its whole life; signal handlers
//! only write a byte to a self-pipe.

mod bind;
mod boot;
mod manage;
mod memory;
mod reap;
mod signals;
pub(crate) mod sources;
mod spawn;
mod status;
mod stop;
pub mod supervisor;
mod upgrade;

use bind::{bind_listeners, owned_unix_paths};
pub use reap::{ExitCounts, ExitReason};

use std::collections::{BTreeMap, HashSet};
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

use crate::child::Child;
use crate::control::ControlServer;
use crate::error::MasterError;
use crate::hooks::{ArbiterView, Hooks};
use crate::inherit;
use crate::loader::AppLoader;
use crate::metrics::{self, MetricsServer};
use crate::notify::Notifier;
use crate::oom::{self, OomCount};
use crate::pidfile::Pidfile;
use crate::privileges::Credentials;
use crate::scoreboard::Scoreboard;
use crate::{log, nofile, sys};
use runicorn_worker::clock::monotonic_now;
use runicorn_worker::Listener;
use runicorn_worker::Settings;
use runicorn_worker::WorkerClass;
use sources::LoopSource;
use supervisor::WorkerState;
use upgrade::Upgrade;

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
    /// Why the master retired it, when it did for a reason of its own
    /// (`--max-worker-memory`); counted when it exits.
    retired_for: Option<ExitReason>,
    /// Its `--max-worker-memory` threshold in bytes, jitter applied.
    memory_threshold: Option<u64>,
    /// Its boot time was logged (its first heartbeat was seen).
    boot_logged: bool,
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

/// What [`Arbiter::run`] returns, in each process it leaves.
#[derive(Debug)]
pub enum Role {
    /// This is the master, and it has stopped: exit with this status.
    Master(ExitCode),
    /// This is a worker the master forked and booted: `main` runs it
    /// ([`Child::run`]) and exits with its ending's status.
    Worker(Box<Child>),
}

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
    /// When the last fast death happened: a worker spawned after it that
    /// stays up ends the back-off.
    last_fast_death: Duration,
    next_spawn_at: Duration,
    /// The USR2 upgrade this master takes part in, if any.
    upgrade: Upgrade,
    /// What systemd has been told.
    notifier: Notifier,
    halt: Option<(String, u8)>,
    oom_baseline: Option<OomCount>,
    /// Worker exits counted by reason.
    exits: ExitCounts,
    /// When the master last sampled its workers' RSS.
    last_memory_sample: Duration,
    /// `when_ready` ran: the first generation booted.
    ready: bool,
    /// What the loop's one `poll` waits on besides signals (`sources.rs`):
    /// the control socket, the metrics listener.
    sources: Vec<Box<dyn LoopSource>>,
    /// `--control-socket`, while the old master of an upgrade keeps it:
    /// bound once this master is promoted.
    control_deferred: Option<PathBuf>,
    /// `--metrics-bind`, while the old master of an upgrade serves it:
    /// bound once this master is promoted.
    metrics_deferred: bool,
    /// The control socket this master serves (or will, once promoted):
    /// bound once, at start; a HUP that changes it is told so.
    control_path: Option<PathBuf>,
    /// When the master started (monotonic), for the `Ready:` line and
    /// `runicorn ctl status`.
    started: Duration,
    /// The requests past `--timeout` already named: (slot, lane, start).
    overdue_named: HashSet<(usize, usize, u64)>,
    /// Counts kept across workers' lives, for `/metrics`.
    totals: metrics::Totals,
    /// The StatsD `runicorn.workers` gauge last sent.
    workers_gauge: crate::statsd::WorkersGauge,
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
        let start = inherit::capture();
        log::init(&log::LogOptions::from_settings(&settings)?)?;
        crate::statsd::install(&settings);
        let old_master = start.old_master()?;
        let credentials = Credentials::resolve(&settings)?;
        if let Some(warning) = crate::privileges::root_warning(&settings, nix::unistd::geteuid()) {
            tracing::warn!("{warning}");
        }
        // The new binary of a USR2 upgrade is already detached: its old
        // master is the daemon, and must stay its parent until it exits.
        if settings.daemon && old_master.is_none() {
            sys::daemonize(settings.errorlog != "-")
                .map_err(|err| MasterError::system("daemonizing", err))?;
        }
        // After -D pointed stdout and stderr at /dev/null.
        log::set_capture_output(settings.capture_output);
        // Opened here, before any fork: workers inherit it (see
        // `runicorn_worker::access`).
        runicorn_worker::access::open(settings.accesslog.as_deref()).map_err(|source| {
            MasterError::AccessLog {
                path: settings.accesslog.clone().unwrap_or_default(),
                source,
            }
        })?;
        let pid = nix::unistd::getpid();
        // Gunicorn names the new master of an upgrade `[name.2]` until promoted.
        let suffix = if old_master.is_some() { ".2" } else { "" };
        sys::set_process_title(
            &format!("runicorn: master [{}{suffix}]", proc_name(&settings)),
            "runicorn-master",
        );
        let view = ArbiterView {
            pid: pid.as_raw() as u32,
            settings: &settings,
            num_workers: settings.workers,
        };
        hooks.on_starting(&view);
        tracing::info!("Starting runicorn {VERSION}");
        if let Some(parent) = old_master {
            tracing::info!(
                "Started by USR2 from the master with pid {parent}: serving beside it until it exits"
            );
            // The kernel's SIGCHLD when the old master dies wakes the loop,
            // which then promotes this master.
            let _ = nix::sys::prctl::set_pdeathsig(Some(Signal::SIGCHLD));
        }
        nofile::raise();
        let pidfile = settings
            .pidfile
            .as_deref()
            .map(|path| match old_master {
                Some(_) => Pidfile::create(&upgrade::upgrade_pidfile(path)),
                None => Pidfile::create(path),
            })
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
        // A start that fails past this point leaves no socket file or
        // pidfile of its own behind.
        let undo = |err: MasterError| {
            for path in &unix_paths {
                let _ = std::fs::remove_file(path);
            }
            if let Some(pidfile) = &pidfile {
                pidfile.remove();
            }
            err
        };
        let capacity = (settings.workers * 4).max(256);
        let scoreboard = Scoreboard::new(capacity)
            .map_err(|err| MasterError::system("mapping the scoreboard", err))?;
        let preloaded = if settings.preload_app {
            match loader.load(&settings) {
                Ok(app) => Some(app),
                Err(err) => return Err(undo(MasterError::AppLoad(err))),
            }
        } else {
            None
        };
        let mut sources: Vec<Box<dyn LoopSource>> = Vec::new();
        let mut control_deferred = None;
        if let Some(path) = &settings.control_socket {
            match old_master {
                Some(parent) => {
                    tracing::info!(
                        "Control socket {}: left to the old master (pid {parent}) until this \
                         master is promoted",
                        path.display()
                    );
                    control_deferred = Some(path.clone());
                }
                None => match ControlServer::bind(path) {
                    Ok(server) => {
                        tracing::info!("Control socket at: {} ({pid})", path.display());
                        sources.push(Box::new(server));
                    }
                    Err(err) => return Err(undo(err)),
                },
            }
        }
        let control_path = settings.control_socket.clone();
        // The old master of an upgrade serves the metrics address until this
        // master is promoted (binding it now would fail, or split scrapes).
        let metrics_deferred = settings.metrics_bind.is_some() && old_master.is_some();
        if let (Some(address), Some(parent)) = (&settings.metrics_bind, old_master) {
            tracing::info!(
                "Metrics at {address}: left to the old master (pid {parent}) until this master \
                 is promoted"
            );
        }
        if let (Some(address), false) = (&settings.metrics_bind, metrics_deferred) {
            match MetricsServer::bind(address) {
                Ok(server) => {
                    server.announce(pid);
                    sources.push(Box::new(server));
                }
                Err(err) => return Err(undo(err)),
            }
        }
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
            last_fast_death: Duration::ZERO,
            next_spawn_at: Duration::ZERO,
            upgrade: Upgrade {
                child: None,
                parent: old_master,
            },
            notifier: Notifier::new(old_master.is_some()),
            halt: None,
            oom_baseline: oom::read_oom_kills(),
            exits: ExitCounts::default(),
            last_memory_sample: Duration::ZERO,
            ready: false,
            sources,
            control_path,
            control_deferred,
            metrics_deferred,
            started: monotonic_now(),
            overdue_named: HashSet::new(),
            totals: metrics::Totals::default(),
            workers_gauge: crate::statsd::WorkersGauge::default(),
        })
    }

    /// Every worker exit so far, by reason (`--metrics-bind` and
    /// `runicorn ctl` read them).
    pub fn exits(&self) -> &ExitCounts {
        &self.exits
    }

    /// The listeners, as bound (for the cli and tests).
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Runs until stopped, and returns the master's exit status; in a
    /// forked child it returns at once with the booted worker, which the
    /// caller runs: the worker's life never unwinds through the arbiter.
    pub fn run(mut self) -> Role {
        let role = self.run_master();
        if let Role::Master(_) = role {
            self.cleanup();
        }
        role
    }

    fn view(&self) -> ArbiterView<'_> {
        ArbiterView {
            pid: self.pid.as_raw() as u32,
            settings: &self.settings,
            num_workers: self.num_workers,
        }
    }

    /// The master's loop, until it stops; in a child forked at its one
    /// fork point, it returns the booted worker at once.
    fn run_master(&mut self) -> Role {
        for listener in &self.listeners {
            let address = listener.describe_serving(self.settings.tls.is_some());
            tracing::info!(
                listen = address.as_str(),
                "Listening at: {address} ({})",
                self.pid
            );
        }
        tracing::info!("Using worker: {}", self.class.name());
        self.check_descriptor_limit();
        self.hooks
            .nworkers_changed(&self.view(), self.num_workers, None);
        loop {
            let spawn = self.manage_workers();
            for _ in 0..spawn {
                if let Some(child) = self.spawn_worker() {
                    return Role::Worker(Box::new(child));
                }
            }
            self.workers_gauge.report(self.workers.len());
            self.maybe_promote();
            self.notify_workers();
            let tick = self.next_tick();
            for signal in self.wait_for_signals(tick) {
                match signal {
                    Signal::SIGCHLD => {}
                    Signal::SIGTERM => return Role::Master(self.handle_term().into()),
                    Signal::SIGINT | Signal::SIGQUIT => {
                        return Role::Master(self.handle_quit(signal).into())
                    }
                    Signal::SIGHUP => {
                        self.notifier.reloading();
                        self.handle_hup();
                        if self.pending.is_none() {
                            self.notifier
                                .reload_done("reload failed: the previous configuration runs");
                        }
                    }
                    Signal::SIGTTIN => self.handle_ttin(),
                    Signal::SIGTTOU => self.handle_ttou(),
                    Signal::SIGUSR1 => self.handle_usr1(),
                    Signal::SIGUSR2 => self.handle_usr2(),
                    Signal::SIGWINCH => self.handle_winch(),
                    _ => {}
                }
            }
            self.reap_workers();
            self.note_boots();
            if let Some((reason, code)) = self.halt.take() {
                return Role::Master(self.halt_with(&reason, code).into());
            }
            self.murder_workers();
            self.name_overdue_requests();
            self.sample_memory();
        }
    }

    /// Warns, with the fix, when one worker's connections cannot fit in
    /// the descriptor limit (at start, and after a HUP changed settings).
    fn check_descriptor_limit(&self) {
        let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        else {
            return;
        };
        let connections = self.class.connections_per_worker(&self.settings);
        if let Some(warning) = nofile::capacity_warning(
            &self.settings,
            self.class.name(),
            connections,
            self.listeners.len(),
            soft,
        ) {
            tracing::warn!("{warning}");
        }
    }

    /// Tells systemd (when it listens) how many workers are up, and that
    /// the service is ready once the current generation has booted.
    fn notify_workers(&mut self) {
        if !Notifier::enabled() {
            return;
        }
        let booted = self
            .worker_states()
            .iter()
            .filter(|worker| {
                worker.generation == self.generation
                    && worker.booted()
                    && worker.retiring_since.is_none()
                    && !worker.killed
                    && worker.aborted_at.is_none()
            })
            .count();
        let note = match self.upgrade.child {
            Some(child) => format!("; new master {child} started by USR2"),
            None => String::new(),
        };
        self.notifier.workers(booted, self.num_workers, &note);
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
        if let Some(deadline) = self.sources_deadline() {
            tick = tick.min(deadline.saturating_sub(now));
        }
        tick.max(Duration::from_millis(1))
    }

    /// Waits up to `timeout` for signals, or for the loop's other sources
    /// (served here, without blocking: `sources.rs`); returns the signals
    /// in arrival order, duplicates of one signal collapsed, then those the
    /// sources asked for (repeats kept).
    fn wait_for_signals(&mut self, timeout: Duration) -> Vec<Signal> {
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        let (counts, ready) = {
            let mut fds = vec![PollFd::new(self.signal_read.as_fd(), PollFlags::POLLIN)];
            let mut counts = Vec::with_capacity(self.sources.len());
            for source in &self.sources {
                let more = source.poll_fds();
                counts.push(more.len());
                fds.extend(more);
            }
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
            );
            let ready: Vec<PollFlags> = fds[1..]
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect();
            (counts, ready)
        };
        let requested = if self.sources.is_empty() {
            Vec::new()
        } else {
            self.serve_sources(&counts, &ready)
        };
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
        signals.extend(requested);
        signals
    }

    /// HUP changed `--metrics-bind`, or this new master of an upgrade was
    /// promoted: listen at the address (or stop); when it cannot, the old
    /// listener (if any) keeps serving.
    pub(super) fn rebind_metrics(&mut self) {
        match self.settings.metrics_bind.clone() {
            None => self.replace_source("metrics", None),
            Some(address) => match MetricsServer::bind(&address) {
                Ok(server) => {
                    server.announce(self.pid);
                    self.replace_source("metrics", Some(Box::new(server)));
                }
                Err(err) => tracing::error!("{err}; the metrics stay where they were"),
            },
        }
    }

    /// What `/metrics` reports now: the scoreboard's live slots (with each
    /// worker's RSS and CPU time from `/proc`), the totals kept across
    /// workers' lives, the listeners' accept queues.
    pub(crate) fn metrics_sample(&self) -> metrics::Sample {
        let workers = self
            .workers
            .iter()
            .map(|(&pid, record)| {
                let slot = self.scoreboard.slot(record.slot);
                metrics::WorkerSample {
                    pid,
                    booted: slot.booted_at().is_some(),
                    in_flight: slot.in_flight(),
                    served: slot.requests_served(),
                    counters: slot.counters(),
                    rss_bytes: crate::memory::resident_bytes(pid).or(slot.rss_bytes()),
                    cpu_seconds: metrics::process::cpu_seconds(pid),
                }
            })
            .collect();
        let listeners = self
            .listeners
            .iter()
            .map(|listener| metrics::ListenerSample {
                name: listener.describe(),
                queue: match listener {
                    Listener::Tcp(socket) => sys::tcp_accept_queue(socket.as_fd()).ok(),
                    Listener::Unix(_) => None,
                },
            })
            .collect();
        metrics::Sample {
            class: self.class.name(),
            target_workers: self.num_workers,
            workers,
            totals: self.totals.clone(),
            exits: self.exits.clone(),
            listeners,
        }
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

    fn cleanup(&mut self) {
        if nix::unistd::getpid() != self.pid {
            return;
        }
        self.hooks.on_exit(&self.view());
        self.announce_exit();
        // During an upgrade both masters serve the same socket files: the
        // one that stays removes them when it exits.
        if !self.upgrade.in_progress() {
            for path in &self.unix_paths {
                let _ = std::fs::remove_file(path);
            }
        }
        if let Some(pidfile) = &self.pidfile {
            pidfile.remove();
        }
        for source in std::mem::take(&mut self.sources) {
            source.close();
        }
        let _ = &self.signal_write;
    }
}

/// The `[name]` of process titles: `-n/--name`, else the app, as Gunicorn.
fn proc_name(settings: &Settings) -> &str {
    settings.proc_name.as_deref().unwrap_or(&settings.app)
}
