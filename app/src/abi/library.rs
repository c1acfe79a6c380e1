//! The unsafe half of the loader: opening a shared library for the rest of
//! the process and turning a checked exported symbol into a typed table.
//!
//! `crate::loader` parses the spec and finds the file with safe code, then
//! calls [`find_table`] here. Before anything in a library is called or read
//! past its header, [`find_table`] checks the header's magic, ABI version,
//! kind and size against the Rust type asked for ([`AbiObject`]); that check
//! is what makes the cast to `&'static T` sound. Libraries are opened with
//! `RTLD_NOW | RTLD_LOCAL` and never closed, so the tables live as long as
//! the process.

use std::path::Path;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::abi::errno::ErrorBuffer;
use crate::abi::hook::RcHook;
use crate::abi::types::{
    RcApp, RcFactory, RcField, RcObjectHeader, RcStr, RC_ABI_VERSION, RC_KIND_APP, RC_KIND_FACTORY,
    RC_KIND_HOOK, RC_KIND_WORKER_CLASS, RC_MAGIC,
};
use crate::abi::worker_class::RcWorkerClass;
use crate::LoadError;

/// An exported table of the C ABI.
///
/// # Safety
/// The type is `#[repr(C)]`, starts with an [`RcObjectHeader`], and is the
/// table the C header `include/runicorn.h` declares for objects of kind
/// `KIND`: a checked header of that kind and `size_of::<Self>()` means the
/// whole object may be read as `Self`.
pub(crate) unsafe trait AbiObject: Sized + 'static {
    /// The `RC_KIND_*` of the header.
    const KIND: u32;
}

// SAFETY: `RcApp` is the `rc_app` table, first field its header.
unsafe impl AbiObject for RcApp {
    const KIND: u32 = RC_KIND_APP;
}
// SAFETY: `RcFactory` is the `rc_factory` table, first field its header.
unsafe impl AbiObject for RcFactory {
    const KIND: u32 = RC_KIND_FACTORY;
}
// SAFETY: `RcWorkerClass` is the `rc_worker_class` table, first field its header.
unsafe impl AbiObject for RcWorkerClass {
    const KIND: u32 = RC_KIND_WORKER_CLASS;
}
// SAFETY: `RcHook` is the `rc_hook` table, first field its header.
unsafe impl AbiObject for RcHook {
    const KIND: u32 = RC_KIND_HOOK;
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

/// Read the header at a data symbol of the dynamic table.
fn header_of(library: &Library, name: &str) -> Option<RcObjectHeader> {
    // SAFETY: we only take the symbol's address here; it is not called.
    let symbol = unsafe { library.get::<*const RcObjectHeader>(name.as_bytes()) }.ok()?;
    let pointer: *const RcObjectHeader = *symbol;
    if pointer.is_null() {
        return None;
    }
    // SAFETY: the caller only asks for data symbols of the dynamic table
    // with at least a header's size; the unaligned read tolerates any
    // placement.
    Some(unsafe { pointer.read_unaligned() })
}

/// Find `object` in the opened library `path`, check that its header is a
/// `T` of this ABI, and return it as a table that lives for the process.
pub(crate) fn find_table<T: AbiObject>(
    library: &'static Library,
    path: &Path,
    module: &str,
    object: &str,
) -> Result<&'static T, LoadError> {
    let kind = T::KIND;
    let struct_size = size_of::<T>();
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
    // SAFETY: the header says this is a `T` (`AbiObject`: kind and size
    // match, this ABI version); the library is never unloaded.
    Ok(unsafe { &*pointer.cast::<T>() })
}

/// Call an app factory with its string arguments and check what it made.
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
    // SAFETY: a factory sets `out` to a table the library owns for the rest
    // of the process (the ABI's rule); its header is checked below before
    // any entry is called.
    let table: &'static RcApp = unsafe { &*out };
    if table.header.magic != RC_MAGIC
        || table.header.kind != RC_KIND_APP
        || table.header.abi_version != RC_ABI_VERSION
    {
        return Err(LoadError::Other(format!("'{spec}': the factory returned something that is not an ABI v{RC_ABI_VERSION} app table")));
    }
    Ok(table)
}
