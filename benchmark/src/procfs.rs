//! What `/proc` says about the server and the machine: the CPU time of a
//! process tree (the master, its workers, and the workers already reaped),
//! each process's resident memory, and the machine's CPUs, model, memory
//! and kernel for the report.

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use nix::sched::{sched_getaffinity, CpuSet};
use nix::unistd::{sysconf, Pid, SysconfVar};

use crate::report::Machine;

/// One process's line of `/proc/PID/stat`, the fields used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    /// utime + stime + cutime + cstime, clock ticks: its own CPU and that
    /// of the children it reaped.
    ticks: u64,
}

/// Parses `/proc/PID/stat` (the command name may hold spaces and
/// parentheses: the fields start after the last `)`).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let ppid = fields.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for index in 11..=14 {
        ticks += fields.get(index)?.parse::<u64>().ok()?;
    }
    Some(Stat { ppid, ticks })
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process now, by pid.
fn all_stats() -> HashMap<u32, Stat> {
    let mut stats = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return stats;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(pid) {
            stats.insert(pid, stat);
        }
    }
    stats
}

/// `root` and every process descended from it, `root` first.
fn tree(root: u32, stats: &HashMap<u32, Stat>) -> Vec<u32> {
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        let mut children: Vec<u32> = stats
            .iter()
            .filter(|(pid, stat)| stat.ppid == parent && **pid != parent)
            .map(|(pid, _)| *pid)
            .collect();
        children.sort_unstable();
        found.extend(children);
        next += 1;
    }
    found
}

/// The direct children of `pid` (a master's workers), in pid order.
pub fn children(pid: u32) -> Vec<u32> {
    let mut children: Vec<u32> = all_stats()
        .into_iter()
        .filter(|(child, stat)| stat.ppid == pid && *child != pid)
        .map(|(child, _)| child)
        .collect();
    children.sort_unstable();
    children
}

/// Clock ticks per second of `/proc`'s times.
fn ticks_per_second() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as u64,
        _ => 100,
    }
}

/// One clock tick, the resolution of [`tree_cpu`].
pub fn tick() -> Duration {
    Duration::from_nanos(1_000_000_000 / ticks_per_second())
}

/// The CPU time of `root` and all its descendants so far, reaped ones
/// included (a master's cutime holds the workers it has reaped, a worker's
/// the processes it reaped). None when `root` is gone.
pub fn tree_cpu(root: u32) -> Option<Duration> {
    let stats = all_stats();
    stats.get(&root)?;
    let ticks: u64 = tree(root, &stats)
        .iter()
        .filter_map(|pid| stats.get(pid))
        .map(|stat| stat.ticks)
        .sum();
    let per_second = ticks_per_second();
    Some(
        Duration::from_secs(ticks / per_second)
            + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second),
    )
}

/// `VmRSS` of `pid`, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A field of `/proc/PID/status`, its value trimmed.
pub fn status_field(pid: u32, name: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .map(|value| value.trim().to_owned())
}

/// The CPUs this thread may run on.
pub fn allowed_cpus() -> Vec<u32> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|cpu| set.is_set(*cpu).unwrap_or(false))
        .map(|cpu| cpu as u32)
        .collect()
}

/// `0-3,6`.
pub fn format_cpus(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < cpus.len() {
        let first = cpus[index];
        let mut last = first;
        while index + 1 < cpus.len() && cpus[index + 1] == last + 1 {
            index += 1;
            last = cpus[index];
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        index += 1;
    }
    parts.join(",")
}

/// The machine this runs on.
pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            matches!(key.trim(), "model name" | "Model" | "cpu model")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let memory_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let read = |path: &str| {
        fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .unwrap_or_default()
    };
    let kernel = format!(
        "{} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease")
    )
    .trim()
    .to_owned();
    Machine {
        cpus,
        cpu_model,
        memory_kib,
        kernel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_names() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 100 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 7,
                ticks: 11 + 22 + 33 + 44
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let pid = std::process::id();
        // Burn a little CPU so the figure cannot stay zero.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(tree_cpu(pid).unwrap() > Duration::ZERO);
        assert!(rss_kib(pid) > 0);
        assert!(tree_cpu(u32::MAX).is_none());
        let machine = machine();
        assert!(machine.cpus >= 1 && machine.memory_kib > 0);
        assert!(machine.kernel.starts_with("Linux"));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(format_cpus(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(format_cpus(&[3]), "3");
        assert!(!allowed_cpus().is_empty());
    }
}
