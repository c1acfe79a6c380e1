//! The terminal table (`--output table`, the default): per workload a
//! header (app, request, load shape, server settings), one row per run,
//! the req/s ratios between classes at each concurrency, then the
//! failures and the recommendations. Made for 100 columns; figures in
//! human units (µs/ms/s, MiB).

use std::io::{self, Write};

use crate::report::{Recommendation, Report, Run};

/// The width the table is made for.
pub const WIDTH: usize = 100;

/// Writes the whole table for `report`.
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{} on {} CPUs ({}), {}, started {}",
        report.runicorn,
        report.machine.cpus,
        report.machine.cpu_model,
        report.machine.kernel,
        report.started
    )?;
    if report.interrupted {
        writeln!(
            out,
            "interrupted (Ctrl-C): the figures are what was measured until then"
        )?;
    }
    for workload in workloads(report) {
        let runs: Vec<&Run> = report
            .runs
            .iter()
            .filter(|run| run.workload == workload)
            .collect();
        writeln!(out)?;
        write_header(report, &workload, &runs, out)?;
        write_rows(&runs, report.settings.duration_s, out)?;
        write_ratios(&runs, out)?;
    }
    if !report.failures.is_empty() {
        writeln!(out)?;
        writeln!(out, "failed to serve:")?;
        for failure in &report.failures {
            writeln!(
                out,
                "  {} under {}: {}",
                failure.workload, failure.class, failure.reason
            )?;
        }
    }
    for workload in workloads(report) {
        writeln!(out)?;
        // A report without recommendations (read with --from, made by
        // another tool) gets them made here.
        let recommendation = report
            .recommendations
            .iter()
            .find(|recommendation| recommendation.workload == workload)
            .cloned()
            .ok_or(())
            .or_else(|()| crate::recommend::for_workload(report, &workload));
        match recommendation {
            Ok(recommendation) => write_recommendation(&recommendation, out)?,
            Err(reason) => writeln!(out, "no recommendation for {workload}: {reason}")?,
        }
    }
    Ok(())
}

/// The workloads of a report in the order they ran (failed ones too).
pub fn workloads(report: &Report) -> Vec<String> {
    let mut seen = Vec::<String>::new();
    let names = report
        .runs
        .iter()
        .map(|run| &run.workload)
        .chain(report.failures.iter().map(|failure| &failure.workload));
    for name in names {
        if !seen.contains(name) {
            seen.push(name.clone());
        }
    }
    seen
}

fn write_header(
    report: &Report,
    workload: &str,
    runs: &[&Run],
    out: &mut dyn Write,
) -> io::Result<()> {
    let settings = &report.settings;
    match runs.first() {
        Some(first) => writeln!(out, "== {workload}: {}  {}", first.app, first.request)?,
        None => writeln!(out, "== {workload}: no run")?,
    }
    let mode = if settings.mode == "open" {
        "open loop (fixed rate)"
    } else {
        "closed loop"
    };
    let connection = if settings.keep_alive {
        "keep-alive"
    } else {
        "new connection per request"
    };
    writeln!(
        out,
        "   {mode}, {connection}, {}; workers {}, threads {}, worker-connections {}; {} per run",
        settings.transport,
        settings.workers,
        settings.threads,
        settings.worker_connections,
        seconds(settings.duration_s),
    )
}

fn write_rows(runs: &[&Run], settings_duration: f64, out: &mut dyn Write) -> io::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let open = runs.iter().any(|run| run.rate.is_some());
    let little = runs.iter().any(|run| run.little_limit_rps.is_some());
    let class_width = runs
        .iter()
        .map(|run| run.class.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut head = format!(
        "   {:<class_width$} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6}",
        "class",
        if open { "rate" } else { "conns" },
        "req/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "errors",
        "cpu/req",
        "MiB/w",
    );
    if little {
        head.push_str(&format!(" {:>7} {:>4}", "limit", "%"));
    }
    writeln!(out, "{head}")?;
    for run in runs {
        let level = match run.rate {
            Some(rate) => rps(rate),
            None => run.connections.to_string(),
        };
        let mut row = format!(
            "   {:<class_width$} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6}",
            run.class,
            level,
            rps(run.rps),
            micros(run.latency.p50 as f64),
            micros(run.latency.p90 as f64),
            micros(run.latency.p99 as f64),
            micros(run.latency.p999 as f64),
            micros(run.latency.max as f64),
            errors_total(run),
            if run.requests == 0 {
                "-".to_string()
            } else {
                micros(run.cpu_per_request_us)
            },
            rss_per_worker(run),
        );
        if little {
            match run.little_limit_rps {
                Some(limit) if limit > 0.0 => {
                    row.push_str(&format!(
                        " {:>7} {:>3}%",
                        rps(limit),
                        (run.rps / limit * 100.0).round()
                    ));
                }
                _ => row.push_str(&format!(" {:>7} {:>4}", "-", "")),
            }
        }
        writeln!(out, "{}", row.trim_end())?;
        if run.interrupted {
            writeln!(
                out,
                "   {:<class_width$} interrupted: measured for {} of {}",
                "",
                seconds_rounded(run.duration_s),
                seconds(settings_duration),
            )?;
        }
        if !run.errors.is_empty() {
            let kinds: Vec<String> = run
                .errors
                .iter()
                .map(|(kind, count)| format!("{kind} {count}"))
                .collect();
            writeln!(out, "   {:<class_width$} errors: {}", "", kinds.join(", "))?;
        }
    }
    Ok(())
}

/// Each class's req/s over the best class's at the same concurrency
/// (or rate): one row per class, one column per level.
fn write_ratios(runs: &[&Run], out: &mut dyn Write) -> io::Result<()> {
    let mut classes = Vec::<&str>::new();
    for run in runs {
        if !classes.contains(&run.class.as_str()) {
            classes.push(&run.class);
        }
    }
    if classes.len() < 2 {
        return Ok(());
    }
    let mut levels: Vec<Level> = runs.iter().map(|run| Level::of(run)).collect();
    levels.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    levels.dedup();
    let class_width = classes
        .iter()
        .map(|class| class.chars().count())
        .max()
        .unwrap_or(5)
        .max(11);
    writeln!(
        out,
        "   req/s relative to the best class at the same level:"
    )?;
    let mut head = format!(
        "   {:<class_width$}",
        if levels.iter().any(|level| level.rate.is_some()) {
            "rate"
        } else {
            "connections"
        }
    );
    for level in &levels {
        head.push_str(&format!(" {:>7}", level.label()));
    }
    writeln!(out, "{head}")?;
    for class in &classes {
        let mut row = format!("   {class:<class_width$}");
        for level in &levels {
            let at_level = |run: &&&Run| Level::of(run) == *level;
            let best = runs
                .iter()
                .filter(at_level)
                .map(|run| run.rps)
                .fold(0.0_f64, f64::max);
            let mine = runs.iter().filter(at_level).find(|run| run.class == *class);
            let cell = match mine {
                Some(run) if best > 0.0 => format!("{:.2}", run.rps / best),
                Some(_) => "0".to_string(),
                None => "-".to_string(),
            };
            row.push_str(&format!(" {cell:>7}"));
        }
        writeln!(out, "{row}")?;
    }
    Ok(())
}

fn write_recommendation(recommendation: &Recommendation, out: &mut dyn Write) -> io::Result<()> {
    let mut what = format!(
        "recommendation for {}: {}, {} worker{}",
        recommendation.workload,
        recommendation.class,
        recommendation.workers,
        if recommendation.workers == 1 { "" } else { "s" }
    );
    if recommendation.class == "gthread" {
        let threads = recommendation.threads;
        what.push_str(&format!(
            ", {threads} thread{}",
            if threads == 1 { "" } else { "s" }
        ));
    }
    if recommendation.worker_connections > 0 {
        what.push_str(&format!(
            ", {} worker connections",
            recommendation.worker_connections
        ));
    }
    if recommendation.blocking_threads > 0 {
        what.push_str(&format!(
            ", {} blocking threads",
            recommendation.blocking_threads
        ));
    }
    writeln!(out, "{what}")?;
    writeln!(out, "   {}", recommendation.command)?;
    for line in wrap(&recommendation.why, WIDTH - 3) {
        writeln!(out, "   {line}")?;
    }
    Ok(())
}

/// A concurrency level or a rate, ordered, for grouping runs.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Level {
    rate: Option<f64>,
    connections: u32,
}

impl Level {
    fn of(run: &Run) -> Level {
        match run.rate {
            Some(rate) => Level {
                rate: Some(rate),
                connections: 0,
            },
            None => Level {
                rate: None,
                connections: run.connections,
            },
        }
    }

    fn label(&self) -> String {
        match self.rate {
            Some(rate) => rps(rate),
            None => self.connections.to_string(),
        }
    }
}

/// All the errors of a run.
pub fn errors_total(run: &Run) -> u64 {
    run.errors.values().sum()
}

/// Mean resident memory per worker, MiB (`-` when not measured).
fn rss_per_worker(run: &Run) -> String {
    if run.worker_rss_kib.is_empty() {
        return "-".to_string();
    }
    let mean = run.worker_rss_kib.iter().sum::<u64>() as f64 / run.worker_rss_kib.len() as f64;
    format!("{:.1}", mean / 1024.0)
}

/// A duration in microseconds in human units: `850µs`, `12.3ms`, `1.25s`.
pub fn micros(us: f64) -> String {
    if !us.is_finite() || us < 0.0 {
        return "-".to_string();
    }
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 10_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else if us < 100_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else if us < 1_000_000.0 {
        format!("{:.0}ms", us / 1e3)
    } else if us < 10_000_000.0 {
        format!("{:.2}s", us / 1e6)
    } else {
        format!("{:.1}s", us / 1e6)
    }
}

/// Requests per second: one decimal under 100, whole numbers above.
pub fn rps(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// Seconds as the command line takes them (`10s`, `2.5s`).
fn seconds(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}s")
    } else {
        format!("{value}s")
    }
}

/// Seconds to one decimal (`3.2s`).
fn seconds_rounded(value: f64) -> String {
    format!("{value:.1}s")
}

/// Splits `text` into lines of at most `width` characters at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn render(report: &Report) -> String {
        let mut out = Vec::new();
        write(report, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn human_units() {
        assert_eq!(micros(850.0), "850µs");
        assert_eq!(micros(1_234.0), "1.23ms");
        assert_eq!(micros(12_345.0), "12.3ms");
        assert_eq!(micros(123_456.0), "123ms");
        assert_eq!(micros(1_250_000.0), "1.25s");
        assert_eq!(micros(31_000_000.0), "31.0s");
        assert_eq!(rps(12.34), "12.3");
        assert_eq!(rps(12_345.6), "12346");
        assert_eq!(seconds(10.0), "10s");
        assert_eq!(seconds(2.5), "2.5s");
    }

    #[test]
    fn every_field_of_a_run_in_100_columns() {
        let mut report = fixture::io_bound(20, 2_000.0);
        report.runs[5] = fixture::with_errors(report.runs[5].clone(), "timeout", 7);
        report.runs[5] = fixture::with_errors(report.runs[5].clone(), "reset", 2);
        report.failures.push(fixture::failure(
            "io",
            "async",
            "worker exited: no such app",
        ));
        let text = render(&report);
        for line in text.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "{} columns: {line:?}\n{text}",
                line.chars().count()
            );
        }
        assert!(
            text.contains("runicorn 0.1.0 on 4 CPUs (Test CPU @ 3.0GHz), Linux 6.1.0"),
            "{text}"
        );
        assert!(text.contains("== io: builtin:io  GET /?ms=50"), "{text}");
        assert!(
            text.contains("closed loop, keep-alive, tcp; workers 2, threads 8, worker-connections 1000; 10s per run"),
            "{text}"
        );
        // gthread at 64 connections: 16 threads / 20 ms x 0.97 = 776 req/s;
        // p50 20.4ms, p99 (20.3ms + 1ms) x 4, p99.9 twice that, max thrice;
        // 9 errors; 2.1 ms CPU per request; 11 MiB per worker; limit 800.
        let row = text
            .lines()
            .find(|line| line.trim_start().starts_with("gthread") && line.contains(" 64 "))
            .unwrap_or_else(|| panic!("no gthread 64 row:\n{text}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "gthread", "64", "776", "20.4ms", "52.8ms", "85.2ms", "170ms", "256ms", "9",
                "2.10ms", "11.0", "800", "97%"
            ],
            "{text}"
        );
        assert!(text.contains("errors: reset 2, timeout 7"), "{text}");
        let head = text
            .lines()
            .find(|line| line.contains("req/s") && line.contains("p99.9"))
            .unwrap();
        let names: Vec<&str> = head.split_whitespace().collect();
        assert_eq!(
            names,
            [
                "class", "conns", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors",
                "cpu/req", "MiB/w", "limit", "%"
            ]
        );
        // Ratios: at 1 connection sync is the best (49 against 48.5); at 16
        // and 64 gthread, sync's 2/20ms x 0.98 = 98 over 776.
        let ratios = text.split("relative to the best class").nth(1).unwrap();
        let sync = ratios
            .lines()
            .find(|line| line.trim_start().starts_with("sync"))
            .unwrap();
        assert_eq!(
            sync.split_whitespace().collect::<Vec<_>>(),
            ["sync", "1.00", "0.13", "0.13"],
            "{text}"
        );
        let gthread = ratios
            .lines()
            .find(|line| line.trim_start().starts_with("gthread"))
            .unwrap();
        assert_eq!(
            gthread.split_whitespace().collect::<Vec<_>>(),
            ["gthread", "0.99", "1.00", "1.00"],
            "{text}"
        );
        assert!(
            text.contains("failed to serve:\n  io under async: worker exited: no such app"),
            "{text}"
        );
        assert!(!text.contains("interrupted"), "{text}");
        // Made here when the report has none.
        assert!(
            text.contains("recommendation for io: gthread, 4 workers, 10 threads"),
            "{text}"
        );
        // gthread's errors at 64 made sync the measured best: said.
        let why = text
            .split("recommendation for io")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            why.contains("Measured: sync did best at 64 connections, 98.0 req/s with p99 650ms. gthread is what the shape calls for, but it had errors there (reset 2, timeout 7)"),
            "{why}"
        );
    }

    #[test]
    fn interrupted_and_recommendation_said() {
        let mut report = fixture::cpu_bound();
        report.interrupted = true;
        report.runs.last_mut().unwrap().interrupted = true;
        report.recommendations = crate::recommend::recommend(&report);
        let text = render(&report);
        assert!(
            text.contains("interrupted (Ctrl-C): the figures are what was measured until then"),
            "{text}"
        );
        assert_eq!(
            text.matches("interrupted: measured for 10.0s of 10s")
                .count(),
            1,
            "{text}"
        );
        assert!(text.contains("recommendation for cpu: "), "{text}");
        assert!(text.contains("\n   runicorn -k "), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?}");
        }
        // No Little's-law column when no run has a limit.
        assert!(!text.contains(" limit "), "{text}");
    }

    #[test]
    fn one_class_has_no_ratios_and_open_loop_shows_rates() {
        let mut run = fixture::run("hello", "sync", 16, 5_000.0, 900, 2_000, 150.0);
        run.rate = Some(5_000.0);
        let mut report = fixture::report(vec![run]);
        report.settings.mode = "open".to_string();
        report.settings.keep_alive = false;
        let text = render(&report);
        assert!(!text.contains("relative"), "{text}");
        assert!(
            text.contains("open loop (fixed rate), new connection per request"),
            "{text}"
        );
        let head = text.lines().find(|line| line.contains("req/s")).unwrap();
        assert!(head.contains("rate"), "{text}");
        assert!(
            text.lines()
                .any(|line| line.split_whitespace().take(3).eq(["sync", "5000", "5000"])),
            "{text}"
        );
    }

    #[test]
    fn empty_report_says_so() {
        let text = render(&fixture::report(Vec::new()));
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn wrap_at_spaces() {
        assert_eq!(wrap("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(wrap("", 5), Vec::<String>::new());
        assert_eq!(wrap("abcdefgh ij", 5), ["abcdefgh", "ij"]);
    }
}
