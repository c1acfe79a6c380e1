//! Descriptor limits. The test process's own: tests that hold many
//! connections at once raise the soft limit (never above the hard one), and
//! the servers they start inherit it. A worker's: read from `/proc`, and
//! set with `prlimit --pid` to make its accepts fail with EMFILE.

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

/// The soft and hard `RLIMIT_NOFILE` of process `pid`, from
/// `/proc/<pid>/limits` ("Max open files").
pub fn nofile_of(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let soft = numbers.next()?.parse().ok()?;
    let hard = numbers.next()?.parse().ok()?;
    Some((soft, hard))
}

/// Sets process `pid`'s soft `RLIMIT_NOFILE` to `limit` (its hard limit
/// stays, so the soft one can be raised again) with util-linux's
/// `prlimit --pid`; panics if it fails.
pub fn set_nofile_of(pid: u32, limit: u64) {
    let (_, hard) = nofile_of(pid).expect("read /proc/<pid>/limits");
    let status = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={limit}:{hard}"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(
        status.success(),
        "prlimit --pid {pid} --nofile={limit}:{hard}: {status}"
    );
}

/// The descriptor limit that leaves process `pid` exactly `spare` new
/// descriptors: the `spare + 1`-th lowest descriptor number it has free
/// (a new descriptor takes the lowest free number, and must be below the
/// limit).
pub fn limit_leaving(pid: u32, spare: usize) -> u64 {
    let open: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..)
        .filter(|fd| !open.contains(fd))
        .nth(spare)
        .expect("a free descriptor number")
}
