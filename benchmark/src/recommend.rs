//! The recommendation: per workload, a worker class, workers, threads and
//! worker connections, reasoned the way the seed's incident was ("add
//! workers" made it worse; four gthread workers with eight threads each
//! fixed it). From the workload's shape first:
//!
//! - c, the server CPU per request (the median over the workload's runs);
//! - W, the wall time per request unloaded (the lowest p50 at the lowest
//!   concurrency, over the classes);
//! - r = c / W. Near 1 the work is CPU-bound: the ceiling is cores / c
//!   whatever the model, so one worker per core and no threads (more only
//!   add contention and memory), of the class that spent the least CPU per
//!   request (the simplest on a tie: with one worker per core that is the
//!   one that serves the most, whatever one worker's threads measured). Small r means requests mostly wait: by
//!   Little's law a core stays busy with W / c requests in flight, so
//!   threads (gthread) for tens of waits, green or async workers for
//!   hundreds.
//!
//! Then against what was measured: the class with the best req/s at the
//! highest concurrency among those without errors and with an acceptable
//! p99, and where that run's bottleneck was (the Little's-law limit of its
//! concurrency, the load's connections or the server's capacity; or the
//! CPUs), and the memory its workers take.

use crate::report::{Recommendation, Report, Run};
use crate::table::{errors_total, micros, rps};

/// A p99 within this factor of the best class's at the same level is
/// acceptable; above, the class is queueing requests the others serve.
const P99_ACCEPTABLE: f64 = 5.0;
/// r = c / W at or above which a workload is CPU-bound.
const CPU_BOUND: f64 = 0.5;
/// The most threads per gthread worker recommended: past it each thread's
/// stack and the switching cost more than an event loop (green, async).
const MAX_THREADS: u32 = 32;
/// A run at this fraction of its Little's-law limit is concurrency-bound.
const AT_LIMIT: f64 = 0.9;
/// A server using this fraction of its cores is CPU-bound.
const CPU_SATURATED: f64 = 0.85;

/// One recommendation per workload that has runs to reason from.
pub fn recommend(report: &Report) -> Vec<Recommendation> {
    crate::table::workloads(report)
        .iter()
        .filter_map(|workload| analyse(report, workload).ok())
        .collect()
}

/// `workload`'s recommendation, or why there is none (what is missing).
pub fn for_workload(report: &Report, workload: &str) -> Result<Recommendation, String> {
    analyse(report, workload)
}

/// The level a run was measured at: its rate (open loop) or connections.
fn level(run: &Run) -> f64 {
    run.rate.unwrap_or(f64::from(run.connections))
}

fn level_name(run: &Run) -> String {
    match run.rate {
        Some(rate) => format!("{} req/s offered", rps(rate)),
        None if run.connections == 1 => "1 connection".to_string(),
        None => format!("{} connections", run.connections),
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

/// The workload's shape: what the model must do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// r near 1.
    Cpu,
    /// W / c requests in flight per core: threads.
    Io { in_flight: f64 },
    /// Hundreds in flight per core: an event loop.
    ManyWaits { in_flight: f64 },
    /// No server CPU measured (`--url` without `--server-pid`).
    Unknown,
}

fn analyse(report: &Report, workload: &str) -> Result<Recommendation, String> {
    let runs: Vec<&Run> = report
        .runs
        .iter()
        .filter(|run| run.workload == workload)
        .collect();
    let failures: Vec<String> = report
        .failures
        .iter()
        .filter(|failure| failure.workload == workload)
        .map(|failure| format!("{}: {}", failure.class, failure.reason))
        .collect();
    if runs.is_empty() {
        return Err(if failures.is_empty() {
            "no run was measured".to_string()
        } else {
            format!("no class could serve it ({})", failures.join("; "))
        });
    }
    let served: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|run| run.requests > 0)
        .collect();
    if served.is_empty() {
        let errors: u64 = runs.iter().map(|run| errors_total(run)).sum();
        return Err(format!(
            "no run completed a request ({errors} errors): check the app and the request with `curl`"
        ));
    }
    let cores = if report.settings.server_cpus.is_empty() {
        report.machine.cpus.max(1)
    } else {
        report.settings.server_cpus.len() as u32
    };
    let cpu_us = median(
        served
            .iter()
            .map(|run| run.cpu_per_request_us)
            .filter(|cpu| *cpu > 0.0)
            .collect(),
    );
    let lowest = served
        .iter()
        .map(|run| level(run))
        .fold(f64::INFINITY, f64::min);
    let unloaded = served
        .iter()
        .filter(|run| level(run) == lowest)
        .min_by_key(|run| run.latency.p50)
        .copied()
        .unwrap_or(served[0]);
    let wall_us = unloaded.latency.p50 as f64;
    let shape = match cpu_us {
        Some(cpu) if wall_us > 0.0 => {
            let ratio = cpu / wall_us;
            let in_flight = wall_us / cpu;
            if ratio >= CPU_BOUND {
                Shape::Cpu
            } else if in_flight <= f64::from(MAX_THREADS) {
                Shape::Io { in_flight }
            } else {
                Shape::ManyWaits { in_flight }
            }
        }
        _ => Shape::Unknown,
    };
    let best = measured_best(&served);
    let classes: Vec<&str> = {
        let mut classes = Vec::new();
        for run in &runs {
            if !classes.contains(&run.class.as_str()) {
                classes.push(run.class.as_str());
            }
        }
        classes
    };
    let failed = |class: &str| {
        report
            .failures
            .iter()
            .any(|f| f.workload == workload && f.class == class)
    };

    // The choice from the shape.
    let mut text = Vec::new();
    let (class, workers, threads, worker_connections) = match shape {
        Shape::Cpu => {
            // With one worker per core every class saturates the cores, so
            // the one that spends the least CPU per request serves the most.
            let (class, class_cpu_us) = leanest(&served, best.run);
            text.push(format!(
                "CPU-bound: on {cores} core{} the ceiling is about cores / c = {} req/s whatever the model, \
                 so one worker per core with one thread; more workers than cores, or threads, only add \
                 contention and memory. {class} spent the least CPU per request ({}), so it reaches the \
                 most at one worker per core (about {} req/s).",
                plural(cores),
                rps(f64::from(cores) * 1e6 / cpu_us.unwrap_or(1.0)),
                micros(class_cpu_us),
                rps(f64::from(cores) * 1e6 / class_cpu_us.max(1.0)),
            ));
            (class, cores, 1, 0)
        }
        Shape::Io { in_flight } if !failed("gthread") => {
            let threads = (in_flight.ceil() as u32).clamp(2, MAX_THREADS);
            text.push(format!(
                "IO-bound: a request waits about W / c = {in_flight:.1} times as long as it computes, so by \
                 Little's law a core stays busy with about {threads} requests in flight: gthread with \
                 {threads} threads per worker, one worker per core ({cores}); each thread costs a stack \
                 (mostly virtual, a little resident memory) and past {MAX_THREADS} an event loop does better."
            ));
            ("gthread".to_string(), cores, threads, 0)
        }
        Shape::ManyWaits { in_flight } | Shape::Io { in_flight } => {
            // On a tie (neither measured) async, the last of the maxima.
            let class = ["green", "async"]
                .into_iter()
                .filter(|class| !failed(class))
                .max_by(|a, b| top_rps(&served, a).total_cmp(&top_rps(&served, b)))
                .unwrap_or("async");
            let connections = ((2.0 * in_flight / 100.0).ceil() as u32).max(1) * 100;
            let setting = if on_pool(&runs, class) {
                format!(
                    "--blocking-threads {connections} (its requests ran on the class's blocking pool, \
                     which bounds them before --worker-connections does)"
                )
            } else {
                format!("--worker-connections {connections}")
            };
            text.push(format!(
                "IO-bound with many waits: a request waits about W / c = {in_flight:.0} times as long as it \
                 computes, so a core needs hundreds of requests in flight; threads that many cost memory and \
                 switches, an event loop does not: {class} with {setting} (twice the need, for bursts), one \
                 worker per core ({cores})."
            ));
            (class.to_string(), cores, 1, connections)
        }
        Shape::Unknown => {
            text.push(
                "The server's CPU was not measured (a --url run without --server-pid), so the shape is \
                 unknown: this follows the measurement alone, with the workers and threads it ran."
                    .to_string(),
            );
            let class = best.run.class.clone();
            let threads = if class == "gthread" {
                report.settings.threads
            } else {
                1
            };
            let connections = if class == "green" || class == "async" {
                report.settings.worker_connections
            } else {
                0
            };
            (class, report.settings.workers, threads, connections)
        }
    };
    let worker_connections = if worker_connections == 0 && (class == "green" || class == "async") {
        report.settings.worker_connections
    } else {
        worker_connections
    };
    // The pool must hold as many as the worker connections it recommends.
    let blocking_threads =
        if matches!(shape, Shape::ManyWaits { .. } | Shape::Io { .. }) && on_pool(&runs, &class) {
            worker_connections
        } else {
            0
        };

    let mut why = match cpu_us {
        Some(cpu) => format!(
            "CPU per request c = {}, unloaded wall time W = {} (the lowest p50 at {}), r = c/W = {}.",
            micros(cpu),
            micros(wall_us),
            level_name(unloaded),
            two_figures(cpu / wall_us.max(1.0)),
        ),
        None => format!(
            "Unloaded wall time W = {} (the lowest p50 at {}).",
            micros(wall_us),
            level_name(unloaded)
        ),
    };
    for sentence in text {
        why.push(' ');
        why.push_str(&sentence);
    }
    why.push(' ');
    why.push_str(&measured(report, &best, cores, &class, shape == Shape::Cpu));
    why.push_str(&caveats(report, &runs, &served, &classes, lowest));

    let app = if unloaded.app.contains("://") {
        "APP"
    } else {
        unloaded.app.as_str()
    };
    let mut command = format!("runicorn -k {class} -w {workers}");
    if class == "gthread" {
        command.push_str(&format!(" --threads {threads}"));
    }
    if worker_connections > 0 {
        command.push_str(&format!(" --worker-connections {worker_connections}"));
    }
    if blocking_threads > 0 {
        command.push_str(&format!(" --blocking-threads {blocking_threads}"));
    }
    command.push(' ');
    command.push_str(app);
    Ok(Recommendation {
        workload: workload.to_string(),
        class,
        workers,
        threads,
        worker_connections,
        blocking_threads,
        command,
        why,
    })
}

/// Whether `class`'s runs of the workload had the app's requests on their
/// blocking pool (the server said so at boot).
fn on_pool(runs: &[&Run], class: &str) -> bool {
    runs.iter()
        .any(|run| run.class == class && run.blocking_pool.is_some())
}

/// The measured best run and how it was chosen.
struct Best<'a> {
    run: &'a Run,
    /// Every run at its level had errors.
    with_errors: bool,
}

/// The best req/s at the highest level where some class had no errors and
/// an acceptable p99 (without such a level: at the highest level).
fn measured_best<'a>(served: &[&'a Run]) -> Best<'a> {
    let mut levels: Vec<f64> = served.iter().map(|run| level(run)).collect();
    levels.sort_by(|a, b| b.total_cmp(a));
    levels.dedup();
    for at in &levels {
        let clean: Vec<&Run> = served
            .iter()
            .copied()
            .filter(|run| level(run) == *at && errors_total(run) == 0)
            .collect();
        let Some(lowest_p99) = clean.iter().map(|run| run.latency.p99).min() else {
            continue;
        };
        let acceptable =
            |run: &&&Run| run.latency.p99 as f64 <= lowest_p99.max(1) as f64 * P99_ACCEPTABLE;
        if let Some(run) = clean
            .iter()
            .filter(acceptable)
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
        {
            return Best {
                run,
                with_errors: false,
            };
        }
    }
    let top = levels[0];
    let run = served
        .iter()
        .copied()
        .filter(|run| level(run) == top)
        .max_by(|a, b| a.rps.total_cmp(&b.rps))
        .unwrap_or(served[0]);
    Best {
        run,
        with_errors: true,
    }
}

/// Classes in the order a tie goes: the simplest model first.
const SIMPLEST_FIRST: [&str; 4] = ["sync", "gthread", "green", "async"];
/// CPU per request within this fraction of the lowest is a tie.
const CPU_TIE: f64 = 0.05;

/// The class with the least CPU per request among those without errors
/// at the best run's level (ties to the simplest model), and that figure.
fn leanest(served: &[&Run], best: &Run) -> (String, f64) {
    let candidates: Vec<&Run> = served
        .iter()
        .copied()
        .filter(|run| {
            level(run) == level(best) && errors_total(run) == 0 && run.cpu_per_request_us > 0.0
        })
        .collect();
    let Some(lowest) = candidates
        .iter()
        .map(|run| run.cpu_per_request_us)
        .min_by(f64::total_cmp)
    else {
        return (best.class.clone(), best.cpu_per_request_us);
    };
    let rank = |class: &str| {
        SIMPLEST_FIRST
            .iter()
            .position(|simple| *simple == class)
            .unwrap_or(SIMPLEST_FIRST.len())
    };
    candidates
        .iter()
        .filter(|run| run.cpu_per_request_us <= lowest * (1.0 + CPU_TIE))
        .min_by_key(|run| rank(&run.class))
        .map_or((best.class.clone(), best.cpu_per_request_us), |run| {
            (run.class.clone(), run.cpu_per_request_us)
        })
}

/// The req/s `class` measured at its highest level (0 when not measured).
fn top_rps(served: &[&Run], class: &str) -> f64 {
    served
        .iter()
        .filter(|run| run.class == class)
        .max_by(|a, b| level(a).total_cmp(&level(b)))
        .map_or(0.0, |run| run.rps)
}

/// What the measurement says: the best run, its bottleneck, the memory.
fn measured(report: &Report, best: &Best<'_>, cores: u32, class: &str, cpu_bound: bool) -> String {
    let run = best.run;
    let mut text = format!(
        "Measured: {} did best at {}, {} req/s with p99 {}{}.",
        run.class,
        level_name(run),
        rps(run.rps),
        micros(run.latency.p99 as f64),
        if best.with_errors {
            format!(
                " (but with {} errors: every class had errors there)",
                errors_total(run)
            )
        } else {
            String::new()
        }
    );
    if run.class != class {
        text.push_str(&format!(" {class} is what the shape calls for"));
        let mine = report.runs.iter().find(|other| {
            other.workload == run.workload && other.class == class && level(other) == level(run)
        });
        match mine {
            Some(mine) if errors_total(mine) > 0 => {
                let kinds: Vec<String> = mine
                    .errors
                    .iter()
                    .map(|(kind, count)| format!("{kind} {count}"))
                    .collect();
                text.push_str(&format!(
                    ", but it had errors there ({}): find their cause before relying on it.",
                    kinds.join(", ")
                ));
            }
            Some(mine) if cpu_bound && report.settings.workers < cores => text.push_str(&format!(
                "; there it served {} req/s with {} worker{}, one request per worker at a time, while {}'s \
                 threads used more than one core per worker: with one worker per core it catches up.",
                rps(mine.rps),
                report.settings.workers,
                plural(report.settings.workers),
                run.class
            )),
            Some(mine) => text.push_str(&format!(
                "; there it served {} req/s with p99 {}: compare them at higher concurrency.",
                rps(mine.rps),
                micros(mine.latency.p99 as f64)
            )),
            None if report
                .runs
                .iter()
                .any(|other| other.workload == run.workload && other.class == class) =>
            {
                text.push_str(", not measured at that level.");
            }
            None => text.push_str(", and it was not measured here: try it."),
        }
    }
    let cpus_used = if run.duration_s > 0.0 {
        run.server_cpu_s / run.duration_s
    } else {
        0.0
    };
    match run.little_limit_rps {
        Some(limit) if limit > 0.0 && run.rps >= AT_LIMIT * limit => {
            text.push_str(&format!(
                " It ran at {:.0}% of the Little's-law limit of its concurrency ({} req/s): ",
                run.rps / limit * 100.0,
                rps(limit)
            ));
            match report.settings.run_capacity(run) {
                Some(capacity) if run.rate.is_none() && run.connections < capacity => {
                    text.push_str(&format!(
                        "the load's {} connections were the limit, not the server (it holds {capacity} \
                         requests at once): measure at higher --connections to find its ceiling.",
                        run.connections
                    ));
                }
                _ => match run.blocking_pool {
                    Some(pool) if pool < report.settings.worker_connections => {
                        text.push_str(&format!(
                            "the bottleneck is the server's concurrency, here the blocking pool the \
                             app's requests ran on ({pool} at once per worker), so raise --blocking-threads, \
                             not workers or worker connections."
                        ));
                    }
                    _ => text.push_str(
                        "the bottleneck is the server's concurrency, so add threads or worker \
                         connections, not workers.",
                    ),
                },
            }
        }
        _ if cpus_used >= CPU_SATURATED * f64::from(cores) => text.push_str(&format!(
            " The server used {cpus_used:.2} of {cores} CPUs: the bottleneck is CPU, and more workers or \
             threads will not help."
        )),
        _ if run.server_cpu_s > 0.0 && cpu_bound && report.settings.workers < cores => {
            text.push_str(&format!(
                " The server used {cpus_used:.2} of {cores} CPUs with {} worker{}: workers up to the cores \
                 will raise it.",
                report.settings.workers,
                plural(report.settings.workers)
            ));
        }
        _ if run.server_cpu_s > 0.0 => text.push_str(&format!(
            " The server used {cpus_used:.2} of {cores} CPUs and was below its concurrency limit: the \
             limit was elsewhere (the load generator used {:.2} CPUs, or a downstream wait).",
            if run.duration_s > 0.0 {
                run.client_cpu_s / run.duration_s
            } else {
                0.0
            }
        )),
        _ => {}
    }
    if !run.worker_rss_kib.is_empty() {
        let per_worker = run.worker_rss_kib.iter().sum::<u64>() as f64
            / run.worker_rss_kib.len() as f64
            / 1024.0;
        text.push_str(&format!(
            " Memory: {per_worker:.1} MiB per worker, about {:.0} MiB for {cores}.",
            per_worker * f64::from(cores)
        ));
    }
    text
}

/// What the reasoning lacks: one class, one level, errors, an interruption.
fn caveats(
    report: &Report,
    runs: &[&Run],
    served: &[&Run],
    classes: &[&str],
    lowest: f64,
) -> String {
    let mut text = String::new();
    if classes.len() == 1 {
        text.push_str(&format!(
            " Only {} was measured, so nothing was compared: the choice rests on the shape.",
            classes[0]
        ));
    }
    let highest = served.iter().map(|run| level(run)).fold(0.0, f64::max);
    if highest == lowest {
        text.push_str(
            " Only one concurrency level was measured: W was measured under that load (an upper bound), \
             and no curve shows where a class saturates.",
        );
    } else if lowest > 1.0 && served.iter().all(|run| run.rate.is_none()) {
        text.push_str(" W was measured under load (no run at 1 connection): it is an upper bound.");
    }
    let unserved = runs.len() - served.len();
    if unserved > 0 {
        text.push_str(&format!(
            " {unserved} run{} completed no request.",
            plural(unserved as u32)
        ));
    }
    if report.interrupted {
        text.push_str(" The benchmark was interrupted: the figures are partial.");
    }
    text
}

/// A ratio to two significant figures (`0.99`, `0.10`, `0.0041`).
fn two_figures(value: f64) -> String {
    if value <= 0.0 || !value.is_finite() || value >= 0.1 {
        return format!("{value:.2}");
    }
    let decimals = (-value.log10()).floor() as usize + 2;
    format!("{value:.decimals$}")
}

fn plural(count: u32) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn only(report: &Report) -> Recommendation {
        let mut all = recommend(report);
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }

    #[test]
    fn io_bound_gets_gthread_with_threads_from_littles_law() {
        // 20 ms wait, 2 ms CPU: c = median(2.0, 2.1 ms) = 2.05 ms, W = 20.3 ms
        // (sync's p50 at 1 connection), W / c = 9.9: 10 threads.
        let recommendation = only(&fixture::io_bound(20, 2_000.0));
        assert_eq!(recommendation.class, "gthread");
        assert_eq!((recommendation.workers, recommendation.threads), (4, 10));
        assert_eq!(recommendation.worker_connections, 0);
        assert_eq!(
            recommendation.command,
            "runicorn -k gthread -w 4 --threads 10 builtin:io"
        );
        let why = &recommendation.why;
        for figure in [
            "c = 2.05ms",
            "W = 20.3ms (the lowest p50 at 1 connection)",
            "r = c/W = 0.10",
            "W / c = 9.9",
            "about 10 requests in flight",
            "gthread did best at 64 connections, 776 req/s with p99 85.2ms",
            "97% of the Little's-law limit of its concurrency (800 req/s)",
            "the bottleneck is the server's concurrency, so add threads or worker connections, not workers",
            "11.0 MiB per worker, about 44 MiB for 4",
        ] {
            assert!(why.contains(figure), "{figure:?} not in {why}");
        }
        assert!(!why.contains('\n'));
    }

    #[test]
    fn hundreds_of_waits_get_an_event_loop() {
        // 50 ms wait, 0.2 ms CPU: W / c = 50.3 / 0.205 = 245.
        let recommendation = only(&fixture::io_bound(50, 200.0));
        assert_eq!(recommendation.class, "async");
        assert_eq!(recommendation.worker_connections, 500);
        assert_eq!(
            recommendation.command,
            "runicorn -k async -w 4 --worker-connections 500 builtin:io"
        );
        assert!(
            recommendation.why.contains("W / c = 245"),
            "{}",
            recommendation.why
        );
        assert!(recommendation
            .why
            .contains("async is what the shape calls for, and it was not measured here: try it."));
    }

    #[test]
    fn cpu_bound_gets_one_worker_per_core_of_the_best_class() {
        // c = median(2.0, 2.15 ms) = 2.075 ms, W = 2.1 ms: r = 0.99.
        let recommendation = only(&fixture::cpu_bound());
        assert_eq!(recommendation.class, "sync");
        assert_eq!((recommendation.workers, recommendation.threads), (4, 1));
        assert_eq!(recommendation.command, "runicorn -k sync -w 4 builtin:cpu");
        let why = &recommendation.why;
        for figure in [
            "c = 2.08ms",
            "W = 2.10ms",
            "r = c/W = 0.99",
            "CPU-bound: on 4 cores the ceiling is about cores / c = 1928 req/s",
            "more workers than cores, or threads, only add contention and memory",
            "sync did best at 64 connections, 960 req/s with p99 166ms",
            "used 1.92 of 4 CPUs with 2 workers: workers up to the cores will raise it",
        ] {
            assert!(why.contains(figure), "{figure:?} not in {why}");
        }
    }

    /// What `runicorn bench --workload io,cpu -k sync,gthread,async -c 1,16`
    /// measured on a 2-CPU machine with 1 worker (20:58, debug build).
    fn measured_here(workload: &str) -> Report {
        let runs = if workload == "cpu" {
            vec![
                fixture::run("cpu", "sync", 1, 318.0, 3_020, 4_380, 2_910.0),
                fixture::run("cpu", "sync", 16, 326.0, 49_000, 56_600, 2_920.0),
                fixture::run("cpu", "gthread", 1, 302.0, 3_000, 7_790, 2_950.0),
                fixture::run("cpu", "gthread", 16, 621.0, 25_300, 53_300, 2_950.0),
                fixture::run("cpu", "async", 1, 316.0, 3_130, 3_710, 3_050.0),
                fixture::run("cpu", "async", 16, 629.0, 23_700, 66_400, 2_950.0),
            ]
        } else {
            let mut runs = vec![
                fixture::run("io", "sync", 16, 19.5, 808_000, 809_000, 256.0),
                fixture::run("io", "gthread", 16, 160.0, 101_000, 102_000, 125.0),
                fixture::run("io", "async", 1, 19.5, 51_600, 53_000, 255.0),
                fixture::run("io", "async", 16, 304.0, 51_700, 65_100, 114.0),
            ];
            for (run, limit) in runs.iter_mut().zip([19.8, 159.0, 19.4, 310.0]) {
                run.little_limit_rps = Some(limit);
            }
            runs
        };
        let mut report = fixture::report(runs);
        report.machine.cpus = 2;
        report.settings.workers = 1;
        report
    }

    #[test]
    fn cpu_bound_prefers_the_least_cpu_per_request_over_one_workers_rps() {
        // async and gthread served twice sync's req/s with one worker: their
        // threads used both cores. With a worker per core each class is
        // capped by its CPU per request, and sync's is the lowest.
        let recommendation = only(&measured_here("cpu"));
        assert_eq!(recommendation.class, "sync");
        assert_eq!(recommendation.command, "runicorn -k sync -w 2 builtin:cpu");
        let why = &recommendation.why;
        for said in [
            "r = c/W = 0.98",
            "sync spent the least CPU per request (2.92ms), so it reaches the most at one worker per core (about 685 req/s)",
            "Measured: async did best at 16 connections, 629 req/s",
            "sync is what the shape calls for; there it served 326 req/s with 1 worker",
            "with one worker per core it catches up",
        ] {
            assert!(why.contains(said), "{said:?} not in {why}");
        }
        // Within 5% of each other is a tie, to the simplest model; past it
        // the leaner class.
        let mut report = measured_here("cpu");
        report.runs[3].cpu_per_request_us = 2_800.0; // gthread at 16
        assert_eq!(only(&report).class, "sync");
        report.runs[3].cpu_per_request_us = 2_700.0;
        assert_eq!(only(&report).class, "gthread");
    }

    #[test]
    fn the_loads_connections_as_the_limit_are_not_the_servers() {
        let recommendation = only(&measured_here("io"));
        assert_eq!(recommendation.class, "async");
        let why = &recommendation.why;
        assert!(
            why.contains("It ran at 98% of the Little's-law limit of its concurrency (310 req/s): the load's 16 connections were the limit, not the server (it holds 1000 requests at once)"),
            "{why}"
        );
        assert!(!why.contains("add threads"), "{why}");
    }

    #[test]
    fn ratios_keep_two_figures() {
        assert_eq!(two_figures(0.988), "0.99");
        assert_eq!(two_figures(0.1), "0.10");
        assert_eq!(two_figures(0.099), "0.099");
        assert_eq!(two_figures(0.00404), "0.0040");
        assert_eq!(two_figures(1.3), "1.30");
    }

    #[test]
    fn cpu_saturated_says_workers_will_not_help() {
        let mut report = fixture::cpu_bound();
        report.settings.server_cpus = vec![0, 1];
        let recommendation = only(&report);
        assert_eq!(recommendation.workers, 2);
        assert!(
            recommendation.why.contains("used 1.92 of 2 CPUs: the bottleneck is CPU, and more workers or threads will not help"),
            "{}",
            recommendation.why
        );
    }

    #[test]
    fn errors_and_bad_p99_are_not_best() {
        let mut report = fixture::cpu_bound();
        // sync at 64 connections had errors; gthread is best there.
        report.runs[4] = fixture::with_errors(report.runs[4].clone(), "timeout", 5);
        assert!(only(&report)
            .why
            .contains("gthread did best at 64 connections, 900 req/s"));
        // gthread's p99 six times sync's at 64: sync again.
        let mut report = fixture::cpu_bound();
        report.runs[5].latency.p99 = report.runs[4].latency.p99 * 6;
        report.runs[5].rps = 2_000.0;
        assert!(only(&report)
            .why
            .contains("sync did best at 64 connections"));
        // Every run with errors: the best at the top level, said.
        let mut report = fixture::cpu_bound();
        for run in &mut report.runs {
            *run = fixture::with_errors(run.clone(), "reset", 1);
        }
        let why = only(&report).why;
        assert!(
            why.contains(
                "sync did best at 64 connections, 960 req/s with p99 166ms (but with 1 errors"
            ),
            "{why}"
        );
    }

    #[test]
    fn edge_cases_say_what_is_missing() {
        // No run at all, and a class that failed.
        let mut report = fixture::report(Vec::new());
        assert!(recommend(&report).is_empty());
        assert_eq!(
            for_workload(&report, "io").unwrap_err(),
            "no run was measured"
        );
        report
            .failures
            .push(fixture::failure("io", "sync", "no such app"));
        assert!(recommend(&report).is_empty());
        assert_eq!(
            for_workload(&report, "io").unwrap_err(),
            "no class could serve it (sync: no such app)"
        );
        // Zero requests.
        let zero =
            fixture::with_errors(fixture::run("io", "sync", 1, 0.0, 0, 0, 0.0), "connect", 9);
        let report = fixture::report(vec![zero]);
        assert!(recommend(&report).is_empty());
        assert!(for_workload(&report, "io")
            .unwrap_err()
            .starts_with("no run completed a request (9 errors)"));
        // One class, one level, interrupted, no CPU measured.
        let mut run = fixture::run("app", "url", 16, 1_000.0, 5_000, 9_000, 0.0);
        run.server_cpu_s = 0.0;
        run.app = "http://127.0.0.1:8000/".to_string();
        let mut report = fixture::report(vec![run]);
        report.interrupted = true;
        let recommendation = only(&report);
        assert_eq!(recommendation.class, "url");
        assert_eq!(recommendation.command, "runicorn -k url -w 2 APP");
        let why = &recommendation.why;
        for said in [
            "The server's CPU was not measured",
            "Only url was measured",
            "Only one concurrency level was measured",
            "interrupted",
        ] {
            assert!(why.contains(said), "{said:?} not in {why}");
        }
        assert_eq!(for_workload(&report, "app"), Ok(recommendation));
    }

    /// A WSGI app (20 ms waits) under green with --blocking-threads 2 on
    /// 2 workers: 4 requests at once, whatever the worker connections.
    fn on_the_pool(cpu_us: f64) -> Report {
        let mut runs = Vec::new();
        for connections in [1u32, 16] {
            let limit = f64::from(connections.min(4)) / 0.02;
            let mut run = fixture::run(
                "app",
                "green",
                connections,
                limit * 0.97,
                20_000 * u64::from((connections / 4).max(1)),
                90_000,
                cpu_us,
            );
            run.blocking_pool = Some(2);
            run.little_limit_rps = Some(limit);
            runs.push(run);
        }
        fixture::report(runs)
    }

    #[test]
    fn an_app_on_the_blocking_pool_is_told_to_raise_blocking_threads() {
        let recommendation = only(&on_the_pool(2_000.0));
        let why = &recommendation.why;
        assert!(
            why.contains(
                "It ran at 97% of the Little's-law limit of its concurrency (200 req/s): the bottleneck \
                 is the server's concurrency, here the blocking pool the app's requests ran on (2 at \
                 once per worker), so raise --blocking-threads, not workers or worker connections."
            ),
            "{why}"
        );
        // Hundreds of waits: green it is, and its pool sized for them.
        let recommendation = only(&on_the_pool(50.0));
        assert_eq!(recommendation.class, "green");
        assert_eq!(recommendation.blocking_threads, 800);
        assert_eq!(
            recommendation.command,
            "runicorn -k green -w 4 --worker-connections 800 --blocking-threads 800 builtin:app"
        );
        assert!(
            recommendation.why.contains(
                "green with --blocking-threads 800 (its requests ran on the class's blocking pool"
            ),
            "{}",
            recommendation.why
        );
        // Without the pool: worker connections, as before.
        let mut report = on_the_pool(50.0);
        for run in &mut report.runs {
            run.blocking_pool = None;
        }
        let recommendation = only(&report);
        assert_eq!(recommendation.blocking_threads, 0);
        assert!(
            recommendation
                .why
                .contains("green with --worker-connections 800 (twice"),
            "{}",
            recommendation.why
        );
    }

    #[test]
    fn gthread_failed_falls_back_to_an_event_loop() {
        let mut report = fixture::io_bound(20, 2_000.0);
        report.runs.retain(|run| run.class != "gthread");
        report
            .failures
            .push(fixture::failure("io", "gthread", "boom"));
        let recommendation = only(&report);
        assert_eq!(recommendation.class, "async");
    }
}
