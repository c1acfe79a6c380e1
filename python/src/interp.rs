//! The interpreter's life in this process: start it once (with the
//! operator's virtual environment and without Python's signal handlers),
//! keep one thread state per OS thread, and carry it across `fork()`.
//!
//! This module and `callref` are the crate's only `unsafe`: the CPython
//! calls pyo3 has no safe wrapper for (configured start-up, the fork
//! protocol, pinned thread states).

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use pyo3::ffi;

/// How to start the interpreter.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The virtual environment to honour (`VIRTUAL_ENV`, or the one the
    /// runicorn binary is installed in).
    pub virtual_env: Option<PathBuf>,
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// The `PyGILState_STATE` taken in `before_fork`, released after it
/// (-1: none taken).
static FORK_GIL: AtomicI32 = AtomicI32::new(-1);

/// The interpreter this plugin was built for, `major.minor`.
pub fn built_version() -> String {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string and may
    // be called before the interpreter starts.
    let full = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
    let number = full.split_whitespace().next().unwrap_or("");
    number.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The `version` a venv's `pyvenv.cfg` records, `major.minor`.
fn venv_version(venv: &Path) -> Option<String> {
    let text = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        let key = key.trim();
        (key == "version" || key == "version_info").then(|| {
            value
                .trim()
                .split('.')
                .take(2)
                .collect::<Vec<_>>()
                .join(".")
        })
    })
}

/// The interpreter path of a virtual environment.
fn venv_python(venv: &Path) -> Result<PathBuf, String> {
    if !venv.join("pyvenv.cfg").is_file() {
        return Err(format!(
            "'{}' is not a virtual environment (no pyvenv.cfg); activate the right one, or unset VIRTUAL_ENV",
            venv.display()
        ));
    }
    let built = built_version();
    if let Some(found) = venv_version(venv) {
        if found != built {
            return Err(format!(
                "the virtual environment '{}' is Python {found}, but runicorn's Python support is built for \
                 Python {built}; install runicorn into that environment (pip install runicorn) or use a \
                 Python {built} environment",
                venv.display()
            ));
        }
    }
    ["bin/python", "bin/python3", &format!("bin/python{built}")]
        .iter()
        .map(|name| venv.join(name))
        .find(|path| path.exists())
        .ok_or_else(|| {
            format!(
                "the virtual environment '{}' has no bin/python",
                venv.display()
            )
        })
}

/// Start the interpreter once, then release the GIL so that any thread may
/// attach. Python's own signal handlers are not installed: SIGINT, SIGTERM
/// and the rest stay runicorn's.
pub fn start(options: &StartOptions) -> Result<(), String> {
    if STARTED.load(Ordering::Acquire) {
        return Ok(());
    }
    let executable = match &options.virtual_env {
        Some(venv) => Some(venv_python(venv)?),
        None => None,
    };
    let executable = executable
        .map(|path| CString::new(path.to_string_lossy().as_bytes()).map_err(|err| err.to_string()))
        .transpose()?;
    // SAFETY: the PyConfig is initialised by PyConfig_InitPythonConfig before
    // any field is read or written, cleared once, and the interpreter is
    // started at most once (guarded by STARTED, and the plugin's entries run
    // on the single thread of a process that has not started Python yet).
    unsafe {
        let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let config = config.assume_init_mut();
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let mut status = ffi::PyStatus_Ok();
        if let Some(executable) = &executable {
            status =
                ffi::PyConfig_SetBytesString(config, &mut config.executable, executable.as_ptr());
            if ffi::PyStatus_Exception(status) == 0 {
                status = ffi::PyConfig_SetBytesString(
                    config,
                    &mut config.program_name,
                    executable.as_ptr(),
                );
            }
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(config);
        }
        ffi::PyConfig_Clear(config);
        if ffi::PyStatus_Exception(status) != 0 {
            let message = if status.err_msg.is_null() {
                "unknown error".to_owned()
            } else {
                CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(format!("Python failed to start: {message}"));
        }
        // The main thread keeps its thread state; the GIL is free.
        ffi::PyEval_SaveThread();
    }
    STARTED.store(true, Ordering::Release);
    Ok(())
}

/// Whether the interpreter runs in this process.
pub fn started() -> bool {
    STARTED.load(Ordering::Acquire)
}

thread_local! {
    static PINNED: () = pin_thread_state();
}

/// Give the calling thread a thread state that lives as long as the
/// thread: without it every attach would create and destroy one (slow, and
/// `threading.local` data would not survive between requests).
fn pin_thread_state() {
    // SAFETY: the interpreter is started (callers check); Ensure gives this
    // thread a state and the GIL, SaveThread releases the GIL and keeps the
    // state, whose gilstate counter stays at one, so later Ensure/Release
    // pairs never delete it.
    unsafe {
        ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
}

/// Make sure this thread has its pinned thread state (cheap after the first
/// call on a thread).
pub fn pin_thread() {
    if started() {
        PINNED.with(|()| ());
    }
}

/// Just before `fork()`: take the GIL and Python's fork locks, so that the
/// child starts from a consistent interpreter (as `os.fork()` does).
pub fn before_fork() {
    if !started() {
        return;
    }
    // SAFETY: the interpreter runs; this thread takes the GIL (Ensure) and
    // then runs the before-fork protocol with it held, as os.fork does.
    unsafe {
        let state = ffi::PyGILState_Ensure();
        FORK_GIL.store(state as i32, Ordering::Relaxed);
        ffi::PyOS_BeforeFork();
    }
}

fn release_fork_gil() {
    let state = FORK_GIL.swap(-1, Ordering::Relaxed);
    let state = match state {
        0 => ffi::PyGILState_STATE::PyGILState_LOCKED,
        1 => ffi::PyGILState_STATE::PyGILState_UNLOCKED,
        _ => return,
    };
    // SAFETY: paired with the Ensure in `before_fork` on this thread.
    unsafe { ffi::PyGILState_Release(state) };
}

/// In the parent after `fork()`.
pub fn after_fork_parent() {
    if !started() || FORK_GIL.load(Ordering::Relaxed) < 0 {
        return;
    }
    // SAFETY: paired with `before_fork`, GIL held by this thread.
    unsafe { ffi::PyOS_AfterFork_Parent() };
    release_fork_gil();
}

/// In the child after `fork()`: reinitialise the interpreter's locks and
/// thread states, then release the GIL.
pub fn after_fork_child() {
    if !started() || FORK_GIL.load(Ordering::Relaxed) < 0 {
        return;
    }
    // SAFETY: paired with `before_fork` in the parent; the only thread of
    // the child holds the GIL.
    unsafe { ffi::PyOS_AfterFork_Child() };
    release_fork_gil();
}
