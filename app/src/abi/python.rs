//! The Python plugin: the table `librunicorn_python.so` exports, and the
//! host's safe handle on it.
//!
//! The embedded CPython lives in its own shared library so that a runicorn
//! binary starts and serves built-in and native apps on a machine without
//! libpython: the plugin (and, through it, libpython) is opened only when a
//! Python app or a Python config file is asked for. The plugin exports one
//! data symbol, [`RC_PYTHON_PLUGIN_SYMBOL`], an [`RcPythonPlugin`] table that
//! starts with the usual [`RcObjectHeader`]. Apps it loads are ordinary
//! [`RcApp`] tables, served by [`DylibApp`] like any library app; settings
//! and hook contexts cross as JSON text, so no Rust type crosses.
//!
//! The `runicorn` that `pip install` builds (pyproject.toml: `runicorn-cli`'s
//! `embedded-python` feature) links the same crate into the binary instead,
//! and takes its table by reference ([`PythonPlugin::linked`]): that binary
//! lives in a virtual environment, whose interpreter it links and serves
//! with, and opens no library.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

use super::errno::ErrorBuffer;
use super::types::{RcApp, RcErrorBuf, RcObjectHeader, RcStr, RC_ABI_VERSION, RC_MAGIC, RC_OK};
use super::DylibApp;
use crate::{Application, LoadError};

/// The kind of the Python plugin's table.
pub const RC_KIND_PYTHON_PLUGIN: u32 = 5;
/// The symbol the plugin exports its table under.
pub const RC_PYTHON_PLUGIN_SYMBOL: &str = "runicorn_python_plugin";
/// The plugin's file name.
pub const PLUGIN_FILE: &str = "librunicorn_python.so";
/// Status of `load_app` when the module was not found (the host then says
/// where it looked for a native library too).
pub const RC_NOT_FOUND: i32 = 3;

/// Receives a piece of output text (`ctx` is the host's buffer).
pub type RcSinkFn = unsafe extern "C" fn(ctx: *mut c_void, data: RcStr);
/// Writes one line to the error log at an `RC_LOG_*` level.
pub type RcLogFn = unsafe extern "C" fn(level: u32, message: RcStr);

/// The plugin's table. Every entry runs on the calling thread and returns
/// with no Python thread started by it still running.
#[repr(C)]
#[derive(Debug)]
pub struct RcPythonPlugin {
    /// Magic, version, kind [`RC_KIND_PYTHON_PLUGIN`], size.
    pub header: RcObjectHeader,
    /// Start the interpreter in this process, once; `options` is JSON
    /// (`virtual_env`, `pythonpath`, `settings`, ...). Later calls update
    /// the settings hooks see and do nothing else.
    pub init: unsafe extern "C" fn(options: RcStr, log: RcLogFn, error: *mut RcErrorBuf) -> i32,
    /// Import the WSGI app named by `spec` (Gunicorn's `module:variable`
    /// forms); `*out` receives a table the plugin owns for the rest of the
    /// process. [`RC_NOT_FOUND`] when the module does not exist.
    pub load_app:
        unsafe extern "C" fn(spec: RcStr, out: *mut *const RcApp, error: *mut RcErrorBuf) -> i32,
    /// Execute a Gunicorn config file; its settings and the names of the
    /// hooks it defines go to `sink` as one JSON object.
    pub load_config: unsafe extern "C" fn(
        path: RcStr,
        sink: RcSinkFn,
        ctx: *mut c_void,
        error: *mut RcErrorBuf,
    ) -> i32,
    /// Call the config file's hook `name` with a JSON context.
    pub call_hook: unsafe extern "C" fn(name: RcStr, context: RcStr, error: *mut RcErrorBuf) -> i32,
    /// Just before `fork()` in a process where the interpreter runs.
    pub before_fork: unsafe extern "C" fn(),
    /// In the parent, just after `fork()`.
    pub after_fork_parent: unsafe extern "C" fn(),
    /// In the child, just after `fork()`, before anything else.
    pub after_fork_child: unsafe extern "C" fn(),
}

// SAFETY: the table is immutable plain data and function pointers.
unsafe impl Sync for RcPythonPlugin {}

/// Where the plugin is looked for: `$RUNICORN_PYTHON_PLUGIN` alone when it
/// is set (an explicit choice is not second-guessed), else next to the
/// running binary, then `../lib/runicorn/` from it.
pub fn plugin_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("RUNICORN_PYTHON_PLUGIN").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(path));
        return candidates;
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join(PLUGIN_FILE));
        // `cargo test` runs test binaries from target/debug/deps.
        if dir.ends_with("deps") {
            if let Some(parent) = dir.parent() {
                candidates.push(parent.join(PLUGIN_FILE));
            }
        }
        candidates.push(dir.join("../lib/runicorn").join(PLUGIN_FILE));
    }
    candidates
}

/// The host's log function handed to the plugin: one line to the error
/// log through `tracing`, at `RC_LOG_*` levels (4 is critical).
///
/// # Safety
/// `message` borrows bytes valid for the call.
pub unsafe extern "C" fn log_to_tracing(level: u32, message: RcStr) {
    // SAFETY: the plugin passes bytes valid for this call.
    let text = String::from_utf8_lossy(unsafe { message.as_bytes() });
    match level {
        0 => tracing::debug!("{text}"),
        1 => tracing::info!("{text}"),
        2 => tracing::warn!("{text}"),
        _ => tracing::error!("{text}"),
    }
}

/// Whether `header` is a Python plugin table of this runicorn.
fn check_header(header: &RcObjectHeader, path: &Path) -> Result<(), String> {
    if header.magic != RC_MAGIC
        || header.abi_version != RC_ABI_VERSION
        || header.kind != RC_KIND_PYTHON_PLUGIN
        || header.struct_size != size_of::<RcPythonPlugin>() as u64
    {
        return Err(format!(
            "'{}' was built for another runicorn (ABI v{}, kind {}, {} bytes); rebuild it with this one \
             (`cargo build -p runicorn-python`)",
            path.display(),
            header.abi_version,
            header.kind,
            header.struct_size
        ));
    }
    Ok(())
}

/// The opened plugin (a library, or the table linked into the binary).
/// Never closed.
#[derive(Debug, Clone, Copy)]
pub struct PythonPlugin {
    table: &'static RcPythonPlugin,
    path: &'static Path,
}

/// # Safety
/// The plugin calls it during `load_config`, with the `ctx` it was lent
/// (a `Vec<u8>`) and a string valid for the call.
unsafe extern "C" fn sink_into_vec(ctx: *mut c_void, data: RcStr) {
    // SAFETY: `ctx` is the `Vec<u8>` that `load_config` lent for this call.
    let out = unsafe { &mut *ctx.cast::<Vec<u8>>() };
    // SAFETY: the plugin passes bytes valid for this call.
    out.extend_from_slice(unsafe { data.as_bytes() });
}

/// Room for a Python traceback in an error message.
const PY_ERROR_CAPACITY: usize = 64 * 1024;

fn python_error(what: &str, error: &ErrorBuffer) -> String {
    format!("{what}: {}", error.message("no message"))
}

impl PythonPlugin {
    /// Find and open the plugin, or say where it was looked for and how to
    /// get it.
    pub fn open() -> Result<PythonPlugin, String> {
        let candidates = plugin_candidates();
        let Some(path) = candidates.iter().find(|path| path.is_file()) else {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(format!(
                "runicorn's Python support is not installed: no {PLUGIN_FILE} in {}; build it with \
                 `cargo build -p runicorn-python` (it lands next to the runicorn binary), install runicorn \
                 with pip into your virtual environment, or set RUNICORN_PYTHON_PLUGIN to its path",
                looked.join(", ")
            ));
        };
        Self::open_path(path)
    }

    /// Open the plugin at `path`.
    pub fn open_path(path: &Path) -> Result<PythonPlugin, String> {
        // SAFETY: opening the plugin runs its initializers (and libpython's);
        // it is runicorn's own library. RTLD_GLOBAL makes libpython's symbols
        // visible to the C extension modules Python itself opens later
        // (numpy, psycopg), which expect to find them in the process.
        let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|err| {
            // libloading keeps dlerror()'s text (the missing library) in the source.
            let reason = std::error::Error::source(&err).map_or_else(|| err.to_string(), ToString::to_string);
            format!(
                "cannot load runicorn's Python support '{}': {reason}; it needs the libpython it was built \
                 against (install that Python, or add its lib directory to LD_LIBRARY_PATH)",
                path.display()
            )
        })?;
        let library: &'static Library = Box::leak(Box::new(library));
        // SAFETY: we only take the symbol's address here.
        let symbol =
            unsafe { library.get::<*const RcPythonPlugin>(RC_PYTHON_PLUGIN_SYMBOL.as_bytes()) }
                .map_err(|err| {
                    format!(
                        "'{}' is not runicorn's Python support: {err}",
                        path.display()
                    )
                })?;
        let pointer: *const RcPythonPlugin = *symbol;
        if pointer.is_null() {
            return Err(format!("'{}' exports a null plugin table", path.display()));
        }
        // SAFETY: the symbol is runicorn's plugin table; reading its header
        // first is the check that it is one of this version.
        let header = unsafe { pointer.cast::<RcObjectHeader>().read_unaligned() };
        check_header(&header, path)?;
        // SAFETY: checked above; the library is never unloaded.
        let table = unsafe { &*pointer };
        let path: &'static Path = Box::leak(path.to_path_buf().into_boxed_path());
        Ok(PythonPlugin { table, path })
    }

    /// The plugin linked into this binary (the `runicorn` that `pip
    /// install` builds: `runicorn-cli`'s `embedded-python` feature), whose
    /// table is `runicorn_python::exports::runicorn_python_plugin`. Its
    /// `path` is the running executable. The header is checked as a
    /// library's would be.
    pub fn linked(table: &'static RcPythonPlugin) -> Result<PythonPlugin, String> {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("runicorn"));
        check_header(&table.header, &exe)?;
        let path: &'static Path = Box::leak(exe.into_boxed_path());
        Ok(PythonPlugin { table, path })
    }

    /// The plugin's file.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// Start (or update) the interpreter with JSON `options`; its log
    /// lines go to `tracing`.
    pub fn init(&self, options: &str) -> Result<(), String> {
        self.init_with_log(options, log_to_tracing)
    }

    /// [`PythonPlugin::init`] with another log function.
    pub fn init_with_log(&self, options: &str, log: RcLogFn) -> Result<(), String> {
        let mut error = ErrorBuffer::with_capacity(PY_ERROR_CAPACITY);
        // SAFETY: the table was checked at open; the arguments live for the call.
        let status =
            unsafe { (self.table.init)(RcStr::new(options.as_bytes()), log, error.as_raw()) };
        if status == RC_OK {
            Ok(())
        } else {
            Err(python_error("cannot start the Python interpreter", &error))
        }
    }

    /// Import the WSGI app `spec`. `looked_natively` lists the library
    /// files tried first, for the error when the module is nowhere.
    pub fn load_app(&self, spec: &str, looked_natively: &str) -> Result<Application, LoadError> {
        let mut error = ErrorBuffer::with_capacity(PY_ERROR_CAPACITY);
        let mut out: *const RcApp = std::ptr::null();
        // SAFETY: as in `init`; `out` is a valid slot.
        let status =
            unsafe { (self.table.load_app)(RcStr::new(spec.as_bytes()), &mut out, error.as_raw()) };
        match status {
            RC_OK if !out.is_null() => {
                // SAFETY: the plugin returns a table it owns for the rest of
                // the process, made by runicorn-app's own `leak_table`.
                let table: &'static RcApp = unsafe { &*out };
                Ok(Application {
                    name: spec.to_owned(),
                    sync: Arc::new(DylibApp::new(table)),
                    asynch: None,
                })
            }
            RC_NOT_FOUND => {
                let message = error.message("No module named");
                Err(LoadError::Other(format!(
                    "{message}; {looked_natively}; to serve a native app build it as a cdylib, to serve a \
                     Python app put its directory on --chdir or --pythonpath"
                )))
            }
            RC_OK => Err(LoadError::Other(format!(
                "'{spec}': the plugin returned no app"
            ))),
            _ => Err(LoadError::Other(
                error.message("the Python app failed to load"),
            )),
        }
    }

    /// Execute a Gunicorn config file; its settings and hook names as JSON.
    pub fn load_config(&self, path: &Path) -> Result<String, String> {
        let mut error = ErrorBuffer::with_capacity(PY_ERROR_CAPACITY);
        let mut out: Vec<u8> = Vec::new();
        let path_text = path.to_string_lossy();
        // SAFETY: as in `init`; `out` outlives the call and `sink_into_vec`
        // is the only user of it.
        let status = unsafe {
            (self.table.load_config)(
                RcStr::new(path_text.as_bytes()),
                sink_into_vec,
                (&mut out as *mut Vec<u8>).cast(),
                error.as_raw(),
            )
        };
        if status == RC_OK {
            String::from_utf8(out)
                .map_err(|_| "the config file's settings are not UTF-8".to_owned())
        } else {
            Err(error.message("the config file failed"))
        }
    }

    /// Call hook `name` with a JSON context.
    pub fn call_hook(&self, name: &str, context: &str) -> Result<(), String> {
        let mut error = ErrorBuffer::with_capacity(PY_ERROR_CAPACITY);
        // SAFETY: as in `init`.
        let status = unsafe {
            (self.table.call_hook)(
                RcStr::new(name.as_bytes()),
                RcStr::new(context.as_bytes()),
                error.as_raw(),
            )
        };
        if status == RC_OK {
            Ok(())
        } else {
            Err(error.message("the hook failed"))
        }
    }

    /// Just before `fork()`.
    pub fn before_fork(&self) {
        // SAFETY: the entry takes no arguments; checked table.
        unsafe { (self.table.before_fork)() }
    }

    /// In the parent, just after `fork()`.
    pub fn after_fork_parent(&self) {
        // SAFETY: the entry takes no arguments and the table was checked when
        // the plugin was opened.
        unsafe { (self.table.after_fork_parent)() }
    }

    /// In the child, just after `fork()`.
    pub fn after_fork_child(&self) {
        // SAFETY: the entry takes no arguments and the table was checked when
        // the plugin was opened.
        unsafe { (self.table.after_fork_child)() }
    }
}
