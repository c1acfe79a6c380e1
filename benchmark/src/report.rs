//! What a `runicorn bench` run measured: the data model every output is made
//! from (the table, JSON, CSV, the charts, `--compare` and the
//! recommendation). JSON is this model serialized as is, so a report saved
//! with `--output json` is what `--compare FILE.json` and `--from FILE.json`
//! read back; [`FORMAT`] changes when a field changes meaning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the JSON format.
pub const FORMAT: u32 = 1;

/// One invocation of `runicorn bench`: every workload under every worker
/// class at every concurrency (or rate) asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// `runicorn --version` of the binary that ran it.
    pub runicorn: String,
    /// When it started, RFC 3339 in UTC.
    pub started: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// What was asked for, the same for every run.
    pub settings: BenchSettings,
    /// Every run, in the order they ran.
    pub runs: Vec<Run>,
    /// The classes that could not serve (the others still ran).
    pub failures: Vec<Failure>,
    /// Ctrl-C stopped it: the runs are what was measured until then (the
    /// last one marked `interrupted`).
    pub interrupted: bool,
    /// One per workload, when there were runs to reason from.
    pub recommendations: Vec<Recommendation>,
}

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: u32,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// MemTotal, KiB.
    pub memory_kib: u64,
    /// `uname -sr`.
    pub kernel: String,
}

/// How the load was shaped and the server configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSettings {
    /// `--workers` given to every class.
    pub workers: u32,
    /// `--threads` (gthread's pool; green's and async's runtime threads).
    pub threads: u32,
    /// `--worker-connections` (green and async).
    pub worker_connections: u32,
    /// `closed` (fixed concurrency) or `open` (fixed rate).
    pub mode: String,
    /// false: a new connection per request.
    pub keep_alive: bool,
    /// Measured seconds per run.
    pub duration_s: f64,
    /// Unmeasured seconds before each run.
    pub warmup_s: f64,
    /// `tcp` (127.0.0.1) or `unix`.
    pub transport: String,
    /// The CPUs the server was pinned to (empty: not pinned).
    pub server_cpus: Vec<u32>,
    /// The CPUs the load generator was pinned to (empty: not pinned).
    pub client_cpus: Vec<u32>,
    /// Load generator threads.
    pub client_threads: u32,
    /// The server's extra arguments (after `--`).
    pub server_args: Vec<String>,
}

impl BenchSettings {
    /// How many requests a server started with these settings serves at
    /// once under `class`: workers for sync, workers x threads for gthread,
    /// workers x worker connections for green and async, or workers x
    /// min(worker connections, `blocking_pool`) when the app's requests ran
    /// on their blocking pool (the run's [`Run::blocking_pool`]); None for
    /// another class, or a server driven with `--url`. Little's law's
    /// capacity, for the limits and the recommendation alike.
    pub fn capacity(&self, class: &str, blocking_pool: Option<u32>) -> Option<u32> {
        match class {
            "sync" => Some(self.workers),
            "gthread" => Some(self.workers.saturating_mul(self.threads)),
            "green" | "async" => {
                let per_worker = match blocking_pool {
                    Some(pool) => self.worker_connections.min(pool),
                    None => self.worker_connections,
                };
                Some(self.workers.saturating_mul(per_worker))
            }
            _ => None,
        }
    }

    /// [`BenchSettings::capacity`] for the class and blocking pool `run`
    /// was measured with.
    pub fn run_capacity(&self, run: &Run) -> Option<u32> {
        self.capacity(&run.class, run.blocking_pool)
    }
}

/// One measured run: one workload, one class, one concurrency or rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `hello`, `io`, `cpu`, `mixed`, `upload`, `stream`, or `app` (the
    /// user's own).
    pub workload: String,
    /// The app served (`builtin:sleep`, `myapp:app`), or the URL driven
    /// with `--url`.
    pub app: String,
    /// The request sent (`GET /?ms=50`; `file FILE` for `--requests`).
    pub request: String,
    /// The worker class (`sync`, `gthread`, `green`, `async`), or the
    /// `--label` of a server driven with `--url`.
    pub class: String,
    /// Connections (closed loop: the concurrency; open loop: the most
    /// that were open at once).
    pub connections: u32,
    /// Open loop: the scheduled requests per second.
    pub rate: Option<f64>,
    /// Responses received in the measured window.
    pub requests: u64,
    /// The measured window, seconds.
    pub duration_s: f64,
    /// `requests / duration_s`.
    pub rps: f64,
    /// Latency of the responses (open loop: from the scheduled send).
    pub latency: Latency,
    /// Responses per status code (`"200"`).
    pub statuses: BTreeMap<String, u64>,
    /// Failures per kind (`connect`, `reset`, `closed`, `timeout`,
    /// `bad_response`, `status_5xx`, ...); a non-2xx/3xx status counts
    /// as an error too.
    pub errors: BTreeMap<String, u64>,
    /// Server CPU (utime + stime of the master and every worker, reaped
    /// ones included) in the measured window, seconds.
    pub server_cpu_s: f64,
    /// `server_cpu_s / requests`, microseconds.
    pub cpu_per_request_us: f64,
    /// The load generator's own CPU in the window, seconds.
    pub client_cpu_s: f64,
    /// Resident memory of each worker at the end of the run, KiB.
    pub worker_rss_kib: Vec<u64>,
    /// The master's resident memory, KiB.
    pub master_rss_kib: u64,
    /// green and async: the requests one worker runs at once on its
    /// blocking pool (`--blocking-threads`), when the app's requests ran on
    /// it (an app that blocks its thread; under async, any app without an
    /// async entry), as the server's log said at boot; None otherwise, for
    /// a server driven with `--url`, and in reports written before it was
    /// recorded (absent from the JSON when None, so such a report reads
    /// back and is written again unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_pool: Option<u32>,
    /// For an IO-bound workload: the most requests per second the server's
    /// concurrency allows by Little's law, min(connections, capacity) /
    /// service time (capacity: [`BenchSettings::capacity`]; workers for
    /// sync, workers x threads for gthread, workers x worker connections
    /// for green and async, or workers x min(worker connections, blocking
    /// pool) when the app ran on the pool).
    pub little_limit_rps: Option<f64>,
    /// Ctrl-C cut this run short.
    pub interrupted: bool,
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A class that could not serve the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub workload: String,
    pub class: String,
    /// Why, in one line (the server's own last error line when it exited).
    pub reason: String,
}

/// What to run a workload with, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub workload: String,
    pub class: String,
    pub workers: u32,
    /// gthread's pool size (1 for the other classes).
    pub threads: u32,
    /// green's and async's cap (0 when the class has none).
    pub worker_connections: u32,
    /// green's and async's `--blocking-threads` when the app's requests
    /// run on that pool, which then bounds them (0: not set, and absent
    /// from the JSON).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blocking_threads: u32,
    /// The command line that applies it (`runicorn -k gthread -w 2 --threads 8 APP`).
    pub command: String,
    /// One paragraph: the measured shape (CPU vs wall time per request),
    /// the bottleneck, and the figures the choice rests on.
    pub why: String,
}

#[cfg(test)]
mod tests {
    use crate::fixture;

    #[test]
    fn capacity_is_bounded_by_the_blocking_pool_the_app_ran_on() {
        // 2 workers, 8 threads, 1000 worker connections.
        let settings = fixture::report(Vec::new()).settings;
        assert_eq!(settings.capacity("sync", None), Some(2));
        assert_eq!(settings.capacity("gthread", None), Some(16));
        assert_eq!(settings.capacity("green", None), Some(2000));
        assert_eq!(settings.capacity("async", None), Some(2000));
        // A WSGI app under green or async: --blocking-threads 40 a worker.
        assert_eq!(settings.capacity("green", Some(40)), Some(80));
        assert_eq!(settings.capacity("async", Some(40)), Some(80));
        // A pool larger than the worker connections: those bound it.
        assert_eq!(settings.capacity("green", Some(5000)), Some(2000));
        // Only green and async have such a pool.
        assert_eq!(settings.capacity("sync", Some(40)), Some(2));
        assert_eq!(settings.capacity("gthread", Some(40)), Some(16));
        assert_eq!(settings.capacity("url", Some(40)), None);
        let mut run = fixture::run("app", "green", 16, 100.0, 20_000, 30_000, 100.0);
        assert_eq!(settings.run_capacity(&run), Some(2000));
        run.blocking_pool = Some(2);
        assert_eq!(settings.run_capacity(&run), Some(4));
    }

    #[test]
    fn a_report_written_before_the_blocking_pool_was_recorded_still_loads() {
        let mut report = fixture::io_bound(20, 2_000.0);
        report.recommendations = crate::recommend::recommend(&report);
        assert!(!report.recommendations.is_empty());
        // Unset, the fields are not written: the JSON is the older one's.
        let old = serde_json::to_value(&report).unwrap();
        assert!(old["runs"][0].get("blocking_pool").is_none(), "{old}");
        assert!(old["recommendations"][0].get("blocking_threads").is_none());
        let read: super::Report = serde_json::from_value(old).unwrap();
        assert_eq!(read, report);
        // Set, they are written and read back.
        report.runs[0].blocking_pool = Some(2);
        report.recommendations[0].blocking_threads = 8;
        let new = serde_json::to_value(&report).unwrap();
        assert_eq!(new["runs"][0]["blocking_pool"], 2);
        assert_eq!(new["recommendations"][0]["blocking_threads"], 8);
        let read: super::Report = serde_json::from_value(new).unwrap();
        assert_eq!(read, report);
    }
}
