//! `--compare FILE.json`: a new report against a baseline. Runs are
//! matched by (workload, class, connections, rate); each matched run shows
//! req/s, p99 and errors old → new, flagged REGRESSION when req/s fell or
//! p99 rose by more than the threshold, or errors appeared where there
//! were none. Runs on one side only are listed, and a different machine
//! or different settings are said first: such figures do not compare.

use std::io::{self, Write};

use crate::report::{Report, Run};
use crate::table::{errors_total, micros, rps};

/// What identifies a run across reports.
#[derive(Debug, Clone, PartialEq)]
struct RunKey {
    workload: String,
    class: String,
    connections: u32,
    rate: Option<f64>,
}

impl RunKey {
    fn of(run: &Run) -> RunKey {
        RunKey {
            workload: run.workload.clone(),
            class: run.class.clone(),
            // Open loop: the connections are what the rate needed, not
            // what was asked; the rate identifies the run.
            connections: if run.rate.is_some() {
                0
            } else {
                run.connections
            },
            rate: run.rate,
        }
    }

    fn label(&self) -> String {
        match self.rate {
            Some(rate) => format!("{} {} rate={}", self.workload, self.class, rps(rate)),
            None => format!("{} {} c={}", self.workload, self.class, self.connections),
        }
    }
}

/// One run found in both reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub label: String,
    pub old_rps: f64,
    pub new_rps: f64,
    pub old_p99_us: u64,
    pub new_p99_us: u64,
    pub old_errors: u64,
    pub new_errors: u64,
    /// Why it is a regression (empty: it is not).
    pub regressions: Vec<String>,
}

/// The difference between a baseline and a new report.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub threshold_pct: f64,
    /// Matched runs, in the new report's order.
    pub changes: Vec<Change>,
    /// Runs only the baseline has.
    pub only_baseline: Vec<String>,
    /// Runs only the new report has.
    pub only_new: Vec<String>,
    /// Why the figures may not compare (another machine, other settings).
    pub notes: Vec<String>,
}

/// Compares `new` with `baseline`.
pub fn compare(baseline: &Report, new: &Report, threshold_pct: f64) -> Comparison {
    let factor = threshold_pct / 100.0;
    let mut changes = Vec::new();
    let mut only_new = Vec::new();
    for run in &new.runs {
        let key = RunKey::of(run);
        let Some(old) = baseline.runs.iter().find(|old| RunKey::of(old) == key) else {
            only_new.push(key.label());
            continue;
        };
        let mut regressions = Vec::new();
        if old.rps > 0.0 && run.rps < old.rps * (1.0 - factor) {
            regressions.push(format!("req/s {}", percent(old.rps, run.rps)));
        }
        if old.latency.p99 > 0 && run.latency.p99 as f64 > old.latency.p99 as f64 * (1.0 + factor) {
            regressions.push(format!(
                "p99 {}",
                percent(old.latency.p99 as f64, run.latency.p99 as f64)
            ));
        }
        let (old_errors, new_errors) = (errors_total(old), errors_total(run));
        if old_errors == 0 && new_errors > 0 {
            regressions.push(format!("{new_errors} errors"));
        }
        changes.push(Change {
            label: key.label(),
            old_rps: old.rps,
            new_rps: run.rps,
            old_p99_us: old.latency.p99,
            new_p99_us: run.latency.p99,
            old_errors,
            new_errors,
            regressions,
        });
    }
    let only_baseline = baseline
        .runs
        .iter()
        .map(RunKey::of)
        .filter(|key| !new.runs.iter().any(|run| RunKey::of(run) == *key))
        .map(|key| key.label())
        .collect();
    Comparison {
        threshold_pct,
        changes,
        only_baseline,
        only_new,
        notes: notes(baseline, new),
    }
}

/// What differs between the two reports beyond the figures.
fn notes(baseline: &Report, new: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    let (old, now) = (&baseline.machine, &new.machine);
    if old.cpu_model != now.cpu_model || old.cpus != now.cpus {
        notes.push(format!(
            "the baseline ran on another machine ({}, {} CPUs; now {}, {} CPUs): its figures do not compare",
            old.cpu_model, old.cpus, now.cpu_model, now.cpus
        ));
    }
    let (old, now) = (&baseline.settings, &new.settings);
    let settings = [
        ("workers", old.workers.to_string(), now.workers.to_string()),
        ("threads", old.threads.to_string(), now.threads.to_string()),
        (
            "worker-connections",
            old.worker_connections.to_string(),
            now.worker_connections.to_string(),
        ),
        ("mode", old.mode.clone(), now.mode.clone()),
        (
            "keep-alive",
            old.keep_alive.to_string(),
            now.keep_alive.to_string(),
        ),
        ("transport", old.transport.clone(), now.transport.clone()),
        (
            "server cpus",
            format!("{:?}", old.server_cpus),
            format!("{:?}", now.server_cpus),
        ),
        (
            "client cpus",
            format!("{:?}", old.client_cpus),
            format!("{:?}", now.client_cpus),
        ),
        (
            "duration",
            format!("{}s", old.duration_s),
            format!("{}s", now.duration_s),
        ),
        (
            "server args",
            old.server_args.join(" "),
            now.server_args.join(" "),
        ),
    ];
    let differing: Vec<String> = settings
        .iter()
        .filter(|(_, old, now)| old != now)
        .map(|(name, old, now)| format!("{name} {old} → {now}"))
        .collect();
    if !differing.is_empty() {
        notes.push(format!("the settings differ: {}", differing.join(", ")));
    }
    if baseline.interrupted {
        notes.push(
            "the baseline was interrupted (Ctrl-C): some of its runs are partial".to_string(),
        );
    }
    if new.interrupted {
        notes.push("this run was interrupted (Ctrl-C): some runs are partial".to_string());
    }
    notes
}

/// `+12.5%` from `old` to `new`.
fn percent(old: f64, new: f64) -> String {
    if old == 0.0 {
        return "(new)".to_string();
    }
    format!("{:+.1}%", (new - old) / old * 100.0)
}

impl Comparison {
    /// How many matched runs regressed.
    pub fn regressions(&self) -> usize {
        self.changes
            .iter()
            .filter(|change| !change.regressions.is_empty())
            .count()
    }

    /// Writes the comparison with `baseline` (the file's name) for a person.
    pub fn write(&self, baseline: &str, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "compared with {baseline} (threshold {}%):",
            self.threshold_pct
        )?;
        for note in &self.notes {
            writeln!(out, "  note: {note}")?;
        }
        let width = self
            .changes
            .iter()
            .map(|change| change.label.chars().count())
            .max()
            .unwrap_or(0);
        for change in &self.changes {
            writeln!(
                out,
                "  {:<width$}  req/s {} → {} ({})  p99 {} → {} ({})  errors {} → {}",
                change.label,
                rps(change.old_rps),
                rps(change.new_rps),
                percent(change.old_rps, change.new_rps),
                micros(change.old_p99_us as f64),
                micros(change.new_p99_us as f64),
                percent(change.old_p99_us as f64, change.new_p99_us as f64),
                change.old_errors,
                change.new_errors,
            )?;
            if !change.regressions.is_empty() {
                writeln!(
                    out,
                    "  {:<width$}  REGRESSION: {}",
                    "",
                    change.regressions.join(", ")
                )?;
            }
        }
        for label in &self.only_baseline {
            writeln!(out, "  {label}: only in {baseline}")?;
        }
        for label in &self.only_new {
            writeln!(out, "  {label}: not in {baseline}")?;
        }
        let count = self.regressions();
        writeln!(
            out,
            "{count} regression{} against {baseline}",
            if count == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn render(comparison: &Comparison) -> String {
        let mut out = Vec::new();
        comparison.write("base.json", &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_same_report_has_no_regression() {
        let report = fixture::io_bound(20, 2_000.0);
        let comparison = compare(&report, &report, 10.0);
        assert_eq!(comparison.regressions(), 0);
        assert_eq!(comparison.changes.len(), report.runs.len());
        assert!(comparison.notes.is_empty());
        let text = render(&comparison);
        assert!(
            text.ends_with("0 regressions against base.json\n"),
            "{text}"
        );
        assert!(!text.contains("REGRESSION"), "{text}");
    }

    #[test]
    fn flags_exactly_the_regressions() {
        let baseline = fixture::io_bound(20, 2_000.0);
        let mut new = baseline.clone();
        // sync c=1: req/s down 9% (within 10%): not flagged.
        new.runs[0].rps *= 0.91;
        // gthread c=1: req/s down 11%: flagged.
        new.runs[1].rps *= 0.89;
        // sync c=16: p99 up 9%: not flagged; req/s up: not flagged.
        new.runs[2].latency.p99 = (new.runs[2].latency.p99 as f64 * 1.09) as u64;
        new.runs[2].rps *= 1.5;
        // gthread c=16: p99 up 12%: flagged.
        new.runs[3].latency.p99 = (new.runs[3].latency.p99 as f64 * 1.12) as u64;
        // sync c=64: errors appear: flagged.
        new.runs[4] = fixture::with_errors(new.runs[4].clone(), "timeout", 1);
        // gthread c=64: errors were there and stay: not flagged.
        let baseline = {
            let mut baseline = baseline;
            baseline.runs[5] = fixture::with_errors(baseline.runs[5].clone(), "reset", 2);
            baseline
        };
        new.runs[5] = fixture::with_errors(new.runs[5].clone(), "reset", 3);
        let comparison = compare(&baseline, &new, 10.0);
        let flagged: Vec<(&str, &[String])> = comparison
            .changes
            .iter()
            .filter(|change| !change.regressions.is_empty())
            .map(|change| (change.label.as_str(), change.regressions.as_slice()))
            .collect();
        assert_eq!(
            flagged,
            [
                ("io gthread c=1", &["req/s -11.0%".to_string()][..]),
                ("io gthread c=16", &["p99 +12.0%".to_string()][..]),
                ("io sync c=64", &["1 errors".to_string()][..]),
            ]
        );
        assert_eq!(comparison.regressions(), 3);
        let text = render(&comparison);
        assert!(text.contains("io gthread c=1   req/s 48.5 → 43.2 (-11.0%)  p99 21.3ms → 21.3ms (+0.0%)  errors 0 → 0\n"), "{text}");
        assert_eq!(text.matches("REGRESSION").count(), 3, "{text}");
        assert!(
            text.ends_with("3 regressions against base.json\n"),
            "{text}"
        );
        // A stricter threshold flags the 9% ones too.
        assert_eq!(compare(&baseline, &new, 5.0).regressions(), 5);
    }

    #[test]
    fn unmatched_runs_and_another_machine() {
        let baseline = fixture::io_bound(20, 2_000.0);
        let mut new = baseline.clone();
        new.runs.retain(|run| run.class == "sync");
        let mut open = fixture::run("io", "sync", 3, 100.0, 20_000, 30_000, 2_000.0);
        open.rate = Some(100.0);
        new.runs.push(open);
        new.machine.cpu_model = "Other CPU".to_string();
        new.machine.cpus = 8;
        new.settings.workers = 4;
        let comparison = compare(&baseline, &new, 10.0);
        assert_eq!(
            comparison.only_baseline,
            ["io gthread c=1", "io gthread c=16", "io gthread c=64"]
        );
        assert_eq!(comparison.only_new, ["io sync rate=100"]);
        let text = render(&comparison);
        assert!(
            text.contains(
                "note: the baseline ran on another machine (Test CPU @ 3.0GHz, 4 CPUs; now Other CPU, 8 CPUs)"
            ),
            "{text}"
        );
        assert!(
            text.contains("note: the settings differ: workers 2 → 4"),
            "{text}"
        );
        assert!(
            text.contains("io gthread c=16: only in base.json"),
            "{text}"
        );
        assert!(
            text.contains("io sync rate=100: not in base.json"),
            "{text}"
        );
    }
}
