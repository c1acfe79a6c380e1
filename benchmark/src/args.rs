//! `runicorn bench`'s command line (clap), and [`Config`], what it asks
//! for once checked: every value that cannot be used, and every flag that
//! would not change anything in the combination given, is refused with one
//! line naming the problem and the fix (exit 2), never ignored.

use std::ffi::OsString;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::workload::{self, Workload};

/// The classes run when `-k` is not given.
pub const DEFAULT_CLASSES: [&str; 4] = ["sync", "gthread", "green", "async"];

/// `runicorn bench`.
#[derive(Debug, Parser)]
#[command(
    name = "runicorn bench",
    version,
    about = "Serve an app under each worker class in turn, drive it with the built-in load generator, \
             and report requests/s, latency, errors, server CPU and memory, with a recommendation.",
    after_help = "Examples:\n  runicorn bench --workload hello,io -d 5s\n  \
                  runicorn bench myapp:app --path /api/items -k sync,gthread -w 2 -c 1,16,64\n  \
                  runicorn bench --url http://127.0.0.1:8000/ --label nginx -c 64\n\
                  Exit: 0; 1 when a class failed to start or a regression was flagged; 2 usage; 130 after Ctrl-C.\n\
                  Docs: docs/bench.md"
)]
pub struct Cli {
    /// The app to serve (any form `runicorn APP` takes: builtin:NAME, a native module:variable, a
    /// Python module:callable); absent: each --workload's built-in app.
    #[arg(value_name = "APP")]
    pub app: Option<String>,
    /// Built-in workloads to run: hello, io, cpu, mixed, upload, stream (default hello).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub workload: Vec<String>,
    /// Worker classes to compare [default: sync,gthread,green,async].
    #[arg(
        short = 'k',
        long = "worker-class",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub worker_class: Vec<String>,
    /// Workers of every class.
    #[arg(short = 'w', long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,
    /// gthread's threads per worker (green and async run runicorn's default,
    /// one runtime thread per worker).
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: u32,
    /// green's and async's connections per worker.
    #[arg(long = "worker-connections", value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub worker_connections: u32,
    /// Closed loop: the concurrencies, one run each. With --rate: the most connections (one value)
    /// [default: 1,16,64,256; with --rate: 256].
    #[arg(short = 'c', long, value_name = "LIST", value_delimiter = ',',
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Vec<u32>,
    /// Open loop: requests per second, one run per rate; latency from the scheduled send.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_rate)]
    pub rate: Vec<f64>,
    /// A new connection per request (default: keep-alive).
    #[arg(long = "new-connection")]
    pub new_connection: bool,
    /// The measured window of each run (10s, 500ms, 1m).
    #[arg(short = 'd', long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// The unmeasured run before each measured window.
    #[arg(long, value_name = "D", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// One request's deadline (a request past it counts as a `timeout` error).
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The request method (with APP or --url) [default: GET].
    #[arg(short = 'm', long, value_name = "M")]
    pub method: Option<String>,
    /// The request path and query (with APP or --url) [default: /, or the --url's path].
    #[arg(long, value_name = "P")]
    pub path: Option<String>,
    /// A request header, 'Name: value' (repeatable; with APP or --url).
    #[arg(short = 'H', long = "header", value_name = "'Name: value'")]
    pub header: Vec<String>,
    /// The request body: a string, or @FILE for a file's bytes (with APP or --url).
    #[arg(long, value_name = "STRING|@FILE")]
    pub body: Option<String>,
    /// A file of raw HTTP/1.1 requests, sent in turn (with APP or --url).
    #[arg(long, value_name = "FILE")]
    pub requests: Option<PathBuf>,
    /// Serve on a unix socket in a temporary directory (default 127.0.0.1, a port the server picks).
    #[arg(long)]
    pub unix: bool,
    /// Pin the server (master and workers) to these CPUs (0,2 or 0-3).
    #[arg(long = "server-cpus", value_name = "LIST", value_parser = parse_cpus)]
    pub server_cpus: Option<CpuList>,
    /// Pin the load generator's threads to these CPUs.
    #[arg(long = "client-cpus", value_name = "LIST", value_parser = parse_cpus)]
    pub client_cpus: Option<CpuList>,
    /// Load generator threads.
    #[arg(long = "client-threads", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub client_threads: u32,
    /// Drive a server that is already running (http://HOST:PORT/PATH or unix:PATH); none is started.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: the name its runs get in the class column [default: url].
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// With --url: measure the CPU and memory of this process and its descendants.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pid: Option<u32>,
    /// What to print on stdout.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Write a chart of requests/s and p99 against connections (.svg or .png; repeatable).
    #[arg(long, value_name = "FILE")]
    pub plot: Vec<PathBuf>,
    /// Compare with an earlier report (--output json) and flag regressions (exit 1 if any).
    #[arg(long, value_name = "FILE.json")]
    pub compare: Option<PathBuf>,
    /// With --compare: the change that counts as a regression, percent (req/s down or p99 up).
    #[arg(long, value_name = "PCT", default_value_t = 10.0, value_parser = parse_threshold)]
    pub threshold: f64,
    /// No run: read a report written with --output json and output it.
    #[arg(long, value_name = "FILE.json")]
    pub from: Option<PathBuf>,
    /// The server binary [default: this runicorn].
    #[arg(long, value_name = "PATH")]
    pub runicorn: Option<PathBuf>,
    /// Extra arguments for every server started (after `--`).
    #[arg(last = true, value_name = "SERVER_ARGS")]
    pub server_args: Vec<String>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

/// A list of CPU numbers (`0,2`, `0-3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<u32>);

/// Where the load goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// Start a server for each class.
    Spawn {
        binary: PathBuf,
        unix: bool,
        server_cpus: Vec<u32>,
        server_args: Vec<String>,
    },
    /// `--url`: a server already running.
    Url {
        url: String,
        target: UrlTarget,
        host: String,
        label: String,
        server_pid: Option<u32>,
    },
}

/// The address a `--url` names.
#[derive(Debug, Clone, PartialEq)]
pub enum UrlTarget {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Closed loop at each concurrency, or open loop at each rate.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    Closed(Vec<u32>),
    Open { rates: Vec<f64>, connections: u32 },
}

/// What to run (or, with `--from`, to read), checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub from: Option<PathBuf>,
    pub workloads: Vec<Workload>,
    pub classes: Vec<String>,
    pub workers: u32,
    pub threads: u32,
    pub worker_connections: u32,
    pub load: Load,
    pub keep_alive: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub endpoint: Endpoint,
    pub client_cpus: Vec<u32>,
    pub client_threads: u32,
    pub output: OutputFormat,
    pub plots: Vec<PathBuf>,
    pub compare: Option<PathBuf>,
    pub threshold: f64,
}

/// A command line that cannot run: one line, the problem and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What parsing gave: a configuration, or clap's help/version text to
/// print (exit 0), or a usage error (exit 2).
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Config>),
    Help(clap::Error),
    Usage(Usage),
}

/// Parses `args` (without the program name and `bench`).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Parsed {
    let argv = std::iter::once(OsString::from("runicorn bench")).chain(args);
    let matches = match Cli::command().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(err) => return clap_error(err),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => return clap_error(err),
    };
    match check(cli, &matches) {
        Ok(config) => Parsed::Run(Box::new(config)),
        Err(usage) => Parsed::Usage(usage),
    }
}

/// clap's errors as one line (its first, with the hint that follows it
/// folded in), or its help and version text.
fn clap_error(err: clap::Error) -> Parsed {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        return Parsed::Help(err);
    }
    let text = err.render().to_string();
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Usage:"));
    let first = lines.next().unwrap_or("bad arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let tip = lines
        .find_map(|line| line.strip_prefix("tip: "))
        .map(|tip| format!("; {tip}"))
        .unwrap_or_default();
    Parsed::Usage(Usage(format!("{first}{tip} (see `runicorn bench --help`)")))
}

fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

fn usage<T>(text: impl Into<String>) -> Result<T, Usage> {
    Err(Usage(text.into()))
}

/// Server flags bench sets itself, with the bench flag that sets each (or
/// why it cannot be changed): given again after `--` they would move the
/// listener bench drives, hide the `Listening at:`/`Ready:` lines it waits
/// for, or measure another class than the report names.
const OWNED_SERVER_FLAGS: [(&str, &str); 14] = [
    (
        "-b",
        "bench binds 127.0.0.1 (or a unix socket with --unix) and drives that listener",
    ),
    (
        "--bind",
        "bench binds 127.0.0.1 (or a unix socket with --unix) and drives that listener",
    ),
    ("-k", "use bench's -k/--worker-class"),
    ("--worker-class", "use bench's -k/--worker-class"),
    ("-w", "use bench's -w/--workers"),
    ("--workers", "use bench's -w/--workers"),
    ("--threads", "use bench's --threads (gthread's pool)"),
    ("--worker-connections", "use bench's --worker-connections"),
    (
        "--log-level",
        "bench reads the server's Listening at: and Ready: lines at level info",
    ),
    (
        "--error-logfile",
        "bench reads the server's log on its stderr",
    ),
    ("--log-file", "bench reads the server's log on its stderr"),
    (
        "--log-config",
        "bench reads the server's log on its stderr at level info",
    ),
    (
        "--log-config-dict",
        "bench reads the server's log on its stderr at level info",
    ),
    (
        "--log-config-json",
        "bench reads the server's log on its stderr at level info",
    ),
];

/// Refuses a server argument that would undo what bench set (see
/// [`OWNED_SERVER_FLAGS`]), in one line naming the flag and the fix.
fn refuse_owned_server_args(args: &[String]) -> Result<(), Usage> {
    for arg in args {
        let flag = arg.split_once('=').map_or(arg.as_str(), |(flag, _)| flag);
        // A short flag may be glued to its value: `-w4`, `-kgthread`.
        let glued =
            |owned: &str| owned.len() == 2 && !arg.starts_with("--") && arg.starts_with(owned);
        if let Some((owned, why)) = OWNED_SERVER_FLAGS
            .iter()
            .find(|(owned, _)| *owned == flag || glued(owned))
        {
            return usage(format!(
                "-- SERVER_ARGS gives {owned}, which bench sets for every server ({why}): drop it from after --"
            ));
        }
    }
    Ok(())
}

/// The flags that shape a run, by clap id and spelling (refused with
/// `--from`).
const RUN_FLAGS: [(&str, &str); 26] = [
    ("app", "APP"),
    ("workload", "--workload"),
    ("worker_class", "--worker-class"),
    ("workers", "--workers"),
    ("threads", "--threads"),
    ("worker_connections", "--worker-connections"),
    ("connections", "--connections"),
    ("rate", "--rate"),
    ("new_connection", "--new-connection"),
    ("duration", "--duration"),
    ("warmup", "--warmup"),
    ("timeout", "--timeout"),
    ("method", "--method"),
    ("path", "--path"),
    ("header", "--header"),
    ("body", "--body"),
    ("requests", "--requests"),
    ("unix", "--unix"),
    ("server_cpus", "--server-cpus"),
    ("client_cpus", "--client-cpus"),
    ("client_threads", "--client-threads"),
    ("url", "--url"),
    ("label", "--label"),
    ("server_pid", "--server-pid"),
    ("runicorn", "--runicorn"),
    ("server_args", "-- SERVER_ARGS"),
];

/// The combination checks clap cannot express.
fn check(cli: Cli, matches: &ArgMatches) -> Result<Config, Usage> {
    if given(matches, "threshold") && cli.compare.is_none() {
        return usage(
            "--threshold only applies to --compare: add --compare FILE.json or drop --threshold",
        );
    }
    if let Some(from) = &cli.from {
        if let Some((_, flag)) = RUN_FLAGS.iter().find(|(id, _)| given(matches, id)) {
            return usage(format!(
                "{flag} shapes a run, and --from {} only reads a report: drop one of them",
                from.display()
            ));
        }
        return Ok(Config {
            from: cli.from.clone(),
            workloads: Vec::new(),
            classes: Vec::new(),
            workers: cli.workers,
            threads: cli.threads,
            worker_connections: cli.worker_connections,
            load: Load::Closed(Vec::new()),
            keep_alive: true,
            duration: cli.duration,
            warmup: cli.warmup,
            timeout: cli.timeout,
            endpoint: Endpoint::Spawn {
                binary: PathBuf::new(),
                unix: false,
                server_cpus: Vec::new(),
                server_args: Vec::new(),
            },
            client_cpus: Vec::new(),
            client_threads: cli.client_threads,
            output: cli.output,
            plots: cli.plot,
            compare: cli.compare,
            threshold: cli.threshold,
        });
    }
    if cli.duration.is_zero() {
        return usage("--duration 0 measures nothing: give a window such as -d 10s");
    }
    if cli.timeout.is_zero() {
        return usage("--timeout 0 fails every request: give a deadline such as --timeout 30s");
    }
    let keep_alive = !cli.new_connection;

    let load = if cli.rate.is_empty() {
        let connections = if cli.connections.is_empty() {
            vec![1, 16, 64, 256]
        } else {
            cli.connections.clone()
        };
        Load::Closed(connections)
    } else {
        let connections = match cli.connections.as_slice() {
            [] => 256,
            [one] => *one,
            _ => {
                return usage(
                    "with --rate, --connections is the most connections the generator may open: give one value (-c 256)",
                )
            }
        };
        Load::Open {
            rates: cli.rate.clone(),
            connections,
        }
    };

    let custom_request = ["method", "path", "header", "body", "requests"]
        .iter()
        .any(|id| given(matches, id));
    if cli.requests.is_some() {
        if let Some(flag) = [
            ("method", "--method"),
            ("path", "--path"),
            ("header", "--header"),
            ("body", "--body"),
        ]
        .iter()
        .find_map(|(id, flag)| given(matches, id).then_some(*flag))
        {
            return usage(format!(
                "{flag} and --requests both say what to send: put it in the --requests file, or drop --requests"
            ));
        }
    }

    let endpoint;
    let workloads;
    let classes;
    if let Some(url) = &cli.url {
        for (id, flag) in [
            ("app", "APP"),
            ("workload", "--workload"),
            ("worker_class", "--worker-class"),
            ("workers", "--workers"),
            ("threads", "--threads"),
            ("worker_connections", "--worker-connections"),
            ("unix", "--unix"),
            ("server_cpus", "--server-cpus"),
            ("runicorn", "--runicorn"),
            ("server_args", "-- SERVER_ARGS"),
        ] {
            if given(matches, id) {
                return usage(format!(
                    "{flag} configures a server bench starts, and --url drives one already running: drop {flag}, or drop --url"
                ));
            }
        }
        let (target, host, url_path) = parse_url(url)?;
        let label = cli.label.clone().unwrap_or_else(|| "url".to_owned());
        if label.is_empty() || label.contains(',') {
            return usage(
                "--label names the server in the report: give a non-empty name without commas",
            );
        }
        if let Some(pid) = cli.server_pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return usage(format!(
                    "--server-pid {pid}: no such process; give the pid of the server's master (or only process)"
                ));
            }
        }
        let request = request_from(&cli, url_path.as_deref(), keep_alive)?;
        workloads = vec![Workload::app(url.clone(), request)];
        classes = vec![label.clone()];
        endpoint = Endpoint::Url {
            url: url.clone(),
            target,
            host,
            label,
            server_pid: cli.server_pid,
        };
    } else {
        for (id, flag) in [("label", "--label"), ("server_pid", "--server-pid")] {
            if given(matches, id) {
                return usage(format!(
                    "{flag} names a server that is already running: add --url URL, or drop {flag}"
                ));
            }
        }
        workloads = match &cli.app {
            Some(app) => {
                if !cli.workload.is_empty() {
                    return usage(format!(
                        "--workload picks a built-in app, and {app} is your own: drop --workload (your app's request is --method/--path/--header/--body), or drop {app}"
                    ));
                }
                if app.is_empty() {
                    return usage("the APP is empty: name it as `runicorn APP` would (module:variable, builtin:NAME)");
                }
                vec![Workload::app(
                    app.clone(),
                    request_from(&cli, None, keep_alive)?,
                )]
            }
            None => {
                if custom_request {
                    return usage(
                        "--method, --path, --header, --body and --requests shape the request to your own app: name it (runicorn bench APP ...) or use --url; the built-in workloads send their own",
                    );
                }
                let names: Vec<String> = if cli.workload.is_empty() {
                    vec!["hello".to_owned()]
                } else {
                    cli.workload.clone()
                };
                let mut workloads = Vec::new();
                for name in &names {
                    let Some(workload) = workload::builtin(name) else {
                        return usage(format!(
                            "unknown workload '{name}': the built-in workloads are {} (or name your own APP)",
                            workload::NAMES.join(", ")
                        ));
                    };
                    if workloads
                        .iter()
                        .any(|known: &Workload| known.name == workload.name)
                    {
                        return usage(format!("--workload names '{name}' twice: give it once"));
                    }
                    workloads.push(workload);
                }
                workloads
            }
        };
        classes = if cli.worker_class.is_empty() {
            DEFAULT_CLASSES
                .iter()
                .map(|class| (*class).to_owned())
                .collect()
        } else {
            let mut classes: Vec<String> = Vec::new();
            for class in &cli.worker_class {
                if class.is_empty() {
                    return usage(
                        "--worker-class has an empty name: give a list such as -k sync,gthread",
                    );
                }
                if classes.contains(class) {
                    return usage(format!(
                        "--worker-class names '{class}' twice: give it once"
                    ));
                }
                classes.push(class.clone());
            }
            classes
        };
        let binary = match &cli.runicorn {
            Some(path) => {
                if !path.is_file() {
                    return usage(format!(
                        "--runicorn {}: no such file; give the path of a runicorn binary",
                        path.display()
                    ));
                }
                path.clone()
            }
            None => std::env::current_exe().map_err(|err| {
                Usage(format!(
                    "cannot find this runicorn binary ({err}): give it with --runicorn PATH"
                ))
            })?,
        };
        let server_cpus = match &cli.server_cpus {
            Some(list) => available(list, "--server-cpus")?,
            None => Vec::new(),
        };
        refuse_owned_server_args(&cli.server_args)?;
        endpoint = Endpoint::Spawn {
            binary,
            unix: cli.unix,
            server_cpus,
            server_args: cli.server_args.clone(),
        };
    }
    let client_cpus = match &cli.client_cpus {
        Some(list) => available(list, "--client-cpus")?,
        None => Vec::new(),
    };
    Ok(Config {
        from: None,
        workloads,
        classes,
        workers: cli.workers,
        threads: cli.threads,
        worker_connections: cli.worker_connections,
        load,
        keep_alive,
        duration: cli.duration,
        warmup: cli.warmup,
        timeout: cli.timeout,
        endpoint,
        client_cpus,
        client_threads: cli.client_threads,
        output: cli.output,
        plots: cli.plot,
        compare: cli.compare,
        threshold: cli.threshold,
    })
}

/// The CPUs of `list` if this process may run on every one of them.
fn available(list: &CpuList, flag: &str) -> Result<Vec<u32>, Usage> {
    let allowed = crate::procfs::allowed_cpus();
    if let Some(cpu) = list.0.iter().find(|cpu| !allowed.contains(cpu)) {
        return usage(format!(
            "{flag}: CPU {cpu} is not available here; the CPUs this process may use are {}",
            crate::procfs::format_cpus(&allowed)
        ));
    }
    Ok(list.0.clone())
}

/// The user's request for workload `app` (APP or --url).
fn request_from(
    cli: &Cli,
    default_path: Option<&str>,
    keep_alive: bool,
) -> Result<workload::RequestSpec, Usage> {
    if let Some(file) = &cli.requests {
        let bytes = std::fs::read(file).map_err(|err| {
            Usage(format!(
                "--requests {}: {err}; give a readable file of raw HTTP/1.1 requests",
                file.display()
            ))
        })?;
        // Checked now, so that a bad file stops before any server starts.
        runicorn_loadgen::parse_request_file(&bytes, keep_alive)
            .map_err(|err| Usage(format!("--requests {}: {err}", file.display())))?;
        return Ok(workload::RequestSpec::File {
            path: file.clone(),
            bytes,
        });
    }
    let method = cli.method.clone().unwrap_or_else(|| "GET".to_owned());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return usage(format!(
            "--method '{method}' is not an HTTP method: give one such as GET or POST"
        ));
    }
    let path = cli
        .path
        .clone()
        .or_else(|| default_path.map(str::to_owned))
        .unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return usage(format!(
            "--path '{path}' is not a request target: give one that starts with / and has no spaces (/api/items?page=2)"
        ));
    }
    let mut headers = Vec::new();
    for header in &cli.header {
        let Some((name, value)) = header.split_once(':') else {
            return usage(format!(
                "--header '{header}' has no colon: write it as 'Name: value'"
            ));
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return usage(format!(
                "--header '{header}' has no valid name: write it as 'Name: value'"
            ));
        }
        for reserved in ["host", "content-length", "transfer-encoding"] {
            if name.eq_ignore_ascii_case(reserved) {
                return usage(format!(
                    "--header {name}: the load generator sets it itself; drop it (use --requests FILE for full control)"
                ));
            }
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let body = match &cli.body {
        None => Vec::new(),
        Some(body) => match body.strip_prefix('@') {
            Some(file) => std::fs::read(file).map_err(|err| {
                Usage(format!(
                    "--body @{file}: {err}; give a readable file after @, or the body itself"
                ))
            })?,
            None => body.clone().into_bytes(),
        },
    };
    Ok(workload::RequestSpec::One {
        method,
        path,
        headers,
        body,
    })
}

/// `--url`: the address, the Host header and the path it names.
fn parse_url(url: &str) -> Result<(UrlTarget, String, Option<String>), Usage> {
    if let Some(path) = url.strip_prefix("unix:") {
        if path.is_empty() {
            return usage("--url unix: needs the socket's path: unix:/run/app.sock");
        }
        return Ok((
            UrlTarget::Unix(PathBuf::from(path)),
            "localhost".to_owned(),
            None,
        ));
    }
    if url.starts_with("https://") {
        return usage(format!(
            "--url {url}: the load generator speaks plain HTTP/1.1, not TLS: give an http:// URL (a plain listener of the server)"
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return usage(format!(
            "--url {url}: give http://HOST:PORT/PATH or unix:/path/to.sock"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], Some(rest[at..].to_owned())),
        None => (rest, None),
    };
    if authority.is_empty() {
        return usage(format!(
            "--url {url} names no host: give http://HOST:PORT/PATH"
        ));
    }
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_owned()
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Usage(format!(
                "--url {url}: cannot resolve {authority}; give a reachable HOST:PORT"
            ))
        })?;
    Ok((UrlTarget::Tcp(addr), authority.to_owned(), path))
}

/// `10s`, `500ms`, `1.5s`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: write it as 10s, 500ms or 2m"))?;
    if !value.is_finite() || value < 0.0 || value * scale > 86_400.0 {
        return Err(format!(
            "'{text}' is out of range: give 0 to 24 hours, as 10s, 500ms or 2m"
        ));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "'{text}' is not a rate: give requests per second above 0, such as --rate 1000,5000"
        )),
    }
}

fn parse_threshold(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(pct) if pct.is_finite() && pct >= 0.0 => Ok(pct),
        _ => Err(format!(
            "'{text}' is not a percentage: give 0 or more, such as --threshold 10"
        )),
    }
}

fn parse_cpus(text: &str) -> Result<CpuList, String> {
    let bad = || format!("'{text}' is not a CPU list: write it as 0, 0,2 or 0-3");
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((first, last)) => {
                let first: u32 = first.trim().parse().map_err(|_| bad())?;
                let last: u32 = last.trim().parse().map_err(|_| bad())?;
                if first > last || last - first > 4096 {
                    return Err(bad());
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuList(cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(OsString::from)) {
            Parsed::Run(config) => Ok(*config),
            Parsed::Usage(usage) => Err(usage.0),
            Parsed::Help(text) => Err(format!("help: {text}")),
        }
    }

    #[test]
    fn defaults() {
        let config = run(&[]).unwrap();
        assert_eq!(config.classes, DEFAULT_CLASSES);
        assert_eq!(config.load, Load::Closed(vec![1, 16, 64, 256]));
        assert_eq!(config.duration, Duration::from_secs(10));
        assert_eq!(config.warmup, Duration::from_secs(2));
        assert_eq!(config.workloads.len(), 1);
        assert_eq!(config.workloads[0].name, "hello");
        assert!(config.keep_alive);
    }

    #[test]
    fn durations_and_lists() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_cpus("0-2,5").unwrap(), CpuList(vec![0, 1, 2, 5]));
        assert!(parse_cpus("2-1").is_err());
        let config = run(&["-c", "2,8", "-k", "sync"]).unwrap();
        assert_eq!(config.load, Load::Closed(vec![2, 8]));
        assert_eq!(config.classes, ["sync"]);
    }

    #[test]
    fn server_args_that_undo_what_bench_sets_are_refused() {
        for given in [
            "-w4",
            "-w",
            "--workers=2",
            "-kgthread",
            "--worker-class",
            "-b",
            "--bind=unix:/x",
            "--threads",
            "--worker-connections",
            "--log-level",
            "--error-logfile",
            "--log-config-dict",
        ] {
            let err = run(&["--", given]).unwrap_err();
            assert!(err.contains("-- SERVER_ARGS gives"), "{given}: {err}");
            assert!(err.contains("drop it from after --"), "{given}: {err}");
        }
        for fine in [
            "--chdir",
            "--max-requests",
            "--preload",
            "-c",
            "--timeout=5",
        ] {
            assert!(run(&["--", fine]).is_ok(), "{fine}");
        }
    }

    #[test]
    fn refusals_are_one_line() {
        for args in [
            &["-c", "0"][..],
            &["--workload", "nope"],
            &["-d", "ten"],
            &["--path", "/x"],
            &["--label", "x"],
            &["--url", "http://127.0.0.1:1/", "-k", "sync"],
            &["--rate", "100", "-c", "1,2"],
            &["--from", "x.json", "-d", "1s"],
            &["--threshold", "5"],
            &["--bogus"],
            &["--url", "https://127.0.0.1:1/"],
            &["myapp:app", "--workload", "io"],
            &["myapp:app", "--header", "novalue"],
        ] {
            let err = run(args).unwrap_err();
            assert!(!err.contains('\n'), "{args:?}: {err}");
            assert!(!err.starts_with("help"), "{args:?}: {err}");
        }
    }

    #[test]
    fn url_takes_its_path() {
        let config = run(&["--url", "http://127.0.0.1:9/items?x=1", "--label", "peer"]).unwrap();
        assert_eq!(config.classes, ["peer"]);
        match &config.workloads[0].request {
            workload::RequestSpec::One { path, .. } => assert_eq!(path, "/items?x=1"),
            other => panic!("{other:?}"),
        }
    }
}
