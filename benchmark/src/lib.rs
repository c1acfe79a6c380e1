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
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use args::Parsed;

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
    let options = output::OutputOptions {
        format: match config.output {
            args::OutputFormat::Table => output::Format::Table,
            args::OutputFormat::Json => output::Format::Json,
            args::OutputFormat::Csv => output::Format::Csv,
        },
        plots: config.plots.clone(),
        compare: config.compare.clone(),
        threshold_pct: config.threshold,
    };
    // What would fail only after a long run fails now: a --plot that
    // cannot be drawn, a --compare that is not a report.
    for path in &options.plots {
        if let Err(err) = plot::Image::of(path) {
            eprintln!("runicorn bench: --plot: {err}");
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &options.compare {
        if let Err(err) = output::read_report(path) {
            eprintln!("runicorn bench: --compare: {err}");
            return ExitCode::from(2);
        }
    }
    let report = match &config.from {
        Some(path) => match output::read_report(path) {
            Ok(report) => report,
            Err(err) => {
                eprintln!("runicorn bench: --from: {err}");
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
            let mut report = runner::run(&config, &stop);
            report.recommendations = recommend::recommend(&report);
            report
        }
    };
    let mut stdout = std::io::stdout().lock();
    let regressions = match output::emit(&report, &options, &mut stdout) {
        Ok(regressions) => regressions,
        // `| head` closed stdout: stop quietly, with the status a filter
        // killed by SIGPIPE has (128 + 13).
        Err(err) if err.is_broken_pipe() => return ExitCode::from(141),
        Err(err) => {
            eprintln!("runicorn bench: {err}");
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
