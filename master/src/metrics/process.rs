//! A worker's CPU time, read from `/proc` when a scrape asks (never on a
//! timer; its resident memory is `crate::memory`'s).

use nix::unistd::{sysconf, SysconfVar};

/// The user and system CPU time of `pid`, seconds: `stat`'s `utime` and
/// `stime`, in clock ticks.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_cpu_ticks(&stat)?;
    let per_second = sysconf(SysconfVar::CLK_TCK).ok()??;
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// `stat`'s `utime + stime` (fields 14 and 15), read after the command
/// name, which is in parentheses and may hold spaces and parentheses.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name: field 3 (state) is the first; utime is field 14.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parses() {
        let stat =
            "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 1 0 0 0 17 5 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(22));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_cpu_time() {
        let pid = std::process::id() as i32;
        assert!(cpu_seconds(pid).is_some());
        assert_eq!(cpu_seconds(-1), None);
    }
}
