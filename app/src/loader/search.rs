//! Where a module's library is: `--chdir`, then `--app-path`, then the
//! current directory, for `libNAME.so` or `NAME.so`; or a path as given.
//! Only looks at files; nothing is opened here.

use std::path::PathBuf;

use crate::LoadError;

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
