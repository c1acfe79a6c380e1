//! The descriptor limit (`RLIMIT_NOFILE`): at start the master raises its
//! soft limit to the hard one (workers inherit it), and warns, with the fix,
//! when one worker's connections cannot fit in it.
//!
//! The limit is per process, so the check is per worker: the connections
//! one worker of the class may hold (`WorkerClass::connections_per_worker`:
//! 1 for sync, `--worker-connections` for the others) plus what a worker
//! holds besides them ([`worker_margin`]: the listeners, its runtime's
//! epoll sets and pipes, log files, the app's own files). `workers` times
//! that is what the service as a whole holds, which is named too (it is
//! what the system-wide `fs.file-max` must fit).
//!
//! Without this a server started by a shell with `ulimit -n 1024` (the
//! usual soft limit) accepts up to about 1000 connections per worker and
//! then logs EMFILE on accept, the failure operators hit first under load.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use runicorn_worker::Settings;

/// Descriptors a worker holds besides its client connections, beyond its
/// listeners and two per thread (an epoll set and a wake pipe or eventfd
/// per runtime thread): log files, the signal and wake pipes, the app's
/// own files and upstream connections.
pub const BASE_MARGIN: u64 = 32;

/// The soft and hard limits before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit the master was started with.
    pub before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (to
/// `/proc/sys/fs/nr_open` if the hard limit is "unlimited", which Linux
/// refuses for this resource), and logs what it did. `None` if the limit
/// cannot be read.
pub fn raise() -> Option<Raised> {
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let target = if hard == RLIM_INFINITY {
        nr_open().unwrap_or(before)
    } else {
        hard
    };
    if target <= before {
        tracing::debug!("Descriptor limit (RLIMIT_NOFILE): {before} (the hard limit is {hard})");
        return Some(Raised {
            before,
            soft: before,
            hard,
        });
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            tracing::info!(
                "Raised the descriptor limit (RLIMIT_NOFILE) from {before} to the hard limit, {target}"
            );
            Some(Raised {
                before,
                soft: target,
                hard,
            })
        }
        Err(err) => {
            tracing::warn!(
                "Cannot raise the descriptor limit (RLIMIT_NOFILE) from {before} to {target}: {err}"
            );
            Some(Raised {
                before,
                soft: before,
                hard,
            })
        }
    }
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What one worker may hold besides its connections.
pub fn worker_margin(settings: &Settings, listeners: usize) -> u64 {
    BASE_MARGIN + listeners as u64 + 2 * settings.threads.max(1) as u64
}

/// The warning when one worker's `connections` (for the class named
/// `class`) plus its margin do not fit in the soft limit `soft`; `None`
/// when they fit.
pub fn capacity_warning(
    settings: &Settings,
    class: &str,
    connections: usize,
    listeners: usize,
    soft: u64,
) -> Option<String> {
    let margin = worker_margin(settings, listeners);
    let needed = connections as u64 + margin;
    if needed <= soft {
        return None;
    }
    let workers = settings.workers.max(1) as u64;
    let held_by = if class == "sync" {
        "-k sync holds one".to_owned()
    } else {
        format!("--worker-connections {connections} with -k {class}")
    };
    Some(format!(
        "The descriptor limit (RLIMIT_NOFILE) is {soft}, but each worker may need {needed}: \
         {connections} connection(s) ({held_by}) + {margin} of its own (listeners, runtime, \
         logs, the app's files); {workers} worker(s) need {total} in all. Accepts will fail \
         with EMFILE under load. Raise the limit: LimitNOFILE={needed} (or more) in the systemd \
         unit, or `ulimit -n {needed}` in the shell that starts runicorn (the master raises its \
         soft limit to the hard one, so it is the hard limit that must grow); or lower \
         --worker-connections.",
        total = workers * needed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_fits_is_not_warned_about() {
        let settings = Settings::default();
        assert_eq!(capacity_warning(&settings, "async", 1000, 1, 4096), None);
        assert_eq!(capacity_warning(&settings, "sync", 1, 1, 64), None);
    }

    #[test]
    fn the_warning_names_the_numbers_and_the_fix() {
        let settings = Settings {
            workers: 3,
            ..Settings::default()
        };
        let line = capacity_warning(&settings, "async", 1000, 1, 64).unwrap();
        let needed = 1000 + worker_margin(&settings, 1);
        for part in [
            "is 64".to_owned(),
            format!("may need {needed}"),
            "--worker-connections 1000 with -k async".to_owned(),
            format!("3 worker(s) need {}", 3 * needed),
            format!("LimitNOFILE={needed}"),
            format!("ulimit -n {needed}"),
        ] {
            assert!(line.contains(&part), "{part:?} in {line}");
        }
    }
}
