//! `--reload`: a watcher process that sends the master SIGHUP when the app
//! library, the config file, a `--reload-extra-file`, or the file of any
//! module a Python app imported changes (each worker lists its imported
//! modules' files in [`MODULES_ENV`]'s file after the import; the watcher
//! rereads that list when it changes and watches what it names).
//!
//! The master must stay single-threaded, and file watching wants a thread
//! (inotify through the `notify` crate), so the watching happens in a
//! separate process: once the master is ready (after `-D` detached it), it
//! spawns this binary again with [`WATCHER_ENV`] naming the master's pid.
//! The watcher watches the files' directories (so a library replaced by
//! rename is seen), sends SIGHUP on a change — the master then starts a
//! new generation of workers, which load the new library — and exits once
//! the master is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getppid, Pid};
use notify::{EventKind, RecursiveMode, Watcher};
use runicorn_app::loader::{self, SearchPath};
use runicorn_master::log::LogOptions;
use runicorn_master::{ArbiterView, Hooks, WorkerView};
use runicorn_worker::log::syslog::SyslogConfig;
use runicorn_worker::log::{LogFormat, Role};

/// `--log-syslog`'s settings, handed to the watcher when syslog is on.
const SYSLOG_TO_ENV: &str = "RUNICORN_RELOAD_SYSLOG_TO";
const SYSLOG_FACILITY_ENV: &str = "RUNICORN_RELOAD_SYSLOG_FACILITY";
const SYSLOG_PREFIX_ENV: &str = "RUNICORN_RELOAD_SYSLOG_PREFIX";
use runicorn_worker::Settings;

/// Set in the watcher's environment to the master's pid.
pub const WATCHER_ENV: &str = "RUNICORN_RELOAD_WATCHER";

/// Set in the master's (so the workers') environment: the file in which a
/// Python worker lists its imported modules' files.
pub const MODULES_ENV: &str = "RUNICORN_RELOAD_MODULES";

/// How long to wait for more events before signalling: an editor's save or
/// `cp` + `mv` is several events, and one HUP should cover them.
const SETTLE: Duration = Duration::from_millis(300);

/// The files whose change rolls the workers: the app library (when the app
/// is one), the config file and every `--reload-extra-file`.
pub fn watched_files(settings: &Settings) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(spec) = loader::parse_spec(&settings.app) {
        if spec.module != runicorn_app::builtin::MODULE {
            let search = SearchPath::new(settings.chdir.clone(), settings.app_path.clone());
            if let Ok(library) = loader::find_library(&spec.module, &search) {
                files.push(library);
            }
        }
    }
    files.extend(settings.config.iter().cloned());
    files.extend(settings.reload_extra_files.iter().cloned());
    files.into_iter().map(|file| absolute(&file)).collect()
}

/// The path with its directory resolved, so events (which name the
/// watched directory) compare equal.
fn absolute(path: &Path) -> PathBuf {
    let path = std::env::current_dir().map_or_else(|_| path.to_owned(), |cwd| cwd.join(path));
    match (
        path.parent().and_then(|dir| dir.canonicalize().ok()),
        path.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => path,
    }
}

/// The master's hooks, plus starting the watcher once the master is ready.
pub struct WithWatcher {
    inner: Arc<dyn Hooks>,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for WithWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithWatcher")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl WithWatcher {
    /// Wraps `inner`; the watcher will watch `files`, and the modules
    /// Python workers list in the file this names in [`MODULES_ENV`] (set
    /// here, in the still single-threaded master, before any fork).
    pub fn new(inner: Arc<dyn Hooks>, files: Vec<PathBuf>) -> WithWatcher {
        let list =
            std::env::temp_dir().join(format!("runicorn-{}-modules.txt", std::process::id()));
        std::env::set_var(MODULES_ENV, &list);
        WithWatcher { inner, files }
    }

    fn spawn(&self, master: u32, settings: &Settings) {
        let python_app = crate::python::module_of(&settings.app) != runicorn_app::builtin::MODULE
            && !self
                .files
                .iter()
                .any(|file| file.extension().is_some_and(|ext| ext == "so"));
        if self.files.is_empty() && !python_app {
            tracing::warn!(
                "--reload has nothing to watch (a built-in app and no config file): \
                 name files with --reload-extra-file"
            );
            return;
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => {
                tracing::error!(
                    "--reload: cannot find the runicorn binary to start the watcher: {err}"
                );
                return;
            }
        };
        let mut command = Command::new(exe);
        if settings.syslog {
            // The watcher's lines go to syslog too, under the same name.
            command
                .env(SYSLOG_TO_ENV, &settings.syslog_addr)
                .env(SYSLOG_FACILITY_ENV, &settings.syslog_facility)
                .env(
                    SYSLOG_PREFIX_ENV,
                    runicorn_master::log::syslog_prefix(settings),
                );
        }
        let spawned = command
            .args(&self.files)
            .env(
                MODULES_ENV,
                std::env::var_os(MODULES_ENV).unwrap_or_default(),
            )
            .env(WATCHER_ENV, master.to_string())
            .env("RUNICORN_RELOAD_LOGLEVEL", &settings.loglevel)
            .env("RUNICORN_RELOAD_ERRORLOG", &settings.errorlog)
            .env("RUNICORN_RELOAD_LOGFORMAT", settings.log_format.name())
            .stdin(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => {
                let shown: Vec<String> = self
                    .files
                    .iter()
                    .map(|file| file.display().to_string())
                    .collect();
                let mut watched = shown.join(", ");
                if python_app {
                    if !watched.is_empty() {
                        watched.push_str(" and ");
                    }
                    watched.push_str("the Python app's imported modules");
                }
                tracing::info!("Reload watcher (pid:{}) watching: {watched}", child.id());
            }
            Err(err) => tracing::error!("--reload: cannot start the watcher: {err}"),
        }
    }
}

impl Hooks for WithWatcher {
    fn on_starting(&self, arbiter: &ArbiterView<'_>) {
        self.inner.on_starting(arbiter);
    }
    fn when_ready(&self, arbiter: &ArbiterView<'_>) {
        self.inner.when_ready(arbiter);
        self.spawn(arbiter.pid, arbiter.settings);
    }
    fn pre_fork(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.inner.pre_fork(arbiter, worker);
    }
    fn post_fork(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.inner.post_fork(arbiter, worker);
    }
    fn post_worker_init(&self, worker: &WorkerView) {
        self.inner.post_worker_init(worker);
    }
    fn worker_exit(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.inner.worker_exit(arbiter, worker);
    }
    fn child_exit(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.inner.child_exit(arbiter, worker);
    }
    fn nworkers_changed(&self, arbiter: &ArbiterView<'_>, new: usize, old: Option<usize>) {
        self.inner.nworkers_changed(arbiter, new, old);
    }
    fn on_reload(&self, arbiter: &ArbiterView<'_>) {
        self.inner.on_reload(arbiter);
    }
    fn on_exit(&self, arbiter: &ArbiterView<'_>) {
        self.inner.on_exit(arbiter);
    }
}

/// The watcher process's `main`: watch, signal, exit with the master.
pub fn watcher_main(master: &str) -> ExitCode {
    let loglevel = std::env::var("RUNICORN_RELOAD_LOGLEVEL").unwrap_or_else(|_| "info".to_owned());
    let errorlog = std::env::var("RUNICORN_RELOAD_ERRORLOG").unwrap_or_else(|_| "-".to_owned());
    let format = std::env::var("RUNICORN_RELOAD_LOGFORMAT")
        .ok()
        .and_then(|format| LogFormat::parse(&format).ok())
        .unwrap_or_default();
    runicorn_worker::log::set_role(Role::Watcher);
    let mut options = LogOptions::plain(&loglevel, &errorlog, format);
    if let (Ok(to), Ok(facility), Ok(prefix)) = (
        std::env::var(SYSLOG_TO_ENV),
        std::env::var(SYSLOG_FACILITY_ENV),
        std::env::var(SYSLOG_PREFIX_ENV),
    ) {
        options.syslog = SyslogConfig::new(&to, &facility, &prefix, false).ok();
    }
    let _ = runicorn_master::log::init(&options);
    let Ok(master) = master.parse::<i32>() else {
        tracing::error!("{WATCHER_ENV}={master} is not a pid");
        return ExitCode::FAILURE;
    };
    let files: BTreeSet<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let list = std::env::var_os(MODULES_ENV)
        .filter(|list| !list.is_empty())
        .map(PathBuf::from);
    let result = watch(Pid::from_raw(master), files, list.as_deref());
    if let Some(list) = &list {
        let _ = std::fs::remove_file(list);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(
                "--reload: the watcher stopped: {err}; restart runicorn to watch again"
            );
            ExitCode::FAILURE
        }
    }
}

/// The files named in a worker's module list.
fn read_list(list: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(list)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn watch(master: Pid, mut files: BTreeSet<PathBuf>, list: Option<&Path>) -> notify::Result<()> {
    let (events, received) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(events)?;
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut watch_dir = |dir: &Path, watcher: &mut notify::RecommendedWatcher| {
        if dirs.insert(dir.to_path_buf()) {
            if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!("--reload: cannot watch {}: {err}", dir.display());
            }
        }
    };
    for dir in files.iter().filter_map(|file| file.parent()) {
        watch_dir(dir, &mut watcher);
    }
    if let Some(dir) = list.and_then(Path::parent) {
        watch_dir(dir, &mut watcher);
    }
    loop {
        // Workers (re)write their module list: watch what it names.
        for file in list.map(read_list).unwrap_or_default() {
            if let Some(dir) = file.parent() {
                watch_dir(dir, &mut watcher);
            }
            files.insert(file);
        }
        let relevant = |event: &notify::Event| {
            !matches!(event.kind, EventKind::Access(_))
                && event.paths.iter().any(|path| files.contains(path))
        };
        match received.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(event)) if relevant(&event) => {
                let mut changed: BTreeSet<PathBuf> = event
                    .paths
                    .into_iter()
                    .filter(|path| files.contains(path))
                    .collect();
                // Let the burst of events of one save settle into one HUP.
                while let Ok(more) = received.recv_timeout(SETTLE) {
                    if let Ok(event) = more {
                        changed.extend(event.paths.into_iter().filter(|path| files.contains(path)));
                    }
                }
                let shown: Vec<String> = changed
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                tracing::info!("Reloading: {} changed", shown.join(", "));
                if kill(master, Signal::SIGHUP).is_err() {
                    return Ok(());
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!("--reload: watch error: {err}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        if getppid() != master {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_the_config_and_extra_files_not_builtin_apps() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("runicorn.toml");
        let extra = dir.path().join("extra.txt");
        let settings = Settings {
            app: "builtin:hello".to_owned(),
            config: Some(config.clone()),
            reload_extra_files: vec![extra.clone()],
            ..Settings::default()
        };
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(
            watched_files(&settings),
            vec![canonical.join("runicorn.toml"), canonical.join("extra.txt")]
        );
    }

    #[test]
    fn watches_an_app_library_found_on_the_app_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libmyapp.so"), b"").unwrap();
        let settings = Settings {
            app: "myapp:app".to_owned(),
            app_path: vec![dir.path().to_owned()],
            ..Settings::default()
        };
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(
            watched_files(&settings),
            vec![canonical.join("libmyapp.so")]
        );
    }
}
