//! Gunicorn's `module:variable`, for shared libraries.
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::abi::errno::ErrorBuffer;
use crate::abi::types::{
    RcApp, RcFactory, RcField, RcObjectHeader, RcStr, RC_ABI_VERSION, RC_KIND_APP, RC_KIND_FACTORY,
    RC_KIND_HOOK, RC_KIND_WORKER_CLASS, RC_MAGIC,
};
use crate::abi::worker_class::{LoadedWorkerClass, RcWorkerClass};
use crate::abi::DylibApp;
use crate::{Application, LoadError};

/// Where module names are looked up: `--chdir`, `--app-path`, then the cwd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPath {
    /// `--chdir`, searched first.
    pub chdir: Option<PathBuf>,
    /// `--app-path` entries, searched next, in order.
    pub app_path: Vec<PathBuf>,
}

impl SearchPath {
    /// A search path from the two settings.
    pub fn new(chdir: Option<PathBuf>, app_path: Vec<PathBuf>) -> Self {
        SearchPath { chdir, app_path }
    }

    /// The directories searched, in order, without repeats.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let candidates = self
            .chdir
            .iter()
            .cloned()
            .chain(self.app_path.iter().cloned())
            .chain([cwd.clone()]);
        for dir in candidates {
            let dir = if dir.is_relative() {
                cwd.join(dir)
            } else {
                dir
            };
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }
}

/// A parsed `module:object` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The module: a library name (`myapp`), a path, or `builtin`.
    pub module: String,
    /// The exported symbol.
    pub object: String,
    /// `Some` when the object is called as a factory, with its arguments.
    pub args: Option<Vec<(String, String)>>,
}

fn bad_spec(spec: &str, reason: impl Into<String>) -> LoadError {
    LoadError::BadSpec {
        spec: spec.to_owned(),
        reason: reason.into(),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse `module:object`, `module:factory()` or `module:factory(k=v, ...)`.
/// The module part ends at the first `:` after the last `/`, so paths and
/// argument values may contain colons.
pub fn parse_spec(spec: &str) -> Result<Spec, LoadError> {
    let spec_trimmed = spec.trim();
    let path_end = spec_trimmed
        .find('(')
        .map_or(spec_trimmed.len(), |open| open);
    let last_slash = spec_trimmed[..path_end]
        .rfind('/')
        .map_or(0, |slash| slash + 1);
    let Some(colon) = spec_trimmed[last_slash..]
        .find(':')
        .map(|offset| offset + last_slash)
    else {
        return Err(bad_spec(
            spec,
            "expected 'module:variable', for example 'myapp:app' or 'builtin:hello'",
        ));
    };
    let module = spec_trimmed[..colon].trim();
    let rest = spec_trimmed[colon + 1..].trim();
    if module.is_empty() {
        return Err(bad_spec(spec, "the module (before ':') is empty"));
    }
    let (object, args) = match rest.find('(') {
        None => (rest, None),
        Some(open) => {
            let Some(inner) = rest[open + 1..].strip_suffix(')') else {
                return Err(bad_spec(
                    spec,
                    "the factory call is missing its closing ')'",
                ));
            };
            (rest[..open].trim(), Some(parse_args(spec, inner)?))
        }
    };
    if !is_identifier(object) {
        return Err(bad_spec(
            spec,
            format!("'{object}' is not a symbol name; write 'module:variable' or 'module:factory(key=value)'"),
        ));
    }
    Ok(Spec {
        module: module.to_owned(),
        object: object.to_owned(),
        args,
    })
}

/// Split `k=v, k2="v, 2"` into pairs; values may be quoted with ' or ".
fn parse_args(spec: &str, inner: &str) -> Result<Vec<(String, String)>, LoadError> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ',') => pieces.push(std::mem::take(&mut current)),
            (None, c) => current.push(c),
        }
    }
    if quote.is_some() {
        return Err(bad_spec(spec, "an argument's quote is not closed"));
    }
    pieces.push(current);
    let mut pairs = Vec::new();
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let Some((key, value)) = piece.split_once('=') else {
            return Err(bad_spec(
                spec,
                format!("factory arguments are key=value; '{piece}' has no '='"),
            ));
        };
        let key = key.trim();
        if !is_identifier(key) {
            return Err(bad_spec(spec, format!("'{key}' is not an argument name")));
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        pairs.push((key.to_owned(), unquoted.to_owned()));
    }
    Ok(pairs)
}

/// Whether `module` names a file rather than a library on the search path.
fn is_path(module: &str) -> bool {
    module.contains('/') || module.ends_with(".so")
}

/// Find the library file for `module`, or say where we looked.
pub fn find_library(module: &str, search: &SearchPath) -> Result<PathBuf, LoadError> {
    let mut looked: Vec<PathBuf> = Vec::new();
    if is_path(module) {
        let given = PathBuf::from(module);
        let mut candidates = vec![given.clone()];
        if given.is_relative() {
            candidates.extend(search.dirs().into_iter().map(|dir| dir.join(&given)));
        }
        for candidate in candidates {
            if candidate.is_file() {
                return Ok(candidate);
            }
            looked.push(candidate);
        }
    } else {
        for dir in search.dirs() {
            for file in [format!("lib{module}.so"), format!("{module}.so")] {
                let candidate = dir.join(file);
                if candidate.is_file() {
                    return Ok(candidate);
                }
                looked.push(candidate);
            }
        }
    }
    let looked: Vec<String> = looked
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    Err(LoadError::NoModule {
        module: module.to_owned(),
        hint: format!(
            "; looked for {}; build it as a cdylib (crate-type = [\"cdylib\"]) and pass its directory with \
             --chdir or --app-path, or give a path such as ./target/release/lib{}.so:app",
            looked.join(", "),
            module.trim_start_matches("lib").trim_end_matches(".so")
        ),
    })
}

/// Open a library for the rest of the process (it is never closed).
pub fn open_library(path: &Path) -> Result<&'static Library, LoadError> {
    // SAFETY: opening a library runs its initializers; that is the point of
    // loading an app, and the operator chose the file. RTLD_LOCAL keeps its
    // symbols from interposing on ours.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|err| {
        LoadError::Other(format!(
            "cannot open '{}' as a shared library: {err}; build it with crate-type = [\"cdylib\"] (Rust) or \
             cc -shared -fPIC (C), for this machine's architecture",
            path.display()
        ))
    })?;
    Ok(Box::leak(Box::new(library)))
}

/// The kind name of an object kind, for messages.
fn kind_name(kind: u32) -> &'static str {
    match kind {
        RC_KIND_APP => "an app",
        RC_KIND_FACTORY => "an app factory",
        RC_KIND_HOOK => "a server hook",
        RC_KIND_WORKER_CLASS => "a worker class",
        _ => "an unknown kind of object",
    }
}

/// Exported objects of the library: data symbols big enough to hold a
/// header whose magic is ours. Read from the ELF dynamic symbol table, so
/// nothing is called.
pub fn exported_objects(path: &Path, library: &Library) -> Vec<(String, u32)> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(file) = object::File::parse(&*data) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for symbol in file.dynamic_symbols() {
        if symbol.kind() != SymbolKind::Data
            || symbol.is_undefined()
            || symbol.size() < size_of::<RcObjectHeader>() as u64
        {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        if let Some(header) = header_of(library, name) {
            if header.magic == RC_MAGIC {
                found.push((name.to_owned(), header.kind));
            }
        }
    }
    found.sort();
    found
}

/// Read the header at a data symbol.
fn header_of(library: &Library, name: &str) -> Option<RcObjectHeader> {
    // SAFETY: we only take the symbol's address here; it is not called.
    let symbol = unsafe { library.get::<*const RcObjectHeader>(name.as_bytes()) }.ok()?;
    let pointer: *const RcObjectHeader = *symbol;
    if pointer.is_null() {
        return None;
    }
    // SAFETY: callers only ask for symbols of the dynamic table with at
    // least a header's size, or for the symbol the operator named; the
    // unaligned read tolerates any placement.
    Some(unsafe { pointer.read_unaligned() })
}

/// Find `object` of kind `kind` in the opened library `path` and check its
/// header. Returns the address of the whole object.
pub fn find_object(
    library: &'static Library,
    path: &Path,
    module: &str,
    object: &str,
    kind: u32,
    struct_size: usize,
) -> Result<*const RcObjectHeader, LoadError> {
    // SAFETY: we only take the symbol's address here.
    let symbol = unsafe { library.get::<*const RcObjectHeader>(object.as_bytes()) };
    let Ok(symbol) = symbol else {
        let exported = exported_objects(path, library);
        let hint = if exported.is_empty() {
            format!(
                " '{}' exports no runicorn objects: export one with runicorn_app::export_app!({object}, ...) \
                 (Rust) or RC_EXPORT_APP({object}, ...) (C)",
                path.display()
            )
        } else {
            let names: Vec<String> = exported
                .iter()
                .map(|(name, kind)| format!("'{name}' ({})", kind_name(*kind)))
                .collect();
            format!(
                " It exports {}; write '{module}:NAME' with one of those.",
                names.join(", ")
            )
        };
        return Err(LoadError::NoAttribute {
            attribute: object.to_owned(),
            module: module.to_owned(),
            hint,
        });
    };
    let pointer: *const RcObjectHeader = *symbol;
    if pointer.is_null() {
        return Err(LoadError::Other(format!(
            "'{module}:{object}' is a null symbol, not a runicorn object"
        )));
    }
    // SAFETY: the operator named this symbol as a runicorn object; reading
    // its first 24 bytes is the check that it is one.
    let header = unsafe { pointer.read_unaligned() };
    if header.magic != RC_MAGIC {
        return Err(LoadError::Other(format!(
            "'{module}:{object}' is not a runicorn {}: the symbol exists in '{}' but is not an object exported \
             with runicorn_app::export_app! (Rust) or RC_EXPORT_APP (C); name the exported app instead",
            kind_name(kind).trim_start_matches("an ").trim_start_matches("a "),
            path.display()
        )));
    }
    if header.abi_version != RC_ABI_VERSION {
        return Err(LoadError::Other(format!(
            "ABI mismatch: '{module}:{object}' was built against runicorn app ABI v{}, this runicorn speaks v{}; \
             rebuild the library against runicorn-app {} (cargo build in its crate, or recompile the C app \
             with this runicorn's runicorn.h), or run the runicorn it was built for",
            header.abi_version,
            RC_ABI_VERSION,
            env!("CARGO_PKG_VERSION")
        )));
    }
    if header.kind != kind {
        let fix = match (header.kind, kind) {
            (RC_KIND_FACTORY, RC_KIND_APP) => format!("; call it: '{module}:{object}()'"),
            (RC_KIND_APP, RC_KIND_FACTORY) => {
                format!("; drop the parentheses: '{module}:{object}'")
            }
            _ => String::new(),
        };
        return Err(LoadError::Other(format!(
            "'{module}:{object}' is {}, not {}{fix}",
            kind_name(header.kind),
            kind_name(kind)
        )));
    }
    if header.struct_size != struct_size as u64 {
        return Err(LoadError::Other(format!(
            "ABI mismatch: '{module}:{object}' has a {}-byte table where ABI v{RC_ABI_VERSION} has {struct_size}; \
             rebuild it against this runicorn's runicorn-app or runicorn.h",
            header.struct_size
        )));
    }
    Ok(pointer)
}

/// Open the library of `module` and check its object `object` of `kind`.
fn open_object(
    module: &str,
    object: &str,
    search: &SearchPath,
    kind: u32,
    struct_size: usize,
) -> Result<*const RcObjectHeader, LoadError> {
    let path = find_library(module, search)?;
    let library = open_library(&path)?;
    find_object(library, &path, module, object, kind, struct_size)
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
        None => {
            let pointer = open_object(
                &parsed.module,
                &parsed.object,
                search,
                RC_KIND_APP,
                size_of::<RcApp>(),
            )?;
            // SAFETY: the header says this is an app table of the right size
            // and version; the library is never unloaded.
            unsafe { &*pointer.cast::<RcApp>() }
        }
        Some(args) => {
            let pointer = open_object(
                &parsed.module,
                &parsed.object,
                search,
                RC_KIND_FACTORY,
                size_of::<RcFactory>(),
            )?;
            // SAFETY: as above, for a factory table.
            let factory: &'static RcFactory = unsafe { &*pointer.cast::<RcFactory>() };
            call_factory(spec, factory, args)?
        }
    };
    Ok(Application {
        name: spec.to_owned(),
        sync: Arc::new(DylibApp::new(table)),
        asynch: None,
    })
}

pub(crate) fn call_factory(
    spec: &str,
    factory: &'static RcFactory,
    args: &[(String, String)],
) -> Result<&'static RcApp, LoadError> {
    let fields: Vec<RcField> = args
        .iter()
        .map(|(key, value)| RcField {
            name: RcStr::new(key.as_bytes()),
            value: RcStr::new(value.as_bytes()),
        })
        .collect();
    let mut out: *const RcApp = std::ptr::null();
    let mut error = ErrorBuffer::new();
    // SAFETY: the table was checked; the fields, out slot and buffer outlive
    // the call.
    let status =
        unsafe { (factory.create)(fields.as_ptr(), fields.len(), &mut out, error.as_raw()) };
    crate::abi::dylib_app::status_result(status, &error, "the app factory").map_err(|err| {
        LoadError::Other(format!("'{spec}': {err}; check the factory's arguments"))
    })?;
    if out.is_null() {
        return Err(LoadError::Other(format!(
            "'{spec}': the factory returned no app; it must set *out on success"
        )));
    }
    // SAFETY: the library owns the table for the rest of the process.
    let table: &'static RcApp = unsafe { &*out };
    if table.header.magic != RC_MAGIC
        || table.header.kind != RC_KIND_APP
        || table.header.abi_version != RC_ABI_VERSION
    {
        return Err(LoadError::Other(format!("'{spec}': the factory returned something that is not an ABI v{RC_ABI_VERSION} app table")));
    }
    Ok(table)
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
    let pointer = open_object(
        &parsed.module,
        &parsed.object,
        search,
        RC_KIND_WORKER_CLASS,
        size_of::<RcWorkerClass>(),
    )?;
    // SAFETY: the header says this is a worker class table of the right
    // size and version; the library is never unloaded.
    Ok(LoadedWorkerClass::new(unsafe {
        &*pointer.cast::<RcWorkerClass>()
    }))
}

/// Open a hook object (see `crate::hooks`).
pub(crate) fn open_hook(
    spec: &str,
    search: &SearchPath,
    struct_size: usize,
) -> Result<*const RcObjectHeader, LoadError> {
    let parsed = parse_spec(spec)?;
    if parsed.args.is_some() {
        return Err(bad_spec(
            spec,
            "a hook takes no arguments; write 'lib:function'",
        ));
    }
    open_object(
        &parsed.module,
        &parsed.object,
        search,
        RC_KIND_HOOK,
        struct_size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_module_and_variable() {
        let spec = parse_spec("myapp:app").unwrap();
        assert_eq!(
            (spec.module.as_str(), spec.object.as_str(), spec.args),
            ("myapp", "app", None)
        );
    }

    #[test]
    fn parses_paths_with_colons_in_directories() {
        let spec = parse_spec("./a:b/libmyapp.so:app").unwrap();
        assert_eq!(spec.module, "./a:b/libmyapp.so");
        assert_eq!(spec.object, "app");
    }

    #[test]
    fn parses_factory_calls() {
        let spec = parse_spec("myapp:create_app()").unwrap();
        assert_eq!(spec.args, Some(vec![]));
        let spec =
            parse_spec("myapp:create_app(greeting=\"hi, there\", port = 'a:b', n=3)").unwrap();
        assert_eq!(spec.object, "create_app");
        assert_eq!(
            spec.args.unwrap(),
            vec![
                ("greeting".to_owned(), "hi, there".to_owned()),
                ("port".to_owned(), "a:b".to_owned()),
                ("n".to_owned(), "3".to_owned())
            ]
        );
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "myapp",
            ":app",
            "myapp:",
            "myapp:create_app(",
            "myapp:f(x)",
            "myapp:f(a='b)",
            "myapp:1app",
        ] {
            assert!(
                matches!(parse_spec(bad), Err(LoadError::BadSpec { .. })),
                "{bad}"
            );
        }
    }

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
        assert_eq!(err.exit_code(), 4);
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
