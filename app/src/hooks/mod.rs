//! Gunicorn's server hooks, exported by an app library and named in the
//! config (`post_fork = "myapp:post_fork"`).
//!
//! Each hook is an exported [`RcHook`] table (`export_hook!` in Rust,
//! `RC_EXPORT_HOOK` in C) whose entry receives one [`RcHookEvent`]: which
//! hook, and `#[repr(C)]` views of the arbiter, the worker and the request
//! as far as they apply. Those tables, the call across and the library
//! side's shim live in `crate::abi::hook`, inside the `unsafe` fence; this
//! module is the safe side: [`HookName`], [`HookEvent`], and [`Hooks`], the
//! loaded ones. Who calls what:
//!
//! - the master-side hooks and `post_fork`, `post_worker_init`,
//!   `worker_exit`: the arbiter, through `cli/src/hooks.rs` (an impl of
//!   `master::Hooks`);
//! - `pre_request`, `post_request`: the app itself, wrapped by
//!   [`with_request_hooks`] when it is loaded, so every worker class fires
//!   them with no code of its own;
//! - `worker_int`, `worker_abort`: the master's child-side code, under every
//!   worker class (library ones too). Gunicorn runs them inside the worker's
//!   SIGINT/SIGQUIT and SIGABRT handlers; library code is not
//!   async-signal-safe, so here the handler only writes a byte to a pipe and
//!   a watcher thread of the worker runs the hook, then the quick stop
//!   (exit 0) or exit 1. A hung hook dies by the master's SIGKILL.
//!
//! A failing or panicking hook is logged and otherwise ignored.

use std::fmt;

use crate::loader::{open_hook, SearchPath};

mod request;

pub use crate::abi::hook::{
    event_from_raw, hook_shim, RcArbiterView, RcHook, RcHookEvent, RcWorkerView,
};
use crate::{AppError, LoadError, RequestHead};
pub use request::with_request_hooks;

/// Gunicorn's server hooks, in the order of a server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum HookName {
    /// Master, before the listeners are bound.
    OnStarting = 1,
    /// Master, on HUP.
    OnReload = 2,
    /// Master, once the listeners are bound.
    WhenReady = 3,
    /// Master, before each fork.
    PreFork = 4,
    /// Worker, right after fork.
    PostFork = 5,
    /// Worker, after the app loaded and `init_worker` ran.
    PostWorkerInit = 6,
    /// Worker, on SIGINT or SIGQUIT.
    WorkerInt = 7,
    /// Worker, on SIGABRT (a timeout).
    WorkerAbort = 8,
    /// Worker, before each request.
    PreRequest = 9,
    /// Worker, after each request.
    PostRequest = 10,
    /// Master, after a worker was reaped.
    ChildExit = 11,
    /// Worker, as it exits.
    WorkerExit = 12,
    /// Master, when the target worker count changes.
    NworkersChanged = 13,
    /// Master, just before it exits.
    OnExit = 14,
    /// The master's forked child on USR2, just before it executes the new
    /// binary.
    PreExec = 15,
}

impl HookName {
    /// All fifteen, in order.
    pub const ALL: [HookName; 15] = [
        HookName::OnStarting,
        HookName::OnReload,
        HookName::WhenReady,
        HookName::PreFork,
        HookName::PostFork,
        HookName::PostWorkerInit,
        HookName::WorkerInt,
        HookName::WorkerAbort,
        HookName::PreRequest,
        HookName::PostRequest,
        HookName::ChildExit,
        HookName::WorkerExit,
        HookName::NworkersChanged,
        HookName::OnExit,
        HookName::PreExec,
    ];

    /// Gunicorn's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            HookName::OnStarting => "on_starting",
            HookName::OnReload => "on_reload",
            HookName::WhenReady => "when_ready",
            HookName::PreFork => "pre_fork",
            HookName::PostFork => "post_fork",
            HookName::PostWorkerInit => "post_worker_init",
            HookName::WorkerInt => "worker_int",
            HookName::WorkerAbort => "worker_abort",
            HookName::PreRequest => "pre_request",
            HookName::PostRequest => "post_request",
            HookName::ChildExit => "child_exit",
            HookName::WorkerExit => "worker_exit",
            HookName::NworkersChanged => "nworkers_changed",
            HookName::OnExit => "on_exit",
            HookName::PreExec => "pre_exec",
        }
    }

    /// The hook called `name`, if any.
    pub fn from_name(name: &str) -> Option<HookName> {
        HookName::ALL.into_iter().find(|hook| hook.as_str() == name)
    }

    pub(crate) fn from_raw(raw: u32) -> Option<HookName> {
        HookName::ALL.into_iter().find(|hook| *hook as u32 == raw)
    }
}

impl fmt::Display for HookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The arbiter in a hook event, safe side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArbiterInfo {
    /// The master's pid.
    pub pid: u32,
    /// The target number of workers.
    pub num_workers: u32,
    /// The worker class name.
    pub worker_class: String,
    /// The app spec.
    pub app: String,
}

/// The worker in a hook event, safe side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerInfoView {
    /// The worker's pid (0 in `pre_fork`).
    pub pid: u32,
    /// Its spawn order.
    pub age: u64,
    /// Its exit status, when it has one.
    pub exit_status: Option<i32>,
}

/// One hook call, safe side: what `export_hook!` functions receive and what
/// the host passes to [`Hooks::fire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEvent {
    /// Which hook.
    pub hook: HookName,
    /// The arbiter, when it applies.
    pub arbiter: Option<ArbiterInfo>,
    /// The worker, when it applies.
    pub worker: Option<WorkerInfoView>,
    /// The request (`pre_request`, `post_request`).
    pub request: Option<RequestHead>,
    /// The response status (`post_request`), else 0.
    pub status: u16,
    /// `nworkers_changed`: the new count.
    pub new_value: u64,
    /// `nworkers_changed`: the old count (`None` at start).
    pub old_value: Option<u64>,
}

impl HookEvent {
    /// An event of `hook` with nothing attached.
    pub fn new(hook: HookName) -> Self {
        HookEvent {
            hook,
            arbiter: None,
            worker: None,
            request: None,
            status: 0,
            new_value: 0,
            old_value: None,
        }
    }
}

/// A hook loaded from a library.
#[derive(Debug, Clone)]
pub struct LoadedHook {
    /// Which hook it serves.
    pub hook: HookName,
    /// The `module:function` it came from.
    pub spec: String,
    table: &'static RcHook,
}

impl LoadedHook {
    /// Wrap a checked hook table (the loader does this; tests too).
    pub fn from_table(hook: HookName, spec: impl Into<String>, table: &'static RcHook) -> Self {
        LoadedHook {
            hook,
            spec: spec.into(),
            table,
        }
    }

    /// Call the hook with `event`.
    pub fn call(&self, event: &HookEvent) -> Result<(), AppError> {
        crate::abi::hook::call(self.table, event, &self.spec)
    }
}

/// The hooks named in the config, loaded.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    loaded: Vec<LoadedHook>,
}

impl Hooks {
    /// Load every `(hook name, module:function)` pair.
    pub fn load(configured: &[(String, String)], search: &SearchPath) -> Result<Hooks, LoadError> {
        let mut loaded = Vec::new();
        for (name, spec) in configured {
            let Some(hook) = HookName::from_name(name) else {
                let names: Vec<&str> = HookName::ALL.iter().map(|hook| hook.as_str()).collect();
                return Err(LoadError::Other(format!(
                    "unknown server hook '{name}'; the hooks are {}",
                    names.join(", ")
                )));
            };
            let table = open_hook(spec, search)?;
            loaded.push(LoadedHook {
                hook,
                spec: spec.clone(),
                table,
            });
        }
        Ok(Hooks { loaded })
    }

    /// Hooks already loaded (tests, embedders).
    pub fn from_loaded(loaded: Vec<LoadedHook>) -> Hooks {
        Hooks { loaded }
    }

    /// Whether a hook of this name is configured (to skip building events).
    pub fn has(&self, hook: HookName) -> bool {
        self.loaded.iter().any(|loaded| loaded.hook == hook)
    }

    /// Call every hook configured for `event.hook`; the first error is returned
    /// after all have run.
    pub fn fire(&self, event: &HookEvent) -> Result<(), AppError> {
        let mut first_error = None;
        for loaded in self
            .loaded
            .iter()
            .filter(|loaded| loaded.hook == event.hook)
        {
            if let Err(err) = loaded.call(event) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
