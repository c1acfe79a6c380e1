//! `spawn_worker`: fork, and in the child, everything up to the worker
//! class's `run`: title, environment, directory, umask, privileges, signal
//! handling (and the `worker_int`/`worker_abort` watcher), the app,
//! `init_worker`, the first heartbeat.

use std::process::ExitCode;
use std::sync::Arc;

use runicorn_app::WorkerInfo;

use super::supervisor::{self, WorkerState};
use super::{Arbiter, ChildDone, WorkerRecord};
use crate::hooks::WorkerView;
use crate::scoreboard::ArbiterSlot;
use crate::sys::{self, Forked};
use runicorn_worker::clock::{monotonic_nanos, monotonic_now};
use runicorn_worker::Worker;
use runicorn_worker::{Shutdown, SignalHook};

impl Arbiter {
    fn free_slot(&self) -> Option<usize> {
        let used: Vec<usize> = self.workers.values().map(|record| record.slot).collect();
        (0..self.scoreboard.capacity()).find(|index| !used.contains(index))
    }

    /// Gunicorn's `spawn_worker`. In the parent it records the child; in
    /// the child it never returns `Ok`: the worker's exit code travels up as
    /// `Err(ChildDone)`.
    pub(super) fn spawn_worker(&mut self) -> Result<(), ChildDone> {
        let Some(slot_index) = self.free_slot() else {
            tracing::error!(
                "Cannot spawn a worker: all {} scoreboard slots are in use (lower -w or TTIN less)",
                self.scoreboard.capacity()
            );
            return Ok(());
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
                    },
                );
                Ok(())
            }
            Ok(Forked::Child) => Err(ChildDone(self.boot_worker(slot_index, age))),
            Err(err) => {
                tracing::error!("Cannot fork a worker: {err}");
                self.next_spawn_at = monotonic_now() + supervisor::respawn_delay(3);
                Ok(())
            }
        }
    }

    /// The child's side of the fork; returns the process's exit code.
    fn boot_worker(&mut self, slot_index: usize, age: u64) -> ExitCode {
        let pid = std::process::id();
        // Nothing of the master's survives in the worker but what it needs.
        drop(std::mem::replace(&mut self.signal_read, dup_devnull()));
        drop(std::mem::replace(&mut self.signal_write, dup_devnull()));
        self.retired_listeners.clear();
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
                return ExitCode::from(3);
            }
        };
        sys::set_process_title(
            &format!("runicorn: worker [{}]", super::proc_name(&self.settings)),
            "runicorn-worker",
        );
        tracing::info!("Booting worker with pid: {pid}");
        // The service manager hears from the master only (`crate::notify`).
        std::env::remove_var(crate::notify::NOTIFY_SOCKET);
        let settings = Arc::clone(&self.settings);
        let worker_view = WorkerView {
            pid,
            age,
            exit_code: None,
        };
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
                return ExitCode::from(3);
            }
        }
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            settings.umask as _,
        ));
        if let Some(credentials) = &self.credentials {
            if let Err(err) = credentials.apply() {
                tracing::error!(
                    "Worker failed to boot: cannot switch to user/group {:?}/{:?}: {err} (the master must run \
                     as root to use -u/-g)",
                    settings.user,
                    settings.group
                );
                return ExitCode::from(3);
            }
        }
        if let Err(err) = self.watch_signal_hooks(&shutdown, worker_view) {
            tracing::error!(
                "Worker failed to boot: cannot start the worker_int/worker_abort watcher: {err}"
            );
            return ExitCode::from(3);
        }
        let app = match self.preloaded.clone() {
            Some(app) => app,
            None => match self.loader.load(&settings) {
                Ok(app) => app,
                Err(err) => {
                    tracing::error!("Exception in worker process: {err}");
                    return ExitCode::from(err.exit_code());
                }
            },
        };
        let info = WorkerInfo {
            pid,
            worker_class: self.class.name().to_owned(),
            age,
        };
        if let Err(err) = app.sync.init_worker(&info) {
            tracing::error!("Worker failed to boot: init_worker failed: {err}");
            return ExitCode::from(3);
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
        let code = self.class.run(worker);
        shutdown.finish_signal_hooks();
        self.hooks.worker_exit(&self.view(), &worker_view);
        code
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
