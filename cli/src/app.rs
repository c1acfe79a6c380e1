//! App resolution: `builtin:NAME` from the binary, anything else from a
//! shared library through the app crate's ABI loader.

use runicorn_app::{Application, LoadError};
use runicorn_master::{AppLoader, Settings};

/// The cli's [`AppLoader`]: built-in apps and library apps.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loader;

impl AppLoader for Loader {
    fn load(&self, settings: &Settings) -> Result<Application, LoadError> {
        let spec = settings.app.as_str();
        match spec.split_once(':') {
            Some((runicorn_app::builtin::MODULE, name)) => runicorn_app::builtin::lookup(name),
            _ => load_library(spec, settings),
        }
    }
}

fn load_library(spec: &str, _settings: &Settings) -> Result<Application, LoadError> {
    let module = spec.split_once(':').map_or(spec, |(module, _)| module);
    Err(LoadError::NoModule {
        module: module.to_owned(),
        hint: " (apps in libraries are not supported in this build yet; try builtin:hello)"
            .to_owned(),
    })
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
}
