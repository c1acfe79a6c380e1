//! Everything that stops the `runicorn` command before the arbiter runs.
//!
//! Each message is one line naming the setting, the value, and what is
//! allowed or what to do. Exit codes: 2 for usage errors (the command line
//! or `RUNICORN_CMD_ARGS`), 1 for the rest (a config file, the system).

use std::fmt;
use std::path::PathBuf;

/// Where a value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// An environment variable that sets a default (`PORT`, `WEB_CONCURRENCY`).
    Environment(&'static str),
    /// The config file, at a line (0: a Python file, no line).
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
    },
    /// The `RUNICORN_CMD_ARGS` environment variable.
    CmdArgs,
    /// The command line.
    CommandLine,
}

impl Origin {
    /// Whether an error here is a usage error (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, Origin::CmdArgs | Origin::CommandLine)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("in the defaults"),
            Origin::Environment(var) => write!(f, "from ${var}"),
            Origin::ConfigFile { path, line: 0 } => write!(f, "in {}", path.display()),
            Origin::ConfigFile { path, line } => write!(f, "in {} line {line}", path.display()),
            Origin::CmdArgs => f.write_str("in RUNICORN_CMD_ARGS"),
            Origin::CommandLine => f.write_str("on the command line"),
        }
    }
}

/// Why the command stopped.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// clap's own errors, `--help` and `--version` (clap renders them).
    #[error("{0}")]
    Clap(#[from] clap::Error),
    /// A value a setting refuses.
    #[error("invalid value '{value}' for {setting} {origin}: expected {allowed}")]
    InvalidValue {
        /// `workers (-w/--workers)`.
        setting: String,
        /// The value as written.
        value: String,
        /// Where it was written.
        origin: Origin,
        /// What the setting takes.
        allowed: String,
    },
    /// A config key that is no setting.
    #[error("unknown setting '{key}' {origin}{suggestion}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The file and line.
        origin: Origin,
        /// `: did you mean 'workers'?`, or a list hint.
        suggestion: String,
    },
    /// A Gunicorn setting that runicorn does not take.
    #[error("gunicorn's '{key}' {origin} does not apply to runicorn: {instead}")]
    Inapplicable {
        /// Gunicorn's key or flag.
        key: String,
        /// Where it was used.
        origin: Origin,
        /// What to do instead.
        instead: &'static str,
    },
    /// A key that has no meaning inside a config file.
    #[error("'{key}' {origin} cannot be set inside a config file: {instead}")]
    NotInFile {
        /// The key.
        key: String,
        /// The file and line.
        origin: Origin,
        /// What to do instead.
        instead: &'static str,
    },
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}; check the path given to -c/--config", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The i/o error.
        source: std::io::Error,
    },
    /// A Python (Gunicorn) config file failed to execute or gave a bad value.
    #[error("config file {}: {message}", path.display())]
    PythonConfig {
        /// The file.
        path: PathBuf,
        /// What went wrong (a traceback when the file raised).
        message: String,
    },
    /// The config file is not TOML.
    #[error("config file {} line {line} is not valid TOML: {message}", path.display())]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parser's complaint.
        message: String,
    },
    /// `--env-name`/`RUNICORN_ENV` names a section the file lacks.
    #[error("no [env.{name}] section in {}: the file has {available}; fix --env-name or RUNICORN_ENV", path.display())]
    NoEnvSection {
        /// The name asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// The sections it has.
        available: String,
    },
    /// `RUNICORN_CMD_ARGS` has unbalanced quotes.
    #[error("RUNICORN_CMD_ARGS cannot be split into arguments ({0}): check its quotes")]
    CmdArgs(String),
    /// No APP anywhere.
    #[error(
        "no application specified: name one, such as `runicorn builtin:hello`, or set wsgi_app in the config file"
    )]
    NoApp,
    /// `-k` names no known class.
    #[error("unknown worker class '{name}': known classes are {known}{suggestion}")]
    UnknownClass {
        /// The class asked for.
        name: String,
        /// The registry's names, comma-separated.
        known: String,
        /// `; did you mean 'sync'?` or empty.
        suggestion: String,
    },
    /// A worker class from a library could not be loaded.
    #[error("cannot load worker class '{name}': {reason}")]
    ClassLibrary {
        /// The `-k` value.
        name: String,
        /// Why, and what to do.
        reason: String,
    },
    /// `-u`/`-g` names no user or group on this system.
    #[error("invalid value '{value}' for {setting}: no such {kind} on this system; expected an existing {kind} name or a numeric id")]
    NoSuchPrincipal {
        /// `user (-u/--user)`.
        setting: String,
        /// The value.
        value: String,
        /// `user` or `group`.
        kind: &'static str,
    },
    /// The TLS files cannot be served (read and checked at start and on HUP).
    #[error("{0}")]
    Tls(#[from] runicorn_worker::tls::TlsError),
}

impl CliError {
    /// The process exit code: 2 for usage errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Clap(err) => u8::try_from(err.exit_code()).unwrap_or(2),
            CliError::InvalidValue { origin, .. } | CliError::Inapplicable { origin, .. }
                if origin.is_usage() =>
            {
                2
            }
            CliError::CmdArgs(_) | CliError::NoApp | CliError::UnknownClass { .. } => 2,
            _ => 1,
        }
    }
}
