//! Reports built by hand for the output modules' unit tests: a run is
//! named by what the tests vary (workload, class, connections, req/s,
//! latency, CPU per request); the rest is filled in consistently.

use std::collections::BTreeMap;

use crate::report::{BenchSettings, Failure, Latency, Machine, Report, Run, FORMAT};

/// A closed-loop run of `seconds` = 10 whose figures follow from the
/// arguments: requests = rps x 10, server CPU = requests x cpu.
pub(crate) fn run(
    workload: &str,
    class: &str,
    connections: u32,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    cpu_per_request_us: f64,
) -> Run {
    let duration_s = 10.0;
    let requests = (rps * duration_s).round() as u64;
    let mut statuses = BTreeMap::new();
    if requests > 0 {
        statuses.insert("200".to_string(), requests);
    }
    Run {
        workload: workload.to_string(),
        app: format!("builtin:{workload}"),
        request: "GET /?ms=50".to_string(),
        class: class.to_string(),
        connections,
        rate: None,
        requests,
        duration_s,
        rps,
        latency: Latency {
            mean: p50_us as f64 * 1.1,
            p50: p50_us,
            p90: p50_us + (p99_us - p50_us) / 2,
            p99: p99_us,
            p999: p99_us * 2,
            max: p99_us * 3,
        },
        statuses,
        errors: BTreeMap::new(),
        server_cpu_s: requests as f64 * cpu_per_request_us / 1e6,
        cpu_per_request_us,
        client_cpu_s: 1.5,
        worker_rss_kib: vec![10_240, 12_288],
        master_rss_kib: 8_192,
        blocking_pool: None,
        little_limit_rps: None,
        interrupted: false,
    }
}

/// A run with `errors` of `kind` added (counted in statuses as 5xx when
/// the kind says so).
pub(crate) fn with_errors(mut run: Run, kind: &str, errors: u64) -> Run {
    run.errors.insert(kind.to_string(), errors);
    run
}

/// A report of `runs` on a 4-CPU machine, 2 workers, 8 threads.
pub(crate) fn report(runs: Vec<Run>) -> Report {
    Report {
        format: FORMAT,
        runicorn: "runicorn 0.1.0".to_string(),
        started: "2026-12-07T20:00:00Z".to_string(),
        machine: Machine {
            cpus: 4,
            cpu_model: "Test CPU @ 3.0GHz".to_string(),
            memory_kib: 16 * 1024 * 1024,
            kernel: "Linux 6.1.0".to_string(),
        },
        settings: BenchSettings {
            workers: 2,
            threads: 8,
            worker_connections: 1000,
            mode: "closed".to_string(),
            keep_alive: true,
            duration_s: 10.0,
            warmup_s: 2.0,
            transport: "tcp".to_string(),
            server_cpus: Vec::new(),
            client_cpus: Vec::new(),
            client_threads: 1,
            server_args: Vec::new(),
        },
        runs,
        failures: Vec::new(),
        interrupted: false,
        recommendations: Vec::new(),
    }
}

/// A class that could not serve.
pub(crate) fn failure(workload: &str, class: &str, reason: &str) -> Failure {
    Failure {
        workload: workload.to_string(),
        class: class.to_string(),
        reason: reason.to_string(),
    }
}

/// An IO-bound report: each request waits `wait_ms` (a downstream call)
/// and spends `cpu_us` of CPU. sync (2 workers, one request each)
/// saturates at 2 / wait; gthread (2 x 8 threads) at 16 / wait.
pub(crate) fn io_bound(wait_ms: u64, cpu_us: f64) -> Report {
    let wait_s = wait_ms as f64 / 1000.0;
    let p50 = wait_ms * 1000 + 300;
    let mut runs = Vec::new();
    for &connections in &[1u32, 16, 64] {
        let sync_rps = f64::from(connections.min(2)) / wait_s * 0.98;
        let sync_p99 = p50 * u64::from(connections.max(2) / 2) + 500;
        let mut sync = run("io", "sync", connections, sync_rps, p50, sync_p99, cpu_us);
        sync.little_limit_rps = Some(f64::from(connections.min(2)) / wait_s);
        runs.push(sync);
        let gthread_rps = f64::from(connections.min(16)) / wait_s * 0.97;
        let gthread_p99 = (p50 + 1_000) * u64::from((connections / 16).max(1));
        let mut gthread = run(
            "io",
            "gthread",
            connections,
            gthread_rps,
            p50 + 100,
            gthread_p99,
            cpu_us * 1.05,
        );
        gthread.little_limit_rps = Some(f64::from(connections.min(16)) / wait_s);
        runs.push(gthread);
    }
    report(runs)
}

/// A CPU-bound report (builtin:cpu, 2 ms of CPU per request on 4 CPUs):
/// every class tops out near 4 / 2 ms = 2000 req/s.
pub(crate) fn cpu_bound() -> Report {
    let mut runs = Vec::new();
    for &connections in &[1u32, 16, 64] {
        let level = f64::from(connections.min(2));
        runs.push(run(
            "cpu",
            "sync",
            connections,
            level * 480.0,
            2_100,
            2_600 * u64::from(connections),
            2_000.0,
        ));
        runs.push(run(
            "cpu",
            "gthread",
            connections,
            level * 450.0,
            2_150,
            2_900 * u64::from(connections),
            2_150.0,
        ));
    }
    report(runs)
}
