//! The run loop: for each workload, for each worker class, start the
//! server, then for each concurrency (or rate) a warm-up and a measured
//! window with the load generator, then stop the server. A class that
//! cannot start becomes a [`Failure`] and the next class runs; Ctrl-C ends
//! the run under way (kept, marked interrupted) and everything after it.
//!
//! Server CPU is sampled from `/proc` when the load generator's progress
//! first reports the measured phase (at most ~100 ms into the window; at
//! its start when there is no warm-up) and again when the window is over,
//! and scaled from that interval to the window's length: the warm-up and
//! the measured window are one generator run, so connections stay open
//! across them as they would in a longer run.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use runicorn_loadgen::{LoadError, Measurement, Mode, Phase, Plan, Progress, Request, Target};

use crate::args::{Config, Endpoint, Load, UrlTarget};
use crate::procfs;
use crate::report::{BenchSettings, Failure, Latency, Report, Run, FORMAT};
use crate::server::{Server, Spec, StartError};
use crate::workload::{Shape, Workload};

/// Runs everything `config` asks for; returns what was measured.
pub fn run(config: &Config, stop: &AtomicBool) -> Report {
    let mut report = Report {
        format: FORMAT,
        runicorn: version(config),
        started: started(),
        machine: procfs::machine(),
        settings: settings(config),
        runs: Vec::new(),
        failures: Vec::new(),
        interrupted: false,
        recommendations: Vec::new(),
    };
    let points: Vec<(u32, Option<f64>)> = match &config.load {
        Load::Closed(connections) => connections.iter().map(|c| (*c, None)).collect(),
        Load::Open { rates, connections } => rates
            .iter()
            .map(|rate| (*connections, Some(*rate)))
            .collect(),
    };
    'workloads: for workload in &config.workloads {
        for class in &config.classes {
            if stop.load(Ordering::Relaxed) {
                report.interrupted = true;
                break 'workloads;
            }
            let first = report.runs.len();
            let served = serve(config, workload, class, &points, stop, &mut report);
            fill_little_limits(&report.settings, workload, &mut report.runs[first..]);
            if let Err(reason) = served {
                eprintln!(
                    "runicorn bench: {class} could not serve {} ({}): {reason}",
                    workload.app, workload.name
                );
                report.failures.push(Failure {
                    workload: workload.name.clone(),
                    class: class.clone(),
                    reason,
                });
            }
            if report.interrupted {
                break 'workloads;
            }
        }
    }
    report
}

/// One class: its server, then every run. Err: why it could not serve.
fn serve(
    config: &Config,
    workload: &Workload,
    class: &str,
    points: &[(u32, Option<f64>)],
    stop: &AtomicBool,
    report: &mut Report,
) -> Result<(), String> {
    let (server, target, host, measured_pid, blocking_pool) = match &config.endpoint {
        Endpoint::Spawn {
            binary,
            unix,
            server_cpus,
            server_args,
        } => {
            let spec = Spec {
                binary,
                app: &workload.app,
                class,
                workers: config.workers,
                threads: config.threads,
                worker_connections: config.worker_connections,
                unix: *unix,
                cpus: server_cpus,
                extra: server_args,
            };
            match Server::start(&spec, stop) {
                Ok(server) => {
                    let target = server.target().clone();
                    let host = server.host().to_owned();
                    let pid = server.pid();
                    let pool = server.blocking_pool();
                    (Some(server), target, host, Some(pid), pool)
                }
                Err(StartError::Interrupted) => {
                    report.interrupted = true;
                    return Ok(());
                }
                Err(StartError::Failed(reason)) => return Err(reason),
            }
        }
        Endpoint::Url {
            target,
            host,
            server_pid,
            ..
        } => {
            let target = match target {
                UrlTarget::Tcp(addr) => Target::Tcp(*addr),
                UrlTarget::Unix(path) => Target::Unix(path.clone()),
            };
            (None, target, host.clone(), *server_pid, None)
        }
    };
    let requests = workload
        .requests(&host, config.keep_alive)
        .map_err(|err| err.to_string())?;
    let mut outcome = Ok(());
    for (connections, rate) in points {
        let point = Point {
            workload,
            class,
            target: &target,
            requests: &requests,
            server_pid: measured_pid,
            blocking_pool,
            connections: *connections,
            rate: *rate,
        };
        match measure(config, &point, stop) {
            Ok(Some(run)) => {
                let interrupted = run.interrupted;
                report.runs.push(run);
                if interrupted {
                    report.interrupted = true;
                    break;
                }
            }
            Ok(None) => {
                report.interrupted = true;
                break;
            }
            Err(err) => {
                outcome = Err(format!("the load generator stopped: {err}"));
                break;
            }
        }
    }
    if let Some(server) = server {
        server.stop();
    }
    outcome
}

/// One run's coordinates.
struct Point<'a> {
    workload: &'a Workload,
    class: &'a str,
    target: &'a Target,
    requests: &'a [Request],
    server_pid: Option<u32>,
    /// The server's blocking pool bound, when the app ran on it.
    blocking_pool: Option<u32>,
    connections: u32,
    rate: Option<f64>,
}

/// One warm-up and measured window. Ok(None): Ctrl-C came before anything
/// was measured.
fn measure(
    config: &Config,
    point: &Point<'_>,
    stop: &AtomicBool,
) -> Result<Option<Run>, LoadError> {
    let plan = Plan {
        target: point.target.clone(),
        requests: point.requests.to_vec(),
        mode: match point.rate {
            Some(rate) => Mode::Open { rate },
            None => Mode::Closed,
        },
        connections: point.connections,
        keep_alive: config.keep_alive,
        threads: config.client_threads,
        cpus: config.client_cpus.clone(),
        warmup: config.warmup,
        duration: config.duration,
        timeout: config.timeout,
    };
    let sample = || -> Option<(Instant, Duration)> {
        let cpu = procfs::tree_cpu(point.server_pid?)?;
        Some((Instant::now(), cpu))
    };
    let mut first: Option<(Instant, Duration)> = if config.warmup.is_zero() {
        sample()
    } else {
        None
    };
    let bar = progress_bar(config, point);
    let measured = runicorn_loadgen::run(&plan, stop, &mut |progress: &Progress| {
        if progress.phase == Phase::Measure && first.is_none() {
            first = sample();
        }
        show(&bar, config, progress);
    })?;
    let last = sample();
    let server_cpu = match (first, last) {
        (Some((t0, cpu0)), Some((t1, cpu1))) => {
            let interval = t1.saturating_duration_since(t0).as_secs_f64();
            let used = cpu1.saturating_sub(cpu0).as_secs_f64();
            if interval > 0.0 {
                used * (measured.elapsed.as_secs_f64() / interval).min(2.0)
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    let (worker_rss_kib, master_rss_kib) = memory(point.server_pid);
    if measured.stopped && measured.elapsed.is_zero() {
        bar.abandon_with_message("interrupted");
        return Ok(None);
    }
    let run = to_run(
        config,
        point,
        &measured,
        server_cpu,
        worker_rss_kib,
        master_rss_kib,
    );
    bar.finish_with_message(format!(
        "{:.0} req/s, p99 {:.1} ms, {} errors{}",
        run.rps,
        run.latency.p99 as f64 / 1000.0,
        run.errors.values().sum::<u64>(),
        if run.interrupted { ", interrupted" } else { "" }
    ));
    Ok(Some(run))
}

/// The resident memory of the workers and of the master (or of a single
/// process server, counted as its one worker).
fn memory(pid: Option<u32>) -> (Vec<u64>, u64) {
    let Some(pid) = pid else {
        return (Vec::new(), 0);
    };
    let workers = procfs::children(pid);
    if workers.is_empty() {
        return (vec![procfs::rss_kib(pid)], 0);
    }
    (
        workers
            .iter()
            .map(|worker| procfs::rss_kib(*worker))
            .collect(),
        procfs::rss_kib(pid),
    )
}

fn to_run(
    config: &Config,
    point: &Point<'_>,
    measured: &Measurement,
    server_cpu_s: f64,
    worker_rss_kib: Vec<u64>,
    master_rss_kib: u64,
) -> Run {
    let seconds = measured.elapsed.as_secs_f64();
    let histogram = &measured.latency;
    let latency = if histogram.is_empty() {
        Latency {
            mean: 0.0,
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
        }
    } else {
        Latency {
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    };
    let app = match &config.endpoint {
        Endpoint::Url { url, .. } => url.clone(),
        Endpoint::Spawn { .. } => point.workload.app.clone(),
    };
    Run {
        workload: point.workload.name.clone(),
        app,
        request: point.workload.label(),
        class: point.class.to_owned(),
        connections: match point.rate {
            Some(_) => measured.max_open,
            None => point.connections,
        },
        rate: point.rate,
        requests: measured.requests,
        duration_s: seconds,
        rps: if seconds > 0.0 {
            measured.requests as f64 / seconds
        } else {
            0.0
        },
        latency,
        statuses: measured
            .statuses
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect(),
        errors: measured
            .errors
            .iter()
            .map(|(kind, count)| (kind.to_string(), *count))
            .collect(),
        server_cpu_s,
        cpu_per_request_us: if measured.requests > 0 {
            server_cpu_s * 1e6 / measured.requests as f64
        } else {
            0.0
        },
        client_cpu_s: measured.client_cpu.as_secs_f64(),
        worker_rss_kib,
        master_rss_kib,
        blocking_pool: point.blocking_pool,
        little_limit_rps: None,
        interrupted: measured.stopped,
    }
}

/// Little's law for the IO-bound workloads: min(connections, capacity) /
/// service time. The service time is the p50 of the lowest-concurrency run
/// of this workload and class, less the queueing in it: when that run had
/// more connections than the class serves at once, each request also
/// waited for connections / capacity turns, so its p50 is divided by that
/// (sync at 4 connections and 20 ms requests measures a p50 of 80 ms, and
/// its limit is 1 / 20 ms, not 1 / 80 ms).
fn fill_little_limits(settings: &BenchSettings, workload: &Workload, runs: &mut [Run]) {
    let Some(lowest) = runs.iter().filter(|run| run.requests > 0).min_by(|a, b| {
        (a.connections, a.rate.unwrap_or(0.0))
            .partial_cmp(&(b.connections, b.rate.unwrap_or(0.0)))
            .unwrap_or(std::cmp::Ordering::Equal)
    }) else {
        return;
    };
    let Some(capacity) = runs.first().and_then(|run| settings.run_capacity(run)) else {
        return;
    };
    let service_us = service_time_us(lowest.latency.p50, lowest.connections, capacity);
    if service_us <= 0.0 {
        return;
    }
    let io_bound = match workload.shape {
        Shape::IoBound => true,
        Shape::NotIoBound => false,
        // CPU measured (a server the bench started, or --server-pid: its
        // memory was read too) and under half the wall time. The CPU is
        // read in clock ticks, so a short window of a waiting app can
        // read 0; its CPU per request is at most one tick more than read.
        Shape::Measured => {
            let watched = !lowest.worker_rss_kib.is_empty();
            let at_most_us =
                (lowest.server_cpu_s + procfs::tick().as_secs_f64()) * 1e6 / lowest.requests as f64;
            watched && at_most_us < service_us / 2.0
        }
    };
    if !io_bound {
        return;
    }
    for run in runs.iter_mut() {
        let concurrent = run.connections.min(capacity) as f64;
        run.little_limit_rps = Some(concurrent * 1e6 / service_us);
    }
}

/// A request's own wall time from the p50 of a closed-loop run at
/// `connections` against a class that serves `capacity` at once.
fn service_time_us(p50_us: u64, connections: u32, capacity: u32) -> f64 {
    let connections = connections.max(1);
    let served_at_once = connections.min(capacity.max(1));
    p50_us as f64 * f64::from(served_at_once) / f64::from(connections)
}

fn progress_bar(config: &Config, point: &Point<'_>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = config.warmup + config.duration;
    let bar = ProgressBar::new(total.as_millis() as u64);
    if let Ok(style) = ProgressStyle::with_template("{prefix:<28} [{bar:24}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let load = match point.rate {
        Some(rate) => format!("rate {rate}/s"),
        None => format!("c={}", point.connections),
    };
    bar.set_prefix(format!("{} {} {load}", point.workload.name, point.class));
    bar.set_message("starting");
    bar
}

fn show(bar: &ProgressBar, config: &Config, progress: &Progress) {
    let done = match progress.phase {
        Phase::Warmup => progress.elapsed,
        Phase::Measure => config.warmup + progress.elapsed,
    };
    bar.set_position(done.as_millis() as u64);
    let seconds = progress.elapsed.as_secs_f64();
    let rps = if seconds > 0.0 {
        progress.requests as f64 / seconds
    } else {
        0.0
    };
    let phase = match progress.phase {
        Phase::Warmup => "warm-up",
        Phase::Measure => "measuring",
    };
    bar.set_message(format!(
        "{phase}: {rps:.0} req/s, {} errors",
        progress.errors
    ));
}

/// `runicorn --version` of the server binary (this one's with --url).
fn version(config: &Config) -> String {
    let own = format!("runicorn {}", env!("CARGO_PKG_VERSION"));
    let Endpoint::Spawn { binary, .. } = &config.endpoint else {
        return own;
    };
    std::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or(own)
}

/// Now, RFC 3339 in UTC, to the second.
fn started() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn settings(config: &Config) -> BenchSettings {
    let (transport, server_cpus, server_args) = match &config.endpoint {
        Endpoint::Spawn {
            unix,
            server_cpus,
            server_args,
            ..
        } => (
            if *unix { "unix" } else { "tcp" },
            server_cpus.clone(),
            server_args.clone(),
        ),
        Endpoint::Url { target, .. } => (
            match target {
                UrlTarget::Tcp(_) => "tcp",
                UrlTarget::Unix(_) => "unix",
            },
            Vec::new(),
            Vec::new(),
        ),
    };
    BenchSettings {
        workers: config.workers,
        threads: config.threads,
        worker_connections: config.worker_connections,
        mode: match config.load {
            Load::Closed(_) => "closed".to_owned(),
            Load::Open { .. } => "open".to_owned(),
        },
        keep_alive: config.keep_alive,
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        transport: transport.to_owned(),
        server_cpus,
        client_cpus: config.client_cpus.clone(),
        client_threads: config.client_threads,
        server_args,
    }
}

#[cfg(test)]
mod tests {
    use super::{fill_little_limits, service_time_us};
    use crate::fixture;
    use crate::workload::{RequestSpec, Shape, Workload};

    #[test]
    fn the_limit_of_an_app_on_the_blocking_pool_is_the_pool_s() {
        // A 20 ms WSGI view under green, 2 workers, 1000 worker connections,
        // --blocking-threads 2: 4 at once, so 200 req/s, not 100,000.
        let workload = Workload {
            name: "app".to_owned(),
            app: "flaskapp:app".to_owned(),
            request: RequestSpec::One {
                method: "GET".to_owned(),
                path: "/sleep?ms=20".to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            },
            shape: Shape::IoBound,
        };
        let settings = fixture::report(Vec::new()).settings;
        let runs = |pool: Option<u32>| {
            let mut runs = vec![
                fixture::run("app", "green", 1, 49.0, 20_000, 21_000, 300.0),
                fixture::run("app", "green", 16, 196.0, 80_000, 81_000, 300.0),
            ];
            for run in &mut runs {
                run.blocking_pool = pool;
            }
            fill_little_limits(&settings, &workload, &mut runs);
            runs.iter()
                .map(|run| run.little_limit_rps.unwrap().round())
                .collect::<Vec<_>>()
        };
        assert_eq!(runs(Some(2)), [50.0, 200.0]);
        // Without the pool every connection would be served at once.
        assert_eq!(runs(None), [50.0, 800.0]);
    }

    #[test]
    fn a_waiting_app_whose_cpu_read_zero_ticks_still_gets_its_limit() {
        // The user's own app (its shape measured), 20 ms waits: a short
        // window read 0 ticks of server CPU. That is under one tick for all
        // its requests, far under half the wall time: IO-bound.
        let workload = Workload {
            name: "app".to_owned(),
            app: "libsleep.so:app".to_owned(),
            request: RequestSpec::One {
                method: "GET".to_owned(),
                path: "/?ms=20".to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            },
            shape: Shape::Measured,
        };
        let settings = fixture::report(Vec::new()).settings;
        let limits = |cpu_us: f64, watched: bool| {
            let mut runs = vec![fixture::run(
                "app", "async", 4, 190.0, 20_000, 21_000, cpu_us,
            )];
            if !watched {
                runs[0].worker_rss_kib.clear();
            }
            fill_little_limits(&settings, &workload, &mut runs);
            runs[0].little_limit_rps.map(f64::round)
        };
        assert_eq!(limits(0.0, true), Some(200.0));
        assert_eq!(limits(300.0, true), Some(200.0));
        // CPU near the wall time: not IO-bound, no limit.
        assert_eq!(limits(15_000.0, true), None);
        // A server nobody measured (--url without --server-pid).
        assert_eq!(limits(0.0, false), None);
    }

    #[test]
    fn service_time_takes_the_queue_out_of_the_p50() {
        // Room for every connection: the p50 is the service time.
        assert_eq!(service_time_us(20_000, 1, 1), 20_000.0);
        assert_eq!(service_time_us(20_000, 16, 1000), 20_000.0);
        // sync (1 at a time) at 4 connections: each waited 4 turns.
        assert_eq!(service_time_us(80_000, 4, 1), 20_000.0);
        // gthread 8 threads at 64 connections: 8 turns.
        assert_eq!(service_time_us(160_000, 64, 8), 20_000.0);
    }
}
