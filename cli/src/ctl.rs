//! `runicorn ctl`: talk to a running master's control socket
//! (`--control-socket`; the protocol and the client are the master's,
//! `master/src/control/`). `status` prints every worker and the requests
//! it runs now as a table (`--json`: the master's JSON as it came);
//! `workers add|remove N`, `reload` and `stop` do what TTIN, TTOU, HUP and
//! TERM do. Chosen by the first argument, before settings are read, so an
//! app cannot be named `ctl` on its own (write `ctl:application`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use runicorn_master::control::client::{self, ClientError};
use runicorn_master::control::protocol::{Request, Status};

/// How long ctl waits for the master at each step.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable that names the socket when the flag does not.
pub const SOCKET_ENV: &str = "RUNICORN_CONTROL_SOCKET";

/// `runicorn ctl`.
#[derive(Debug, Parser)]
#[command(
    name = "runicorn ctl",
    version,
    about = "Ask a running runicorn master, through its control socket (runicorn --control-socket PATH).",
    after_help = "Everything ctl does is also a signal to the master: workers add N is N x TTIN, \
                  workers remove N is N x TTOU, reload is HUP, stop is TERM."
)]
struct Ctl {
    /// The master's control socket: the --control-socket it was started with.
    #[arg(
        long = "control-socket",
        short = 's',
        value_name = "PATH",
        env = SOCKET_ENV,
        global = true
    )]
    control_socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every worker: pid, class, age, generation, state, uptime, requests
    /// served, RSS, and the requests it runs now with their age.
    Status {
        /// Print the master's JSON answer as it came, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Change the number of workers (as TTIN / TTOU).
    Workers {
        #[command(subcommand)]
        change: Workers,
    },
    /// New workers with the re-read configuration, then the old ones retire (as HUP).
    Reload,
    /// Graceful stop (as TERM).
    Stop,
}

#[derive(Debug, Subcommand)]
enum Workers {
    /// N workers more.
    Add {
        /// How many.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
    },
    /// N workers fewer (never below one).
    Remove {
        /// How many.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
    },
}

/// Runs `runicorn ctl ARGS...` (`args` without the program and `ctl`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from("runicorn ctl")).chain(args);
    let ctl = match Ctl::try_parse_from(argv) {
        Ok(ctl) => ctl,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let Some(path) = ctl.control_socket else {
        eprintln!(
            "runicorn ctl: which master? pass --control-socket PATH (or set {SOCKET_ENV}): the path \
             runicorn was started with --control-socket PATH"
        );
        return ExitCode::from(2);
    };
    let (request, json) = match ctl.command {
        Command::Status { json } => (Request::Status, json),
        Command::Workers {
            change: Workers::Add { count },
        } => (Request::WorkersAdd(count as usize), false),
        Command::Workers {
            change: Workers::Remove { count },
        } => (Request::WorkersRemove(count as usize), false),
        Command::Reload => (Request::Reload, false),
        Command::Stop => (Request::Stop, false),
    };
    let (response, raw) = match client::send(&path, &request, TIMEOUT) {
        Ok(answer) => answer,
        Err(err) => return fail(&err),
    };
    if json {
        out(&format!("{raw}\n"));
        return if response.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if !response.ok {
        eprintln!(
            "runicorn ctl: the master answered: {}",
            response.error.as_deref().unwrap_or("an error")
        );
        return ExitCode::FAILURE;
    }
    match (&response.status, &response.message) {
        (Some(status), _) => out(&table(status)),
        (None, Some(message)) => out(&format!("{message}\n")),
        (None, None) => {}
    }
    ExitCode::SUCCESS
}

/// Writes `text` to stdout (a closed pipe is not an error worth more).
fn out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn fail(err: &ClientError) -> ExitCode {
    eprintln!("runicorn ctl: {err}");
    ExitCode::FAILURE
}

/// `status` as a table: the master on top, then one row per worker, with
/// one more line per request it runs beyond the first.
pub fn table(status: &Status) -> String {
    let master = &status.master;
    let mut out = format!(
        "master {}: runicorn {}, -k {}, {} worker(s) wanted, generation {}, up {}\n",
        master.pid,
        master.version,
        master.class,
        master.workers_target,
        master.generation,
        secs(master.uptime_secs)
    );
    for listener in &master.listeners {
        let _ = writeln!(out, "listening at {listener}");
    }
    let rows: Vec<[String; 9]> = status
        .workers
        .iter()
        .map(|worker| {
            [
                worker.pid.to_string(),
                worker.class.clone(),
                worker.age.to_string(),
                worker.generation.to_string(),
                worker.state.clone(),
                secs(worker.uptime_secs),
                worker.requests.to_string(),
                worker.rss_bytes.map_or_else(|| "-".to_owned(), mib),
                worker.in_flight.to_string(),
            ]
        })
        .collect();
    let head = [
        "PID", "CLASS", "AGE", "GEN", "STATE", "UP", "REQS", "RSS", "NOW",
    ];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        text
    };
    let indent = line(&[""; 9]).len();
    let _ = writeln!(out, "{}REQUEST (AGE)", line(&head));
    for (worker, row) in status.workers.iter().zip(&rows) {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let mut requests = worker
            .requests_now
            .iter()
            .map(|request| format!("{} ({})", request.request, secs(request.secs)));
        let first = requests.next().unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(out, "{}{first}", line(&cells));
        for more in requests {
            let _ = writeln!(out, "{:indent$}{more}", "");
        }
    }
    out
}

fn secs(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}M", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_master::control::protocol::{MasterStatus, RequestNow, WorkerStatus};

    #[test]
    fn the_table_lists_each_worker_and_each_request_it_runs() {
        let worker = |pid, requests_now: Vec<RequestNow>| WorkerStatus {
            pid,
            class: "gthread".to_owned(),
            age: pid as u64 - 100,
            generation: 0,
            uptime_secs: 75.0,
            requests: 12,
            in_flight: requests_now.len() as u64,
            rss_bytes: Some(12 * 1024 * 1024),
            state: if requests_now.is_empty() {
                "idle"
            } else {
                "busy"
            }
            .to_owned(),
            requests_now,
        };
        let status = Status {
            master: MasterStatus {
                pid: 100,
                version: "0.1.0".to_owned(),
                class: "gthread".to_owned(),
                workers_target: 2,
                generation: 0,
                uptime_secs: 80.0,
                listeners: vec!["http://127.0.0.1:8000".to_owned()],
            },
            workers: vec![
                worker(
                    101,
                    vec![
                        RequestNow {
                            request: "GET /slow HTTP/1.1".to_owned(),
                            secs: 2.25,
                        },
                        RequestNow {
                            request: "POST /b HTTP/1.1".to_owned(),
                            secs: 0.5,
                        },
                    ],
                ),
                worker(102, Vec::new()),
            ],
        };
        let text = table(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "master 100: runicorn 0.1.0, -k gthread, 2 worker(s) wanted, generation 0, up 1m20s"
        );
        assert!(lines[2].starts_with("PID "), "{text}");
        assert!(
            lines[3].starts_with("101  ") && lines[3].contains(" busy "),
            "{text}"
        );
        assert!(
            lines[3].ends_with("GET /slow HTTP/1.1 (2.2s)")
                || lines[3].ends_with("GET /slow HTTP/1.1 (2.3s)"),
            "{text}"
        );
        assert!(lines[3].contains("12.0M"), "{text}");
        let column = lines[3].find("GET /slow").unwrap();
        assert_eq!(
            lines[4].find("POST /b HTTP/1.1 (0.5s)"),
            Some(column),
            "{text}"
        );
        assert!(
            lines[5].starts_with("102 ") && lines[5].ends_with("-"),
            "{text}"
        );
    }
}
