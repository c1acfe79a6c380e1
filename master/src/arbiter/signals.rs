//! `handle_<signal>`: what the master does for each queued signal.

use std::sync::Arc;

use nix::sys::signal::Signal;

use super::{bind_listeners, Arbiter, PendingReload, RetiredListeners, Stop};
use crate::error::MasterError;
use crate::log;

fn name(signal: Signal) -> String {
    signal
        .as_str()
        .trim_start_matches("SIG")
        .to_ascii_lowercase()
}

impl Arbiter {
    /// TERM: graceful stop, exit 0.
    pub(super) fn handle_term(&mut self) -> u8 {
        tracing::info!("Handling signal: term");
        self.stop(Stop::Graceful);
        tracing::info!("Shutting down: Master");
        0
    }

    /// INT/QUIT: quick stop, exit 0.
    pub(super) fn handle_quit(&mut self, signal: Signal) -> u8 {
        tracing::info!("Handling signal: {}", name(signal));
        self.stop(Stop::Quick);
        tracing::info!("Shutting down: Master");
        0
    }

    /// TTIN: one worker more.
    pub(super) fn handle_ttin(&mut self) {
        tracing::info!("Handling signal: ttin");
        let old = self.num_workers;
        self.num_workers += 1;
        self.hooks
            .nworkers_changed(&self.view(), self.num_workers, Some(old));
    }

    /// TTOU: one worker fewer, never below one.
    pub(super) fn handle_ttou(&mut self) {
        tracing::info!("Handling signal: ttou");
        if self.num_workers <= 1 {
            tracing::info!("Keeping 1 worker: TTOU never goes below one");
            return;
        }
        let old = self.num_workers;
        self.num_workers -= 1;
        self.hooks
            .nworkers_changed(&self.view(), self.num_workers, Some(old));
    }

    /// USR1: reopen the log file here and in every worker.
    pub(super) fn handle_usr1(&mut self) {
        log::reopen();
        runicorn_worker::access::reopen();
        tracing::info!("Handling signal: usr1");
        let pids: Vec<i32> = self.workers.keys().copied().collect();
        for pid in pids {
            self.signal_worker(pid, Signal::SIGUSR1);
        }
    }

    /// HUP: re-read the configuration and start a new generation; the old
    /// workers retire once the new ones have booted (see `manage_workers`);
    /// the loop spawns the new generation right after the signals.
    pub(super) fn handle_hup(&mut self) {
        tracing::info!("Handling signal: hup");
        tracing::info!("Hang up: Master");
        let settings = match (self.reload)() {
            Ok(settings) => settings,
            Err(err) => {
                tracing::error!("Reload failed, keeping the running configuration: {err}");
                return;
            }
        };
        if let Err(err) =
            log::LogOptions::from_settings(&settings).and_then(|options| log::configure(&options))
        {
            tracing::error!("Reload failed, keeping the running configuration: {err}");
            return;
        }
        log::set_capture_output(settings.capture_output);
        if settings.accesslog != self.settings.accesslog {
            if let Err(err) = runicorn_worker::access::open(settings.accesslog.as_deref()) {
                let path = settings.accesslog.clone().unwrap_or_default();
                self.keep_running_configuration(&MasterError::AccessLog { path, source: err });
                return;
            }
        }
        if settings.control_socket != self.control_path {
            let shown = |path: &Option<std::path::PathBuf>| {
                path.as_ref()
                    .map_or_else(|| "none".to_owned(), |path| path.display().to_string())
            };
            tracing::warn!(
                "--control-socket changed from {} to {} on HUP: the control socket is made once, at \
                 start, and stays {} until runicorn restarts (or a USR2 upgrade starts a new master)",
                shown(&self.control_path),
                shown(&settings.control_socket),
                match &self.control_path {
                    Some(path) => format!("at {}", path.display()),
                    None => "off".to_owned(),
                }
            );
        }
        let new_listeners = if settings.bind != self.settings.bind {
            let current: Vec<(&String, &runicorn_worker::Listener)> = self
                .listener_specs
                .iter()
                .zip(self.listeners.iter())
                .collect();
            match bind_listeners(&settings, self.credentials.as_ref(), false, &current) {
                Ok(bound) => Some(bound.into_iter().unzip::<_, _, Vec<_>, Vec<_>>()),
                Err(err) => {
                    self.keep_running_configuration(&err);
                    return;
                }
            }
        } else {
            None
        };
        let preloaded = if settings.preload_app {
            match self.loader.load(&settings) {
                Ok(app) => Some(app),
                Err(err) => {
                    self.keep_running_configuration(&err);
                    return;
                }
            }
        } else {
            None
        };
        let old_settings = std::mem::replace(&mut self.settings, Arc::new(settings));
        if self.settings.statsd_host != old_settings.statsd_host
            || self.settings.statsd_prefix != old_settings.statsd_prefix
            || self.settings.dogstatsd_tags != old_settings.dogstatsd_tags
        {
            crate::statsd::install(&self.settings);
            self.workers_gauge = Default::default();
        }
        if self.settings.metrics_bind != old_settings.metrics_bind {
            self.rebind_metrics();
        }
        let old_preloaded = std::mem::replace(&mut self.preloaded, preloaded);
        let old_listeners = new_listeners.map(|(specs, listeners)| {
            for listener in &listeners {
                tracing::info!(
                    "Listening at: {} ({})",
                    listener.describe_serving(self.settings.tls.is_some()),
                    self.pid
                );
            }
            for path in super::owned_unix_paths(&self.settings, &listeners) {
                if !self.unix_paths.contains(&path) {
                    self.unix_paths.push(path);
                }
            }
            (
                std::mem::replace(&mut self.listener_specs, specs),
                std::mem::replace(&mut self.listeners, listeners),
            )
        });
        if self.pending.is_none() {
            self.pending = Some(PendingReload {
                generation: self.generation,
                settings: old_settings,
                num_workers: self.num_workers,
                listeners: old_listeners,
                preloaded: old_preloaded,
            });
        } else if let Some((_, listeners)) = old_listeners {
            // A HUP during a HUP: the intermediate listeners retire with
            // the intermediate generation.
            self.retired_listeners.push(RetiredListeners {
                newest_generation: self.generation,
                listeners,
            });
        }
        self.generation += 1;
        let old = self.num_workers;
        self.num_workers = self.settings.workers.max(1);
        self.fast_deaths = 0;
        self.check_descriptor_limit();
        self.hooks.on_reload(&self.view());
        if old != self.num_workers {
            self.hooks
                .nworkers_changed(&self.view(), self.num_workers, Some(old));
        }
    }

    /// A reload that failed after the new log configuration was applied:
    /// say why and put the running configuration's logging back.
    fn keep_running_configuration(&self, err: &dyn std::fmt::Display) {
        tracing::error!("Reload failed, keeping the running configuration: {err}");
        let _ = log::LogOptions::from_settings(&self.settings)
            .and_then(|options| log::configure(&options));
        let _ = runicorn_worker::access::open(self.settings.accesslog.as_deref());
    }

    /// The new generation cannot boot: go back to the old configuration,
    /// keep its workers serving, and stop the new ones.
    pub(super) fn abandon_reload(&mut self, reason: &str) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        tracing::error!(
            "The reloaded configuration's workers cannot boot ({reason}); keeping the old workers \
             serving with the previous configuration. Fix the cause and send HUP again."
        );
        self.notifier
            .reload_done("reload given up: the previous configuration runs");
        let failed_generation = self.generation;
        self.settings = pending.settings;
        self.preloaded = pending.preloaded;
        self.generation = pending.generation;
        self.num_workers = pending.num_workers;
        let _ = log::LogOptions::from_settings(&self.settings)
            .and_then(|options| log::configure(&options));
        let _ = runicorn_worker::access::open(self.settings.accesslog.as_deref());
        if let Some((specs, listeners)) = pending.listeners {
            self.listener_specs = specs;
            let failed = std::mem::replace(&mut self.listeners, listeners);
            self.retired_listeners.push(RetiredListeners {
                newest_generation: failed_generation,
                listeners: failed,
            });
        }
        let doomed: Vec<i32> = self
            .workers
            .iter()
            .filter(|(_, record)| record.state.generation > self.generation)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in doomed {
            self.signal_worker(pid, Signal::SIGQUIT);
            if let Some(record) = self.workers.get_mut(&pid) {
                record.state.retiring_since = Some(runicorn_worker::clock::monotonic_now());
            }
        }
    }
}
