//! A worker's memory, as the master sees it: its resident set size read
//! from `/proc/<pid>/statm` (one small read per worker, about once a
//! second, from the master's loop: no thread), and the threshold past which
//! `--max-worker-memory` retires it.
//!
//! The figure is the RSS the kernel reports, as uWSGI's `reload-on-rss` and
//! Granian's `--workers-max-rss` use it: pages a worker shares with the
//! master after fork (a `--preload`ed app) count in every worker that
//! touched them, so the limit is per worker, not a share of the machine.

use std::time::Duration;

/// How often the master samples every worker's RSS.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes in a MiB, the unit of `--max-worker-memory`.
pub const MIB: u64 = 1 << 20;

/// The resident set size of process `pid` in bytes, if it can be read.
pub fn resident_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    parse_statm(&text, page_size())
}

/// `statm`'s second field (resident pages) times the page size.
pub fn parse_statm(text: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size))
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |size| size as u64)
}

/// One worker's threshold in bytes for a `--max-worker-memory` of
/// `limit_mib` (0: none): drawn from `random` in `[90%, 100%]` of the
/// limit, so workers that grow alike cross their thresholds at different
/// requests and do not all retire in the same second.
pub fn worker_threshold(limit_mib: u64, random: u64) -> Option<u64> {
    if limit_mib == 0 {
        return None;
    }
    let limit = limit_mib.saturating_mul(MIB);
    let spread = limit / 10;
    Some(limit - random % (spread + 1))
}

/// `bytes` as an operator reads it: `612 MiB`, `1.2 GiB`, `300 KiB`.
pub fn human(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_gives_resident_pages_times_the_page_size() {
        assert_eq!(
            parse_statm("5000 1200 300 10 0 900 0\n", 4096),
            Some(1200 * 4096)
        );
        assert_eq!(parse_statm("5000", 4096), None);
        assert_eq!(parse_statm("", 4096), None);
        let own = resident_bytes(std::process::id() as i32).unwrap();
        assert!(own > MIB, "this test process holds more than a MiB: {own}");
        assert_eq!(resident_bytes(-1), None);
    }

    #[test]
    fn thresholds_spread_over_the_top_tenth_of_the_limit() {
        assert_eq!(worker_threshold(0, 7), None);
        let limit = 512 * MIB;
        let lowest = limit - limit / 10;
        assert_eq!(worker_threshold(512, 0), Some(limit));
        assert_eq!(worker_threshold(512, limit / 10), Some(lowest));
        for random in [1, 12345, u64::MAX, 0x9E37_79B9_7F4A_7C15] {
            let threshold = worker_threshold(512, random).unwrap();
            assert!((lowest..=limit).contains(&threshold), "{threshold}");
        }
        assert_ne!(worker_threshold(512, 1), worker_threshold(512, 99_999));
    }

    #[test]
    fn sizes_read_as_an_operator_writes_them() {
        assert_eq!(human(612 * MIB + 5), "612 MiB");
        assert_eq!(human(1288 * MIB), "1.3 GiB");
        assert_eq!(human(300 * 1024), "300 KiB");
    }
}
