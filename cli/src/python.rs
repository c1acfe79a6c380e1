//! Python apps, Gunicorn config files and their hooks, through runicorn's
//! Python plugin (`librunicorn_python.so`, the `python/` crate).
//!
//! The plugin, and with it libpython, is opened only in a process that
//! needs it: a worker importing a Python app, or the master when the config
//! file is Python (`gunicorn.conf.py`) or the Python app is preloaded. A
//! binary without the plugin, or a machine without libpython, still serves
//! built-in and native apps; asking it for a Python app fails with one line
//! naming what was looked for. When the interpreter runs in the master, the
//! master's fork runs CPython's fork protocol (`runicorn_master::ForkHooks`)
//! and no Python thread is ever started there.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use runicorn_app::abi::python::PythonPlugin;
use runicorn_app::{Application, LoadError};
use runicorn_master::{ArbiterView, ForkHooks, Hooks, WorkerView};
use runicorn_worker::Settings;

use crate::settings::render;

/// The prefix of a hook defined in a Python config file (`settings.hooks`
/// holds `python:post_fork` for it).
pub const HOOK_PREFIX: &str = "python:";

static PLUGIN: OnceLock<Result<PythonPlugin, String>> = OnceLock::new();

/// The virtual environment to honour: the one the runicorn binary is
/// installed in (`<venv>/bin/runicorn`, as `pip install` puts it: like
/// Gunicorn's console script, it runs its own environment's Python whatever
/// is activated), else `$VIRTUAL_ENV`.
pub fn virtual_env() -> Option<PathBuf> {
    let installed_in = std::env::current_exe().ok().and_then(|exe| {
        let venv = exe.parent()?.parent()?;
        venv.join("pyvenv.cfg")
            .is_file()
            .then(|| venv.to_path_buf())
    });
    installed_in.or_else(|| {
        std::env::var_os("VIRTUAL_ENV")
            .filter(|venv| !venv.is_empty())
            .map(PathBuf::from)
    })
}

/// CPython's fork protocol around the master's forks.
struct PythonFork(PythonPlugin);

impl ForkHooks for PythonFork {
    fn before(&self) {
        self.0.before_fork();
    }
    fn parent(&self) {
        self.0.after_fork_parent();
    }
    fn child(&self) {
        self.0.after_fork_child();
    }
}

/// The Python support linked into this binary (the `embedded-python`
/// feature, the build `pip install` makes), else the plugin library found
/// on disk.
fn open_plugin() -> Result<PythonPlugin, String> {
    #[cfg(feature = "embedded-python")]
    return PythonPlugin::linked(&runicorn_python::exports::runicorn_python_plugin);
    #[cfg(not(feature = "embedded-python"))]
    PythonPlugin::open()
}

/// The plugin, opened once per process.
fn plugin() -> Result<PythonPlugin, String> {
    PLUGIN
        .get_or_init(|| {
            let plugin = open_plugin()?;
            runicorn_master::set_fork_hooks(Box::new(PythonFork(plugin)));
            Ok(plugin)
        })
        .clone()
}

/// The plugin when this process has opened it.
pub fn opened() -> Option<PythonPlugin> {
    PLUGIN
        .get()
        .and_then(|plugin| plugin.as_ref().ok().copied())
}

fn options(settings: Option<&Settings>) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let pythonpath: Vec<String> = settings
        .map(|settings| {
            settings
                .pythonpath
                .iter()
                .map(|dir| dir.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut options = serde_json::json!({
        "virtual_env": virtual_env().map(|venv| venv.display().to_string()),
        "pythonpath": pythonpath,
        "cwd": cwd.display().to_string(),
        "argv": std::env::args().collect::<Vec<String>>(),
    });
    if let Some(settings) = settings {
        options["settings"] = render::settings_json(settings);
    }
    options.to_string()
}

/// Open the plugin and start (or update) the interpreter in this process.
pub fn start(settings: Option<&Settings>) -> Result<PythonPlugin, String> {
    let plugin = plugin()?;
    plugin.init(&options(settings))?;
    Ok(plugin)
}

/// Import the WSGI app `settings.app`; `looked_natively` says which library
/// files were tried first.
pub fn load_app(settings: &Settings, looked_natively: &str) -> Result<Application, LoadError> {
    let plugin = start(Some(settings)).map_err(|reason| {
        LoadError::Other(format!(
            "No module named '{}': {looked_natively}; and Python apps cannot be loaded: {reason}",
            module_of(&settings.app)
        ))
    })?;
    plugin.load_app(&settings.app, looked_natively)
}

/// The module part of a spec (`main` of `main:create_app('x')`): up to the
/// first `:` after the last `/`, as the library loader reads it.
pub fn module_of(spec: &str) -> &str {
    let spec = spec.trim();
    let call = spec.find('(').unwrap_or(spec.len());
    let after_slash = spec[..call].rfind('/').map_or(0, |slash| slash + 1);
    match spec[after_slash..].find(':') {
        Some(colon) => &spec[..after_slash + colon],
        None => spec,
    }
}

/// Whether a config file is Python: Gunicorn's `.py` files (any other
/// name is read as TOML).
pub fn is_python_config(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "py")
}

/// One line for a config file that failed in Python: the exception and
/// the line of the file it came from (the plugin gives the traceback).
pub fn config_failure(path: &Path, traceback: &str) -> String {
    let exception = traceback
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty() && !line.starts_with(' '))
        .unwrap_or("the file failed")
        .trim();
    let quoted = format!("File \"{}\", line ", path.display());
    let line = traceback
        .lines()
        .rev()
        .filter_map(|text| text.trim().strip_prefix(&quoted))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .find_map(|number| number.parse::<u32>().ok());
    match line {
        Some(line) => format!(
            "line {line} raised {exception}; fix the file (it is Python, run as Gunicorn runs it)"
        ),
        None => format!("{exception}; fix the file (it is Python, run as Gunicorn runs it)"),
    }
}

/// Execute a Gunicorn config file; its settings and hooks as JSON.
pub fn load_config(path: &Path) -> Result<String, String> {
    let plugin = start(None)?;
    plugin.load_config(path)
}

/// The hooks of a Python config file, as the master's hooks.
#[derive(Debug)]
pub struct PythonHooks {
    plugin: PythonPlugin,
    names: Vec<String>,
}

impl PythonHooks {
    /// The hooks among `settings.hooks` that a Python config file defined;
    /// the interpreter is told the settings hooks see as `server.cfg`.
    pub fn from_settings(settings: &Settings) -> Result<Option<PythonHooks>, LoadError> {
        let names: Vec<String> = settings
            .hooks
            .iter()
            .filter(|(_, spec)| spec.starts_with(HOOK_PREFIX))
            .map(|(name, _)| name.clone())
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let plugin = start(Some(settings)).map_err(|reason| {
            LoadError::Other(format!(
                "the Python config file's hooks cannot run: {reason}"
            ))
        })?;
        Ok(Some(PythonHooks { plugin, names }))
    }

    fn has(&self, name: &str) -> bool {
        self.names.iter().any(|known| known == name)
    }

    fn fire(&self, name: &str, context: serde_json::Value) {
        if let Err(err) = self.call(name, context) {
            tracing::error!("Exception in {name} hook\n{err}");
        }
    }

    fn call(&self, name: &str, context: serde_json::Value) -> Result<(), String> {
        if !self.has(name) {
            return Ok(());
        }
        self.plugin.call_hook(name, &context.to_string())
    }

    /// A hook that runs while the worker boots: an exception in it is a
    /// failed boot, exit 3, as in Gunicorn (the master then halts with
    /// "Worker failed to boot.").
    fn boot_hook(&self, name: &str, context: serde_json::Value) {
        if let Err(err) = self.call(name, context) {
            tracing::error!("Exception in worker process ({name} hook)\n{err}");
            std::process::exit(3);
        }
    }
}

fn context(arbiter: Option<&ArbiterView<'_>>, worker: Option<&WorkerView>) -> serde_json::Value {
    let mut context = serde_json::json!({});
    if let Some(arbiter) = arbiter {
        context["master_pid"] = arbiter.pid.into();
        context["num_workers"] = arbiter.num_workers.into();
    }
    if let Some(worker) = worker {
        context["worker"] = serde_json::json!({
            "pid": worker.pid,
            "age": worker.age,
            "exit_code": worker.exit_code,
        });
    }
    context
}

impl Hooks for PythonHooks {
    fn on_starting(&self, arbiter: &ArbiterView<'_>) {
        self.fire("on_starting", context(Some(arbiter), None));
    }
    fn when_ready(&self, arbiter: &ArbiterView<'_>) {
        self.fire("when_ready", context(Some(arbiter), None));
    }
    fn pre_fork(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.fire("pre_fork", context(Some(arbiter), Some(worker)));
    }
    fn post_fork(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.boot_hook("post_fork", context(Some(arbiter), Some(worker)));
    }
    fn post_worker_init(&self, worker: &WorkerView) {
        self.boot_hook("post_worker_init", context(None, Some(worker)));
    }
    fn worker_int(&self, worker: &WorkerView) {
        self.fire("worker_int", context(None, Some(worker)));
    }
    fn worker_abort(&self, worker: &WorkerView) {
        self.fire("worker_abort", context(None, Some(worker)));
    }
    fn has_worker_int(&self) -> bool {
        self.has("worker_int")
    }
    fn has_worker_abort(&self) -> bool {
        self.has("worker_abort")
    }
    fn worker_exit(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.fire("worker_exit", context(Some(arbiter), Some(worker)));
    }
    fn child_exit(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.fire("child_exit", context(Some(arbiter), Some(worker)));
    }
    fn nworkers_changed(&self, arbiter: &ArbiterView<'_>, new: usize, old: Option<usize>) {
        let mut context = context(Some(arbiter), None);
        context["new_value"] = new.into();
        context["old_value"] = old.into();
        self.fire("nworkers_changed", context);
    }
    fn on_reload(&self, arbiter: &ArbiterView<'_>) {
        self.fire("on_reload", context(Some(arbiter), None));
    }
    fn on_exit(&self, arbiter: &ArbiterView<'_>) {
        self.fire("on_exit", context(Some(arbiter), None));
    }
    fn pre_exec(&self, arbiter: &ArbiterView<'_>) {
        self.fire("pre_exec", context(Some(arbiter), None));
    }
}
