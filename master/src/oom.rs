//! Was it the OOM killer? The cgroup's `oom_kill` counter says.
//!
//! cgroup v2: `memory.events` in the process's cgroup directory; v1:
//! `memory.oom_control` under the memory controller. Read at start and
//! again when a worker dies of a SIGKILL the master did not send.

use std::path::PathBuf;

/// Where the counter was read, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomCount {
    /// The file read.
    pub source: PathBuf,
    /// The `oom_kill` value.
    pub kills: u64,
}

/// Reads this process's cgroup `oom_kill` counter, if readable.
pub fn read_oom_kills() -> Option<OomCount> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let candidates: Vec<PathBuf> = if controllers.is_empty() {
            vec![PathBuf::from("/sys/fs/cgroup")
                .join(path)
                .join("memory.events")]
        } else if controllers.split(',').any(|name| name == "memory") {
            vec![PathBuf::from("/sys/fs/cgroup/memory")
                .join(path)
                .join("memory.oom_control")]
        } else {
            continue;
        };
        for source in candidates {
            if let Some(kills) = std::fs::read_to_string(&source)
                .ok()
                .and_then(|text| parse_oom_kill(&text))
            {
                return Some(OomCount { source, kills });
            }
        }
    }
    None
}

/// The `oom_kill N` line of `memory.events` or `memory.oom_control`.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|value| value.trim().parse().ok())
}

/// Did the counter rise between the two reads?
pub fn rose(before: Option<&OomCount>, after: Option<&OomCount>) -> bool {
    matches!((before, after), (Some(before), Some(after)) if after.kills > before.kills)
}

/// The sentence the reap log adds after an unexplained SIGKILL.
pub fn explain(before: Option<&OomCount>, after: Option<&OomCount>) -> String {
    match (before, after) {
        (Some(before), Some(after)) if after.kills > before.kills => format!(
            "the cgroup's oom_kill counter rose from {} to {} ({}): the kernel's OOM killer killed it; \
             give the service more memory, lower -w/--threads, or set --max-worker-memory under the \
             service's memory limit divided by -w so that workers retire gracefully before the OOM killer \
             strikes",
            before.kills,
            after.kills,
            after.source.display()
        ),
        (_, Some(after)) => format!(
            "the cgroup's oom_kill counter is unchanged at {} ({}): something other than the OOM killer sent it",
            after.kills,
            after.source.display()
        ),
        _ => "the kernel's OOM killer is the likely sender (no cgroup oom_kill counter was readable to confirm)"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_and_explain() {
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"),
            Some(5)
        );
        assert_eq!(parse_oom_kill("nothing here"), None);
        let count = |kills| OomCount {
            source: "/x".into(),
            kills,
        };
        assert!(explain(Some(&count(1)), Some(&count(2))).contains("rose from 1 to 2"));
        assert!(rose(Some(&count(1)), Some(&count(2))));
        assert!(!rose(Some(&count(2)), Some(&count(2))));
        assert!(!rose(None, Some(&count(2))));
        assert!(explain(Some(&count(2)), Some(&count(2))).contains("unchanged at 2"));
        assert!(explain(None, None).contains("likely"));
        let _ = read_oom_kills();
    }
}
