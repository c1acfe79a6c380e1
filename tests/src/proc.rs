//! The process table as `/proc` shows it: who is whose child, who is in
//! which process group, who is a zombie.

use std::fs;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// One line of `/proc/<pid>/stat`, the fields the tests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The process id.
    pub pid: u32,
    /// The command name (`comm`), as the kernel truncates it.
    pub comm: String,
    /// One letter: `R`, `S`, `D`, `Z` (zombie), `T`, ...
    pub state: char,
    /// The parent's pid.
    pub ppid: u32,
    /// The process group id.
    pub pgrp: u32,
}

impl ProcStat {
    /// Whether the process has exited and waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parens, so
    // split at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_owned();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
    })
}

/// The CPU time `pid` has used so far (user + system), in clock ticks
/// (`utime` + `stime` of `/proc/<pid>/stat`; 100 a second on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    // `fields[0]` is field 3 (state): utime is field 14, stime field 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Every process currently visible in `/proc`.
pub fn all() -> Vec<ProcStat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The children of `parent`, zombies included, sorted by pid.
pub fn children(parent: u32) -> Vec<ProcStat> {
    let mut found: Vec<ProcStat> = all()
        .into_iter()
        .filter(|proc| proc.ppid == parent)
        .collect();
    found.sort_by_key(|proc| proc.pid);
    found
}

/// The live (non-zombie) children of `parent`, sorted.
pub fn live_children(parent: u32) -> Vec<u32> {
    children(parent)
        .into_iter()
        .filter(|proc| !proc.is_zombie())
        .map(|proc| proc.pid)
        .collect()
}

/// The live workers of a master: its children named `runicorn-worker`
/// (the process title), sorted.
pub fn workers_of(master: u32) -> Vec<u32> {
    children(master)
        .into_iter()
        .filter(|child| !child.is_zombie() && child.comm.starts_with("runicorn-work"))
        .map(|child| child.pid)
        .collect()
}

/// The pid a pidfile holds, if it exists and holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Sends `signal` to any process by pid, such as a master a USR2 started
/// (not the one the test's `Server` owns).
pub fn signal(pid: u32, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).expect("signal a process");
}

/// Every process in process group `pgrp`, zombies included.
pub fn group(pgrp: u32) -> Vec<ProcStat> {
    all().into_iter().filter(|proc| proc.pgrp == pgrp).collect()
}

/// Whether `pid` names a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|proc| !proc.is_zombie())
}

/// The thread ids of `pid` (`/proc/<pid>/task`), sorted; empty when gone.
pub fn threads(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut tids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    tids
}

/// The CPUs thread `tid` of `pid` may run on, as the kernel lists them
/// (`Cpus_allowed_list`: `0-3`, `0,2`); a pinned thread shows one CPU.
pub fn cpus_allowed(pid: u32, tid: u32) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

/// A size field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`: the
/// peak resident set since the process started); `None` when gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_comm_with_spaces_and_parens() {
        let line = "42 (run (x) y) S 7 42 42 0 -1 4194560";
        let parsed = parse_stat(line).unwrap();
        assert_eq!(parsed.pid, 42);
        assert_eq!(parsed.comm, "run (x) y");
        assert_eq!(parsed.state, 'S');
        assert_eq!(parsed.ppid, 7);
        assert_eq!(parsed.pgrp, 42);
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(threads(me).contains(&me));
        assert!(cpus_allowed(me, me).is_some_and(|list| !list.is_empty()));
        assert!(all().iter().any(|proc| proc.pid == me));
    }
}
