//! Worker classes from shared libraries (`-k ./libmyworker.so:Worker`, or
//! `-k myworker:Worker` on `--chdir`/`--app-path`).
//!
//! The library is opened in the master (so a bad `-k` fails before any
//! fork, and its name is logged at boot); its `run` entry is called in each
//! forked worker through `runicorn_app::abi::worker_class`, with a
//! [`WorkerHost`] made from the master's [`Worker`]: heartbeat to the
//! scoreboard slot, the shutdown state (plus `max_requests`), and the app.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use runicorn_app::abi::worker_class::{
    LoadedWorkerClass, WorkerHost, WorkerParams, RC_STOP_GRACEFUL, RC_STOP_NONE, RC_STOP_QUICK,
};
use runicorn_app::loader::{self, SearchPath};
use runicorn_app::{Application, LogLevel};
use runicorn_worker::{Ending, RetireCause, Settings, ShutdownState, Worker, WorkerClass};

/// Loads the class `spec` (`LIBRARY:SYMBOL` or a path) names.
pub fn load(spec: &str, settings: &Settings) -> Result<Arc<dyn WorkerClass>, String> {
    let search = SearchPath::new(settings.chdir.clone(), settings.app_path.clone());
    let class = loader::load_worker_class(spec, &search).map_err(|err| err.to_string())?;
    Ok(Arc::new(DylibClass { class }))
}

/// A library worker class as a [`WorkerClass`].
#[derive(Debug)]
struct DylibClass {
    class: LoadedWorkerClass,
}

impl WorkerClass for DylibClass {
    fn name(&self) -> &'static str {
        self.class.name()
    }

    fn run(&self, worker: Worker) -> Ending {
        let settings = &worker.settings;
        let params = WorkerParams {
            listener_fds: worker
                .listeners
                .iter()
                .map(|listener| listener.as_raw_fd())
                .collect(),
            threads: u32::try_from(settings.threads).unwrap_or(u32::MAX),
            age: worker.age,
            worker_connections: settings.worker_connections as u64,
            timeout: settings.timeout,
            graceful_timeout: settings.graceful_timeout,
            keepalive: settings.keepalive,
            max_requests: worker.max_requests,
        };
        let host = Host {
            worker: &worker,
            served: AtomicU64::new(0),
        };
        let code = self.class.run(&params, &host);
        worker.app.sync.shutdown_worker();
        match code {
            0 => Ending::Stopped,
            // The library's own status (3: it could not boot), passed through.
            code => Ending::Exited(u8::try_from(code).unwrap_or(1)),
        }
    }
}

/// The master's `Worker` as the host services of a library class.
struct Host<'a> {
    worker: &'a Worker,
    served: AtomicU64,
}

impl WorkerHost for Host<'_> {
    fn notify(&self) {
        self.worker.slot.heartbeat();
    }

    fn should_stop(&self) -> u32 {
        match self.worker.shutdown.state() {
            ShutdownState::Quick => RC_STOP_QUICK,
            ShutdownState::Graceful => RC_STOP_GRACEFUL,
            ShutdownState::Running => {
                let limit = self.worker.max_requests;
                if limit > 0 && self.served.load(Ordering::Acquire) >= limit {
                    self.worker.slot.note_retiring(RetireCause::MaxRequests);
                    RC_STOP_GRACEFUL
                } else {
                    RC_STOP_NONE
                }
            }
        }
    }

    fn app(&self) -> &Application {
        &self.worker.app
    }

    fn around_request(&self, request_line: &str, serve: &mut dyn FnMut()) {
        let _in_flight = self.worker.slot.begin_request(request_line);
        serve();
        self.served.fetch_add(1, Ordering::AcqRel);
    }

    fn log(&self, level: LogLevel, message: &str) {
        match level {
            LogLevel::Debug => tracing::debug!("{message}"),
            LogLevel::Info => tracing::info!("{message}"),
            LogLevel::Warning => tracing::warn!("{message}"),
            LogLevel::Error => tracing::error!("{message}"),
        }
    }
}
