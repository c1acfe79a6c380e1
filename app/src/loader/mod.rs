//! Gunicorn's `module:variable`, for shared libraries.
//!
//! Three steps, one file each: `spec` parses the spec, `search` finds the
//! library's file, and `crate::abi::library` (inside the `unsafe` fence)
//! opens it and checks the exported object before it is used. This module
//! puts them together and has no `unsafe` of its own.
//!
//! `myapp:app` searches `--chdir`, then the `--app-path` entries, then the
//! current directory for `libmyapp.so` or `myapp.so`; a module containing a
//! `/` or ending in `.so` is a path (`./target/release/libmyapp.so:app`).
//! `myapp:create_app()` and `myapp:create_app(key=value, ...)` call an
//! exported factory with string arguments; `builtin:NAME` is a compiled-in
//! app. Before calling anything the loader checks the exported object's
//! magic, ABI version, kind and size, and every failure is a [`LoadError`]
//! with Gunicorn's words, the cause and the fix.
//!
//! Libraries are opened with `RTLD_NOW | RTLD_LOCAL` and never closed: a
//! table handed to a worker must stay valid for the life of the process.
//! Replace a library by rename (`cp new.so lib.so.tmp && mv lib.so.tmp
//! lib.so`), never by writing over it in place: a process that has it
//! mapped would see its code change under it and crash; a rename leaves the
//! old inode intact for the old workers while new workers (after HUP) open
//! the new file.

mod search;
mod spec;

use std::sync::Arc;

use crate::abi::hook::RcHook;
use crate::abi::library::{call_factory, find_table, open_library, AbiObject};
use crate::abi::types::{RcApp, RcFactory};
use crate::abi::worker_class::{LoadedWorkerClass, RcWorkerClass};
use crate::abi::DylibApp;
use crate::{Application, LoadError};
pub use search::{find_library, SearchPath};
use spec::bad_spec;
pub use spec::{parse_spec, Spec};

/// Open the library of `module` and check its object `object`, a `T`.
fn open_object<T: AbiObject>(
    module: &str,
    object: &str,
    search: &SearchPath,
) -> Result<&'static T, LoadError> {
    let path = find_library(module, search)?;
    let library = open_library(&path)?;
    find_table(library, &path, module, object)
}

/// Load the app named by `spec`: the one function the binary calls (for
/// `builtin:NAME` too). `init_worker` is not called here.
pub fn load(spec: &str, search: &SearchPath) -> Result<Application, LoadError> {
    let parsed = parse_spec(spec)?;
    if parsed.module == crate::builtin::MODULE {
        if parsed.args.is_some() {
            return Err(bad_spec(
                spec,
                "built-in apps take no arguments; write 'builtin:NAME'",
            ));
        }
        let mut app = crate::builtin::lookup(&parsed.object)?;
        app.name = spec.to_owned();
        return Ok(app);
    }
    let table: &'static RcApp = match &parsed.args {
        None => open_object::<RcApp>(&parsed.module, &parsed.object, search)?,
        Some(args) => {
            let factory = open_object::<RcFactory>(&parsed.module, &parsed.object, search)?;
            call_factory(spec, factory, args)?
        }
    };
    Ok(Application {
        name: spec.to_owned(),
        sync: Arc::new(DylibApp::new(table)),
        asynch: None,
    })
}

/// Whether a `-k` value names a library worker class rather than a built-in.
pub fn is_library_worker_class(value: &str) -> bool {
    value.contains(':') || value.contains('/') || value.ends_with(".so")
}

/// Load a worker class from `lib:Symbol` (or `./path/lib.so:Symbol`).
pub fn load_worker_class(spec: &str, search: &SearchPath) -> Result<LoadedWorkerClass, LoadError> {
    let parsed = parse_spec(spec)?;
    if parsed.args.is_some() {
        return Err(bad_spec(
            spec,
            "a worker class takes no arguments; write 'lib:Symbol'",
        ));
    }
    let table = open_object::<RcWorkerClass>(&parsed.module, &parsed.object, search)?;
    Ok(LoadedWorkerClass::new(table))
}

/// Open a hook object (see `crate::hooks`).
pub(crate) fn open_hook(spec: &str, search: &SearchPath) -> Result<&'static RcHook, LoadError> {
    let parsed = parse_spec(spec)?;
    if parsed.args.is_some() {
        return Err(bad_spec(
            spec,
            "a hook takes no arguments; write 'lib:function'",
        ));
    }
    open_object::<RcHook>(&parsed.module, &parsed.object, search)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn missing_module_says_where_it_looked() {
        let dir = std::env::temp_dir();
        let search = SearchPath::new(
            Some(dir.clone()),
            vec![PathBuf::from("/nonexistent-app-path")],
        );
        let err = load("no_such_module_xyz:app", &search).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("No module named 'no_such_module_xyz'"),
            "{message}"
        );
        assert!(message.contains("libno_such_module_xyz.so"), "{message}");
        assert!(message.contains("/nonexistent-app-path"), "{message}");
        assert!(
            !matches!(err, LoadError::Boot(_)),
            "a load error (exit 4): {err}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_library_is_refused() {
        let dir = std::env::temp_dir().join(format!("runicorn-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libbroken.so"), b"not an elf file").unwrap();
        let search = SearchPath::new(Some(dir.clone()), Vec::new());
        let message = load("broken:app", &search).unwrap_err().to_string();
        assert!(message.contains("cannot open"), "{message}");
        assert!(message.contains("cdylib"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn builtin_apps_resolve() {
        let app = load("builtin:hello", &SearchPath::default()).unwrap();
        assert_eq!(app.name, "builtin:hello");
        assert!(load("builtin:nope", &SearchPath::default()).is_err());
    }
}
