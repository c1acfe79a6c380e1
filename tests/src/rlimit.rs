//! The test process's descriptor limit: tests that hold many connections at
//! once raise the soft limit (never above the hard one), and the servers
//! they start inherit it.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to at least `wanted` if the hard limit
/// allows; returns the soft limit now in force.
pub fn raise_nofile(wanted: u64) -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= wanted {
        return soft;
    }
    let target = wanted.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => target,
        Err(_) => soft,
    }
}
