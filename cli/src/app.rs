//! App resolution, in this order: an app the embedding binary linked in
//! ([`crate::run::main_with_apps`]); `builtin:NAME` from the binary; a shared
//! library when one of that module name is found on `--chdir`,
//! `--app-path` or the current directory (`libmain.so`, `main.so`, or a
//! path); otherwise a Python module on `sys.path` (the current directory,
//! then `--pythonpath`, then the virtual environment), imported by the
//! embedded interpreter (`crate::python`). A module found nowhere is one
//! error that lists every place looked, native and Python.

use std::sync::Arc;

use runicorn_app::loader::{self, SearchPath};
use runicorn_app::{Application, LoadError};
use runicorn_master::AppLoader;
use runicorn_worker::Settings;

/// Apps linked into a binary that embeds runicorn, each under the
/// `module:variable` name that selects it.
pub type Linked = Arc<[(String, Application)]>;

/// The cli's [`AppLoader`]: linked apps, built-in apps, library apps and
/// Python apps.
#[derive(Debug, Default, Clone)]
pub struct Loader {
    linked: Linked,
}

impl Loader {
    /// A loader that finds `linked` first.
    pub fn with_linked(linked: Linked) -> Loader {
        Loader { linked }
    }
}

impl AppLoader for Loader {
    fn load(&self, settings: &Settings) -> Result<Application, LoadError> {
        if let Some((_, app)) = self.linked.iter().find(|(name, _)| *name == settings.app) {
            refuse_python_only(settings)?;
            return crate::hooks::wrap_request_hooks(app.clone(), settings, false);
        }
        if !settings.preload_app {
            return load(settings);
        }
        // With --preload this runs in the master: name any socket the
        // import opened, since every worker would share it.
        let before = crate::preload::open_sockets();
        let app = load(settings)?;
        crate::preload::warn_new_sockets(&before, &crate::preload::open_sockets(), &settings.app);
        Ok(app)
    }
}

/// Load the app, in the order the module doc gives.
fn load(settings: &Settings) -> Result<Application, LoadError> {
    let search = SearchPath::new(settings.chdir.clone(), settings.app_path.clone());
    let module = crate::python::module_of(&settings.app);
    if module != runicorn_app::builtin::MODULE {
        if let Err(LoadError::NoModule { hint, .. }) = loader::find_library(module, &search) {
            // No library of that name: a Python module, if there is one.
            let looked = hint.trim_start_matches("; ");
            let looked = looked.split("; build it").next().unwrap_or(looked);
            let app = crate::python::load_app(settings, looked)?;
            return crate::hooks::wrap_request_hooks(app, settings, true);
        }
    }
    let app = loader::load(&settings.app, &search)?;
    refuse_python_only(settings)?;
    crate::hooks::wrap_request_hooks(app, settings, false)
}

/// Refuses, for a native app, a setting only a Python (WSGI) app's environ
/// honours, when it is not left at its default: accepted, it would change
/// nothing (a native app sees every header field as received).
fn refuse_python_only(settings: &Settings) -> Result<(), LoadError> {
    if settings.forwarder_headers != Settings::default().forwarder_headers {
        return Err(LoadError::Other(format!(
            "--forwarder-headers (forwarder_headers) only changes a Python (WSGI) app's environ; '{}' is a \
             native app, which gets every header field as received: remove the setting",
            settings.app
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_worker::Ending;

    #[test]
    fn builtin_apps_resolve() {
        let settings = Settings {
            app: "builtin:hello".to_owned(),
            ..Settings::default()
        };
        assert_eq!(
            Loader::default().load(&settings).unwrap().name,
            "builtin:hello"
        );
        let settings = Settings {
            app: "builtin:nope".to_owned(),
            ..Settings::default()
        };
        let err = Loader::default().load(&settings).unwrap_err();
        assert!(
            err.to_string()
                .contains("Failed to find application object 'nope' in 'builtin'"),
            "{err}"
        );
        assert_eq!(Ending::of_load_error(&err).exit_code(), 4);
    }

    #[test]
    fn missing_libraries_exit_4() {
        let settings = Settings {
            app: "no_such_app_lib:app".to_owned(),
            ..Settings::default()
        };
        let err = Loader::default().load(&settings).unwrap_err();
        assert_eq!(Ending::of_load_error(&err).exit_code(), 4, "{err}");
    }
}
