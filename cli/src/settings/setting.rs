//! The shape of one entry of the settings table.

use runicorn_worker::Settings;

use super::parse::Allowed;
use super::raw::Raw;

/// Gunicorn's sections, in the order the reference lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `config`, `env_name`.
    ConfigFile,
    /// `wsgi_app`, `chdir`, `app_path`, `preload_app`, ...
    App,
    /// `reload`, `reload_extra_files`.
    Debugging,
    /// `bind`, `backlog`, `reuse_port`.
    ServerSocket,
    /// `certfile`, `keyfile`, `ca_certs`, `cert_reqs`, `ciphers`, `ssl_version`.
    Ssl,
    /// `workers`, `worker_class`, timeouts, ...
    WorkerProcesses,
    /// `limit_request_*`.
    Security,
    /// `pidfile`, `umask`, `user`, `group`, `daemon`, ...
    ServerMechanics,
    /// `loglevel`, `errorlog`.
    Logging,
    /// `proc_name`.
    ProcessNaming,
    /// `on_starting`, `post_fork`, ...
    ServerHooks,
}

impl Section {
    /// The heading in `--help` and `docs/settings.md`.
    pub fn title(self) -> &'static str {
        match self {
            Section::ConfigFile => "Config File",
            Section::App => "App",
            Section::Debugging => "Debugging",
            Section::ServerSocket => "Server Socket",
            Section::Ssl => "SSL",
            Section::WorkerProcesses => "Worker Processes",
            Section::Security => "Security",
            Section::ServerMechanics => "Server Mechanics",
            Section::Logging => "Logging",
            Section::ProcessNaming => "Process Naming",
            Section::ServerHooks => "Server Hooks",
        }
    }
}

/// How a setting appears on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// A flag without a value (`--preload`).
    Flag,
    /// One value; the last one given wins.
    One,
    /// A flag that may take one value (`--proxy-protocol`,
    /// `--proxy-protocol v1`, `--proxy-protocol=v1`, as Gunicorn's
    /// `nargs="?"`): bare, it means this value. As in Gunicorn, a bare one
    /// right before the APP argument takes the app as its value.
    OptionalValue(&'static str),
    /// Repeatable (`-b A -b B`); a higher source replaces the whole list.
    Many,
    /// The positional `APP` argument.
    Positional,
    /// Only in the config file (server hooks).
    FileOnly,
}

/// A default that comes from the environment (`PORT`, `WEB_CONCURRENCY`).
#[derive(Debug, Clone, Copy)]
pub struct EnvDefault {
    /// The environment variable.
    pub var: &'static str,
    /// Turns its value into the setting's value.
    pub to_raw: fn(&str) -> Raw,
    /// For the reference: what the variable does.
    pub doc: &'static str,
}

/// One setting: declared once, read by the command line, the config file,
/// `--print-config`, `--help` and `docs/settings.md`.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Gunicorn's key: the config-file key and the `Settings` field.
    pub key: &'static str,
    /// Where the reference lists it.
    pub section: Section,
    /// The short flag, as Gunicorn's (`w` for `-w`).
    pub short: Option<char>,
    /// The long flags without dashes, Gunicorn's spelling first.
    pub long: &'static [&'static str],
    /// The value's placeholder in `--help` (`INT`, `ADDRESS`).
    pub value_name: &'static str,
    /// Flag, one value, a list, the positional, or file-only.
    pub arity: Arity,
    /// A default taken from the environment, if any.
    pub env_default: Option<EnvDefault>,
    /// One paragraph for `--help` and the reference.
    pub doc: &'static str,
    /// Validates and stores a value.
    pub apply: fn(&mut Settings, &Raw) -> Result<(), Allowed>,
    /// Reads the current value back, as TOML (`None`: unset).
    pub show: fn(&Settings) -> Option<toml::Value>,
}

impl Setting {
    /// `-w/--workers`, as messages name the setting's flags.
    pub fn flags_text(&self) -> String {
        let mut flags: Vec<String> = self.short.iter().map(|short| format!("-{short}")).collect();
        flags.extend(self.long.iter().map(|long| format!("--{long}")));
        flags.join("/")
    }

    /// How messages name the setting: `workers (-w/--workers)`.
    pub fn described(&self) -> String {
        match self.arity {
            Arity::Positional => format!("{} (the APP argument)", self.key),
            Arity::FileOnly => self.key.to_owned(),
            _ => format!("{} ({})", self.key, self.flags_text()),
        }
    }
}

/// A Gunicorn setting that runicorn does not take, and what to use instead.
#[derive(Debug, Clone, Copy)]
pub struct Inapplicable {
    /// Gunicorn's key.
    pub key: &'static str,
    /// Gunicorn's long flags, without dashes (refused with the same message).
    pub long: &'static [&'static str],
    /// Whether Gunicorn's flag takes a value.
    pub takes_value: bool,
    /// What to do instead.
    pub instead: &'static str,
}
