//! The worker-class registry: `-k NAME` to a class, in one table.
//!
//! Adding a class is one line in [`CLASSES`]. A `-k` value containing `:`
//! or `/` names a class in a shared library, loaded by [`dylib`].

mod dylib;

use std::sync::Arc;

use runicorn_master::{Settings, WorkerClass};

use crate::error::CliError;

/// Makes a class.
pub type Factory = fn() -> Arc<dyn WorkerClass>;

/// Every built-in worker class, by the name `-k` selects it with.
pub static CLASSES: &[(&str, Factory)] = &[
    ("sync", || Arc::new(runicorn_worker_sync::SyncWorker)),
    ("gthread", || Arc::new(runicorn_worker_thread::ThreadWorker)),
    ("green", || Arc::new(runicorn_worker_green::GreenWorker)),
    ("async", || Arc::new(runicorn_worker_async::AsyncWorker)),
];

/// The names of the built-in classes, for messages.
pub fn names() -> Vec<&'static str> {
    CLASSES.iter().map(|(name, _)| *name).collect()
}

fn unknown(name: &str) -> CliError {
    let known = names();
    let suggestion = known
        .iter()
        .map(|known| {
            (
                strsim::levenshtein(&name.to_ascii_lowercase(), known),
                *known,
            )
        })
        .filter(|(distance, known)| *distance <= (known.len() / 2).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| format!("; did you mean '{known}'?"))
        .unwrap_or_default();
    CliError::UnknownClass {
        name: name.to_owned(),
        known: if known.is_empty() {
            "none in this build".to_owned()
        } else {
            known.join(", ")
        },
        suggestion,
    }
}

/// Applies Gunicorn's rule that `--threads` above 1 turns `sync` into
/// `gthread`; returns the line to log when it did (or could not).
pub fn promote_threads(settings: &mut Settings) -> Option<String> {
    if settings.worker_class != "sync" || settings.threads <= 1 {
        return None;
    }
    if CLASSES.iter().any(|(name, _)| *name == "gthread") {
        settings.worker_class = "gthread".to_owned();
        Some(format!(
            "--threads {} with the sync worker class: using gthread instead",
            settings.threads
        ))
    } else {
        Some(format!(
            "--threads {} has no effect with the sync worker class, and gthread is not in this build",
            settings.threads
        ))
    }
}

/// The class `settings.worker_class` names.
pub fn select(settings: &Settings) -> Result<Arc<dyn WorkerClass>, CliError> {
    let name = settings.worker_class.as_str();
    if let Some((_, factory)) = CLASSES.iter().find(|(known, _)| *known == name) {
        return Ok(factory());
    }
    if name.contains([':', '/']) {
        return dylib::load(name, settings).map_err(|reason| CliError::ClassLibrary {
            name: name.to_owned(),
            reason,
        });
    }
    Err(unknown(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_classes_list_the_known_and_exit_2() {
        let settings = Settings {
            worker_class: "gevent".to_owned(),
            ..Settings::default()
        };
        let err = select(&settings).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .starts_with("unknown worker class 'gevent': known classes are"),
            "{err}"
        );
    }

    #[test]
    fn library_classes_go_to_the_loader() {
        let settings = Settings {
            worker_class: "./libnope.so:Worker".to_owned(),
            ..Settings::default()
        };
        let err = select(&settings).err().unwrap();
        assert!(
            err.to_string()
                .starts_with("cannot load worker class './libnope.so:Worker'"),
            "{err}"
        );
    }

    #[test]
    fn threads_promote_sync_only() {
        let mut settings = Settings {
            threads: 4,
            ..Settings::default()
        };
        assert!(promote_threads(&mut settings).is_some());
        let mut settings = Settings {
            threads: 1,
            ..Settings::default()
        };
        assert!(promote_threads(&mut settings).is_none());
        assert_eq!(settings.worker_class, "sync");
    }
}
