//! Server hooks from app libraries (`post_fork = "myapp:post_fork"`) as the
//! master's [`runicorn_master::Hooks`].
//!
//! The hooks are loaded in the master before it binds (a missing symbol is a
//! load error, exit 4, before anything starts). Each master-side call builds
//! the `#[repr(C)]` views of `runicorn_app::hooks` and calls the library; a
//! failing or panicking hook is logged, as Gunicorn logs an exception in a
//! hook, and the server goes on. The worker-side hooks that need a request
//! (`pre_request`, `post_request`) run around the app itself
//! ([`wrap_request_hooks`], called by the app loader), so every worker class
//! fires them; the signal-driven ones (`worker_int`, `worker_abort`) run on
//! the worker's signal-hook watcher thread (see `runicorn_worker::Shutdown`),
//! never inside a signal handler.

use std::sync::Arc;

use runicorn_app::hooks::{
    with_request_hooks, ArbiterInfo, HookEvent, HookName, Hooks as LoadedHooks, WorkerInfoView,
};
use runicorn_app::loader::SearchPath;
use runicorn_app::{Application, LoadError};
use runicorn_master::{ArbiterView, Hooks, WorkerView};

/// Whether a hook comes from a Python config file rather than a library.
fn is_python(spec: &str) -> bool {
    spec.starts_with(crate::python::HOOK_PREFIX)
}

/// Load the hooks named in the settings; `None` when there are none. The
/// hooks of a Python config file (`gunicorn.conf.py`) run in the embedded
/// interpreter; the others come from app libraries.
pub fn load(settings: &runicorn_worker::Settings) -> Result<Option<Arc<dyn Hooks>>, LoadError> {
    if settings.hooks.is_empty() {
        return Ok(None);
    }
    if let Some(python) = crate::python::PythonHooks::from_settings(settings)? {
        if settings.hooks.iter().any(|(_, spec)| !is_python(spec)) {
            return Err(LoadError::Other(
                "hooks come from one place: define them all in the Python config file, or all as \
                 library functions in a TOML file"
                    .to_owned(),
            ));
        }
        return Ok(Some(Arc::new(python)));
    }
    let search = SearchPath::new(settings.chdir.clone(), settings.app_path.clone());
    let hooks = LoadedHooks::load(&settings.hooks, &search)?;
    Ok(Some(Arc::new(LibraryHooks { hooks })))
}

/// Wrap a loaded app so that the `pre_request`/`post_request` hooks the
/// config names run around each of its requests, under every worker class.
/// Called by the app loader in each worker (or in the master with
/// `--preload`); the app is returned as is when neither hook is configured.
/// The request hooks of a Python config file are called by the Python app
/// itself (`python_app`), with Gunicorn's `req`/`resp` objects; around a
/// native app they are refused.
pub fn wrap_request_hooks(
    app: Application,
    settings: &runicorn_worker::Settings,
    python_app: bool,
) -> Result<Application, LoadError> {
    let wanted = |name: &str| {
        name == HookName::PreRequest.as_str() || name == HookName::PostRequest.as_str()
    };
    if !python_app {
        if let Some((name, _)) = settings
            .hooks
            .iter()
            .find(|(name, spec)| wanted(name) && is_python(spec))
        {
            return Err(LoadError::Other(format!(
                "the config file's {name} hook is Python and runs only around a Python app; '{}' is a \
                 native app: export {name} from a library instead",
                settings.app
            )));
        }
    }
    let request_hooks: Vec<(String, String)> = settings
        .hooks
        .iter()
        .filter(|(name, spec)| wanted(name) && !is_python(spec))
        .cloned()
        .collect();
    if request_hooks.is_empty() {
        return Ok(app);
    }
    let search = SearchPath::new(settings.chdir.clone(), settings.app_path.clone());
    let hooks = LoadedHooks::load(&request_hooks, &search)?;
    Ok(with_request_hooks(app, Arc::new(hooks)))
}

/// Hooks exported by app libraries.
#[derive(Debug)]
pub struct LibraryHooks {
    hooks: LoadedHooks,
}

fn arbiter_info(arbiter: &ArbiterView<'_>) -> ArbiterInfo {
    ArbiterInfo {
        pid: arbiter.pid,
        num_workers: u32::try_from(arbiter.num_workers).unwrap_or(u32::MAX),
        worker_class: arbiter.settings.worker_class.clone(),
        app: arbiter.settings.app.clone(),
    }
}

fn worker_info(worker: &WorkerView) -> WorkerInfoView {
    WorkerInfoView {
        pid: worker.pid,
        age: worker.age,
        exit_status: worker.exit_code,
    }
}

impl LibraryHooks {
    fn fire(&self, hook: HookName, arbiter: Option<&ArbiterView<'_>>, worker: Option<&WorkerView>) {
        if !self.hooks.has(hook) {
            return;
        }
        let mut event = HookEvent::new(hook);
        event.arbiter = arbiter.map(arbiter_info);
        event.worker = worker.map(worker_info);
        self.send(&event);
    }

    fn send(&self, event: &HookEvent) {
        if let Err(err) = self.hooks.fire(event) {
            tracing::error!("exception in {} hook: {}", event.hook, err.message);
        }
    }
}

impl Hooks for LibraryHooks {
    fn on_starting(&self, arbiter: &ArbiterView<'_>) {
        self.fire(HookName::OnStarting, Some(arbiter), None);
    }
    fn when_ready(&self, arbiter: &ArbiterView<'_>) {
        self.fire(HookName::WhenReady, Some(arbiter), None);
    }
    fn pre_fork(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.fire(HookName::PreFork, Some(arbiter), Some(worker));
    }
    fn post_fork(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.fire(HookName::PostFork, Some(arbiter), Some(worker));
    }
    fn post_worker_init(&self, worker: &WorkerView) {
        self.fire(HookName::PostWorkerInit, None, Some(worker));
    }
    fn worker_int(&self, worker: &WorkerView) {
        self.fire(HookName::WorkerInt, None, Some(worker));
    }
    fn worker_abort(&self, worker: &WorkerView) {
        self.fire(HookName::WorkerAbort, None, Some(worker));
    }
    fn has_worker_int(&self) -> bool {
        self.hooks.has(HookName::WorkerInt)
    }
    fn has_worker_abort(&self) -> bool {
        self.hooks.has(HookName::WorkerAbort)
    }
    fn worker_exit(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.fire(HookName::WorkerExit, Some(arbiter), Some(worker));
    }
    fn child_exit(&self, arbiter: &ArbiterView<'_>, worker: &WorkerView) {
        self.fire(HookName::ChildExit, Some(arbiter), Some(worker));
    }
    fn nworkers_changed(&self, arbiter: &ArbiterView<'_>, new: usize, old: Option<usize>) {
        if !self.hooks.has(HookName::NworkersChanged) {
            return;
        }
        let mut event = HookEvent::new(HookName::NworkersChanged);
        event.arbiter = Some(arbiter_info(arbiter));
        event.new_value = new as u64;
        event.old_value = old.map(|old| old as u64);
        self.send(&event);
    }
    fn on_reload(&self, arbiter: &ArbiterView<'_>) {
        self.fire(HookName::OnReload, Some(arbiter), None);
    }
    fn on_exit(&self, arbiter: &ArbiterView<'_>) {
        self.fire(HookName::OnExit, Some(arbiter), None);
    }
    fn pre_exec(&self, arbiter: &ArbiterView<'_>) {
        self.fire(HookName::PreExec, Some(arbiter), None);
    }
}
