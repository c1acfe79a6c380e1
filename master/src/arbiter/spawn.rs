//! `spawn_worker`: fork, and in the child, everything up to the worker
//! class's `run`: title, environment, directory, umask, privileges, signal
//! handling (and the `worker_int`/`worker_abort` watcher), the app,
//! `init_worker`, the first heartbeat. The child then leaves the arbiter
//! as a [`Child`], which `main` runs.

use std::sync::Arc;

use runicorn_app::WorkerInfo;

use super::supervisor::{self, WorkerState};
use super::{Arbiter, WorkerRecord};
use crate::child::{Booted, Child};
use crate::hooks::WorkerView;
use crate::scoreboard::ArbiterSlot;
use crate::sys::{self, Forked};
use runicorn_worker::clock::{monotonic_nanos, monotonic_now};
use runicorn_worker::{Ending, Worker};
use runicorn_worker::{Shutdown, SignalHook};

impl Arbiter {
    fn free_slot(&self) -> Option<usize> {
        let used: Vec<usize> = self.workers.values().map(|record| record.slot).collect();
        (0..self.scoreboard.capacity()).find(|index| !used.contains(index))
    }

    /// Gunicorn's `spawn_worker`. In the parent it records the child and
    /// returns `None`; in the child it boots the worker and returns it, to
    /// be run by `main` once the arbiter is left.
    pub(super) fn spawn_worker(&mut self) -> Option<Child> {
        let Some(slot_index) = self.free_slot() else {
            tracing::error!(
                "Cannot spawn a worker: all {} scoreboard slots are in use (lower -w or TTIN less)",
                self.scoreboard.capacity()
            );
            return None;
        };
        self.worker_age += 1;
        let age = self.worker_age;
        let slot = self.scoreboard.slot(slot_index);
        slot.reset(self.generation as u32);
        self.hooks.pre_fork(
            &self.view(),
            &WorkerView {
                pid: 0,
                age,
                exit_code: None,
            },
        );
        match sys::fork() {
            Ok(Forked::Parent(child)) => {
                let pid = child.as_raw();
                slot.set_pid(pid);
                self.workers.insert(
                    pid,
                    WorkerRecord {
                        state: WorkerState {
                            pid,
                            age,
                            generation: self.generation,
                            spawned: monotonic_now(),
                            last_beat: None,
                            aborted_at: None,
                            killed: false,
                            retiring_since: None,
                        },
                        slot: slot_index,
                        signalled: false,
                        retired_for: None,
                        memory_threshold: crate::memory::worker_threshold(
                            self.settings.max_worker_memory,
                            monotonic_nanos() ^ (pid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        ),
                        boot_logged: false,
                    },
                );
                None
            }
            Ok(Forked::Child) => Some(self.boot_worker(slot_index, age)),
            Err(err) => {
                tracing::error!("Cannot fork a worker: {err}");
                self.next_spawn_at = monotonic_now() + supervisor::respawn_delay(3);
                None
            }
        }
    }

    /// The child's side of the fork: the worker, booted or not, with what
    /// the end of its life needs.
    fn boot_worker(&mut self, slot_index: usize, age: u64) -> Child {
        let view = WorkerView {
            pid: std::process::id(),
            age,
            exit_code: None,
        };
        let booted = self.boot(slot_index, view);
        Child {
            class: Arc::clone(&self.class),
            booted,
            hooks: Arc::clone(&self.hooks),
            master_pid: self.pid.as_raw() as u32,
            settings: Arc::clone(&self.settings),
            num_workers: self.num_workers,
            view,
        }
    }

    /// Boots the worker in the child; a failure is logged and ends it.
    fn boot(&mut self, slot_index: usize, worker_view: WorkerView) -> Result<Booted, Ending> {
        let pid = worker_view.pid;
        let age = worker_view.age;
        runicorn_worker::log::set_role(runicorn_worker::log::Role::Worker);
        // Nothing of the master's survives in the worker but what it needs.
        drop(std::mem::replace(&mut self.signal_read, dup_devnull()));
        drop(std::mem::replace(&mut self.signal_write, dup_devnull()));
        self.retired_listeners.clear();
        // The control socket's copies close; its file is the master's.
        self.sources.clear();
        self.control_deferred = None;
        if let Some(pending) = self.pending.as_mut() {
            pending.listeners = None;
        }
        self.pidfile = None;
        self.unix_paths.clear();
        let shutdown = match sys::forget_master_signals().and_then(|()| Shutdown::install()) {
            Ok(shutdown) => {
                // What arrived since fork was held; the worker's handlers get it.
                sys::unblock_signals();
                shutdown
            }
            Err(err) => {
                tracing::error!("Worker (pid:{pid}) cannot install its signal handling: {err}");
                return Err(Ending::BootFailed);
            }
        };
        sys::set_process_title(
            &format!("runicorn: worker [{}]", super::proc_name(&self.settings)),
            "runicorn-worker",
        );
        tracing::info!(worker_pid = pid, "Booting worker with pid: {pid}");
        // The service manager hears from the master only (`crate::notify`).
        std::env::remove_var(crate::notify::NOTIFY_SOCKET);
        let settings = Arc::clone(&self.settings);
        self.hooks.post_fork(&self.view(), &worker_view);
        for (key, value) in &settings.raw_env {
            std::env::set_var(key, value);
        }
        if let Some(dir) = &settings.chdir {
            if let Err(err) = std::env::set_current_dir(dir) {
                tracing::error!(
                    "Worker failed to boot: cannot chdir to {}: {err}",
                    dir.display()
                );
                return Err(Ending::BootFailed);
            }
        }
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            settings.worker_umask() as _,
        ));
        if let Some(credentials) = &self.credentials {
            if let Err(err) = credentials.apply() {
                tracing::error!(
                    "Worker failed to boot: cannot switch to user {} group {}: {err} (the master must run \
                     as root to use -u/-g)",
                    settings.user.as_deref().unwrap_or("(unchanged)"),
                    settings.group.as_deref().unwrap_or("(the user's)"),
                );
                return Err(Ending::BootFailed);
            }
        }
        if let Err(err) = self.watch_signal_hooks(&shutdown, worker_view) {
            tracing::error!(
                "Worker failed to boot: cannot start the worker_int/worker_abort watcher: {err}"
            );
            return Err(Ending::BootFailed);
        }
        let app = match self.preloaded.clone() {
            Some(app) => app,
            None => match self.loader.load(&settings) {
                Ok(app) => app,
                Err(err) => return Err(Ending::load_failed(&err)),
            },
        };
        let info = WorkerInfo {
            pid,
            worker_class: self.class.name().to_owned(),
            age,
        };
        if let Err(err) = app.sync.init_worker(&info) {
            tracing::error!("Worker failed to boot: init_worker failed: {err}");
            return Err(Ending::BootFailed);
        }
        let slot = self.scoreboard.slot(slot_index);
        slot.set_pid(pid as i32);
        slot.heartbeat();
        self.hooks.post_worker_init(&worker_view);
        let random = monotonic_nanos() ^ u64::from(pid).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let worker = Worker {
            listeners: std::mem::take(&mut self.listeners),
            settings,
            app,
            slot,
            shutdown: shutdown.clone(),
            age,
            max_requests: supervisor::max_requests(
                self.settings.max_requests,
                self.settings.max_requests_jitter,
                random,
            ),
        };
        Ok(Booted { worker, shutdown })
    }

    /// `worker_int` / `worker_abort`, run by the shutdown's watcher thread
    /// when INT/QUIT or ABRT arrive (only those the hooks implement).
    fn watch_signal_hooks(&self, shutdown: &Shutdown, worker: WorkerView) -> std::io::Result<()> {
        let int = self.hooks.has_worker_int().then(|| {
            let hooks = Arc::clone(&self.hooks);
            Box::new(move || {
                tracing::info!(
                    "Worker (pid:{}) got INT/QUIT: running worker_int",
                    worker.pid
                );
                hooks.worker_int(&worker);
            }) as SignalHook
        });
        let abort = self.hooks.has_worker_abort().then(|| {
            let hooks = Arc::clone(&self.hooks);
            Box::new(move || {
                tracing::info!("Worker (pid:{}) got ABRT: running worker_abort", worker.pid);
                hooks.worker_abort(&worker);
            }) as SignalHook
        });
        shutdown.watch_signal_hooks(int, abort)
    }
}

/// A harmless descriptor to leave in place of a closed one.
fn dup_devnull() -> std::os::fd::OwnedFd {
    std::fs::File::open("/dev/null")
        .map(std::os::fd::OwnedFd::from)
        .unwrap_or_else(|_| {
            // /dev/null always exists on Linux; a pipe is the fallback.
            nix::unistd::pipe()
                .map(|(read, _)| read)
                .expect("a descriptor for the worker")
        })
}
