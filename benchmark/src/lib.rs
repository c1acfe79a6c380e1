//! `runicorn bench`: starts the app under each worker class in turn (the
//! real `runicorn` binary as a child process), drives it with
//! `runicorn-loadgen`, measures the server's CPU and memory, and reports:
//! a table, JSON or CSV, charts, a comparison with an earlier run, and a
//! recommendation. It runs in its own process, never in a master: the
//! threads it starts are the load generator's.
#![forbid(unsafe_code)]

pub mod args;
pub mod compare;
pub mod csv;
#[cfg(test)]
mod fixture;
pub mod output;
pub mod plot;
pub mod procfs;
pub mod recommend;
pub mod report;
pub mod runner;
pub mod server;
pub mod table;
pub mod workload;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use args::{Config, Parsed};
use report::Report;

/// The exit code after Ctrl-C (128 + SIGINT), as a shell reports it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs `runicorn bench ARGS...` (`args` without the program and `bench`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let config = match args::parse(args) {
        Parsed::Run(config) => config,
        Parsed::Help(err) => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Parsed::Usage(usage) => {
            eprintln!("runicorn bench: {usage}");
            return ExitCode::from(2);
        }
    };
    let report = match &config.from {
        Some(path) => match read_report(path) {
            Ok(report) => report,
            Err(problem) => {
                eprintln!("runicorn bench: {problem}");
                return ExitCode::from(2);
            }
        },
        None => {
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                if let Err(err) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
                    eprintln!("runicorn bench: cannot handle Ctrl-C ({err})");
                    return ExitCode::FAILURE;
                }
            }
            runner::run(&config, &stop)
        }
    };
    let regressions = match output(&report, &config) {
        Ok(regressions) => regressions,
        Err(problem) => {
            eprintln!("runicorn bench: {problem}");
            return ExitCode::FAILURE;
        }
    };
    // A report read with --from ran nothing here: only a regression fails it.
    let ran = config.from.is_none();
    if ran && report.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if (ran && !report.failures.is_empty()) || regressions > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A report written with `--output json`.
fn read_report(path: &std::path::Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        format!(
            "--from {}: {err}; give a report written with --output json",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|err| {
        format!(
            "--from {}: not a report ({err}); give a file written with --output json",
            path.display()
        )
    })
}

/// Writes the report to stdout; returns the regressions flagged.
fn output(report: &Report, _config: &Config) -> Result<usize, String> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, report)
        .map_err(|err| format!("cannot write the report: {err}"))?;
    let _ = writeln!(stdout);
    Ok(0)
}
