//! App resolution: `builtin:NAME` from the binary, anything else from a
//! shared library, both through the app crate's loader
//! (`runicorn_app::loader::load`), searched on `--chdir` and `--app-path`.

use runicorn_app::loader::{self, SearchPath};
use runicorn_app::{Application, LoadError};
use runicorn_master::{AppLoader, Settings};

/// The cli's [`AppLoader`]: built-in apps and library apps.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loader;

impl AppLoader for Loader {
    fn load(&self, settings: &Settings) -> Result<Application, LoadError> {
        let search = SearchPath::new(settings.chdir.clone(), settings.app_path.clone());
        let app = loader::load(&settings.app, &search)?;
        crate::hooks::wrap_request_hooks(app, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_apps_resolve() {
        let settings = Settings {
            app: "builtin:hello".to_owned(),
            ..Settings::default()
        };
        assert_eq!(Loader.load(&settings).unwrap().name, "builtin:hello");
        let settings = Settings {
            app: "builtin:nope".to_owned(),
            ..Settings::default()
        };
        let err = Loader.load(&settings).unwrap_err();
        assert!(
            err.to_string()
                .contains("Failed to find application object 'nope' in 'builtin'"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn missing_libraries_exit_4() {
        let settings = Settings {
            app: "no_such_app_lib:app".to_owned(),
            ..Settings::default()
        };
        let err = Loader.load(&settings).unwrap_err();
        assert_eq!(err.exit_code(), 4, "{err}");
    }
}
