//! The worker-class registry: `-k NAME` to a class, in one table.
//!
//! Adding a class is one line in [`CLASSES`]. A `-k` value containing `:`
//! or `/` names a class in a shared library, loaded by [`dylib`].

mod dylib;

use std::sync::Arc;

use runicorn_worker::{Settings, WorkerClass};

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

/// Gunicorn's worker classes, each under every spelling Gunicorn takes
/// (`-k gevent`, `egg:gunicorn#gevent`, the class path), with the built-in
/// class that serves the same purpose and what differs, for the one
/// WARNING line at boot. A Gunicorn command line starts as it is.
pub static GUNICORN_CLASSES: &[GunicornClass] = &[
    GunicornClass {
        names: &["sync", "egg:gunicorn#sync", "gunicorn.workers.sync.SyncWorker"],
        class: "sync",
        differs: None,
    },
    GunicornClass {
        names: &[
            "gthread",
            "egg:gunicorn#gthread",
            "gunicorn.workers.gthread.ThreadWorker",
        ],
        class: "gthread",
        differs: None,
    },
    GunicornClass {
        names: &["gevent", "egg:gunicorn#gevent", "gunicorn.workers.ggevent.GeventWorker"],
        class: "green",
        differs: Some(GREEN_DIFFERS),
    },
    GunicornClass {
        names: &[
            "eventlet",
            "egg:gunicorn#eventlet",
            "gunicorn.workers.geventlet.EventletWorker",
        ],
        class: "green",
        differs: Some(GREEN_DIFFERS),
    },
    GunicornClass {
        names: &["tornado", "egg:gunicorn#tornado", "gunicorn.workers.gtornado.TornadoWorker"],
        class: "async",
        differs: Some(
            "a Tornado application is not served as one: WSGI and native apps run, sync ones on a \
             thread pool (--blocking-threads) beside a tokio event loop per --threads",
        ),
    },
    GunicornClass {
        names: &[
            "uvicorn.workers.UvicornWorker",
            "uvicorn.workers.UvicornH11Worker",
            "uvicorn_worker.UvicornWorker",
            "uvicorn_worker.UvicornH11Worker",
        ],
        class: "async",
        differs: Some(
            "ASGI apps are not served yet (an ASGI app fails to load): WSGI and native apps run, sync \
             ones on a thread pool (--blocking-threads), async native ones on the tokio event loop",
        ),
    },
];

const GREEN_DIFFERS: &str =
    "nothing is monkey-patched: a request waits without holding a thread only \
     where it waits through runicorn (reading the body, writing the response, the host's sleep and \
     connect); a library's own blocking calls block one of --threads may threads";

/// One of Gunicorn's worker classes and runicorn's nearest.
#[derive(Debug)]
pub struct GunicornClass {
    /// Every spelling Gunicorn accepts for it.
    pub names: &'static [&'static str],
    /// The built-in class that serves it.
    pub class: &'static str,
    /// What behaves differently, or `None` for the same class.
    pub differs: Option<&'static str>,
}

/// Replaces a Gunicorn worker-class name (`gevent`, `egg:gunicorn#gevent`,
/// `uvicorn.workers.UvicornWorker`, ...) with runicorn's nearest class;
/// returns the WARNING line naming the mapping and what differs.
pub fn map_gunicorn_class(settings: &mut Settings) -> Option<String> {
    let asked = settings.worker_class.clone();
    if CLASSES.iter().any(|(name, _)| *name == asked) {
        return None;
    }
    let known = GUNICORN_CLASSES.iter().find(|known| {
        known
            .names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&asked))
    })?;
    settings.worker_class = known.class.to_owned();
    Some(match known.differs {
        Some(differs) => format!(
            "-k {asked} is Gunicorn's; runicorn serves it with its nearest class, -k {}: {differs}",
            known.class
        ),
        None => format!("-k {asked} is Gunicorn's name for -k {}", known.class),
    })
}

/// Class-specific settings given to a built-in class that does not use
/// them: one WARNING line each, so a setting never goes silently unused
/// (Gunicorn ignores these without a word). A library class gets every
/// value and decides itself.
pub fn unused_by_class(settings: &Settings) -> Vec<String> {
    let class = settings.worker_class.as_str();
    if !CLASSES.iter().any(|(name, _)| *name == class) {
        return Vec::new();
    }
    let defaults = Settings::default();
    let mut unused = Vec::new();
    if class == "sync" && settings.worker_connections != defaults.worker_connections {
        unused.push(format!(
            "--worker-connections {} has no effect with -k sync, which holds one connection at a time; \
             it bounds the connections of gthread, green and async workers",
            settings.worker_connections
        ));
    }
    if class == "sync" && settings.keepalive != defaults.keepalive {
        unused.push(format!(
            "--keep-alive {}s has no effect with -k sync, which closes every connection after its response \
             (as Gunicorn's sync worker does); gthread, green and async keep connections alive",
            settings.keepalive.as_secs_f64()
        ));
    }
    if class == "sync"
        && settings.header_timeout != defaults.header_timeout
        && settings.header_timeout_without_beats() != settings.header_timeout
    {
        unused.push(format!(
            "--header-timeout {}s is cut to {}s with -k sync, half of --timeout {}s: a sync worker does not \
             beat while it waits for a head, so a longer wait would have the master kill it (WORKER TIMEOUT) \
             before a slow client gets its 408; raise --timeout for a longer head deadline",
            settings.header_timeout.as_secs_f64(),
            settings.header_timeout_without_beats().as_secs_f64(),
            settings.timeout.as_secs_f64()
        ));
    }
    if class == "sync" && !settings.timeout.is_zero() {
        for (flag, value) in [
            ("--body-timeout", settings.body_timeout),
            ("--write-timeout", settings.write_timeout),
        ] {
            if let Some(value) = value.filter(|value| value.is_zero() || *value >= settings.timeout)
            {
                let value = if value.is_zero() {
                    "0 (none)".to_owned()
                } else {
                    format!("{}s", value.as_secs_f64())
                };
                unused.push(format!(
                    "{flag} {value} is not reached with -k sync under --timeout {}s: a sync worker does \
                     not beat while its request runs, so the master kills it (WORKER TIMEOUT) at --timeout \
                     first; set {flag} below --timeout, or raise --timeout",
                    settings.timeout.as_secs_f64()
                ));
            }
        }
    }
    if class != "green" && settings.green_stack_size != defaults.green_stack_size {
        unused.push(format!(
            "--green-stack-size {} has no effect with -k {class}: only the green class runs coroutines",
            settings.green_stack_size
        ));
    }
    if matches!(class, "sync" | "gthread") && settings.blocking_threads != defaults.blocking_threads
    {
        unused.push(format!(
            "--blocking-threads {} has no effect with -k {class}, whose apps run on the worker's own \
             threads; it sizes the blocking pool of async and green workers",
            settings.blocking_threads
        ));
    }
    unused
}

/// The names of the built-in classes, for messages.
pub fn names() -> Vec<&'static str> {
    CLASSES.iter().map(|(name, _)| *name).collect()
}

fn unknown(name: &str) -> CliError {
    let known = names();
    let candidates = known.iter().copied().chain(
        GUNICORN_CLASSES
            .iter()
            .flat_map(|gunicorn| gunicorn.names.iter().copied()),
    );
    let suggestion = candidates
        .map(|known| {
            (
                strsim::levenshtein(&name.to_ascii_lowercase(), &known.to_ascii_lowercase()),
                known,
            )
        })
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
    fn unknown_classes_list_the_known_suggest_the_nearest_and_exit_2() {
        let settings = Settings {
            worker_class: "gevnt".to_owned(),
            ..Settings::default()
        };
        let err = select(&settings).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.starts_with("unknown worker class 'gevnt': known classes are sync, gthread"),
            "{text}"
        );
        assert!(text.ends_with("; did you mean 'gevent'?"), "{text}");
        let far = Settings {
            worker_class: "asyncc".to_owned(),
            ..Settings::default()
        };
        assert!(select(&far)
            .err()
            .unwrap()
            .to_string()
            .ends_with("did you mean 'async'?"));
    }

    #[test]
    fn gunicorn_class_names_map_to_the_nearest_class_with_one_warning() {
        for (asked, class) in [
            ("gevent", "green"),
            ("egg:gunicorn#gevent", "green"),
            ("gunicorn.workers.ggevent.GeventWorker", "green"),
            ("eventlet", "green"),
            ("tornado", "async"),
            ("egg:gunicorn#tornado", "async"),
            ("uvicorn.workers.UvicornWorker", "async"),
            ("egg:gunicorn#gthread", "gthread"),
        ] {
            let mut settings = Settings {
                worker_class: asked.to_owned(),
                ..Settings::default()
            };
            let warning = map_gunicorn_class(&mut settings).unwrap();
            assert_eq!(settings.worker_class, class, "{asked}");
            assert!(
                warning.starts_with(&format!("-k {asked} is Gunicorn's")),
                "{warning}"
            );
            assert!(warning.contains(&format!("-k {class}")), "{warning}");
            assert!(select(&settings).is_ok(), "{asked}");
        }
        let mut native = Settings::default();
        assert_eq!(map_gunicorn_class(&mut native), None);
        let mut library = Settings {
            worker_class: "./libx.so:Worker".to_owned(),
            ..Settings::default()
        };
        assert_eq!(map_gunicorn_class(&mut library), None);
        assert_eq!(library.worker_class, "./libx.so:Worker");
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
    fn settings_a_class_does_not_use_are_named() {
        let mut settings = Settings {
            worker_connections: 10,
            keepalive: std::time::Duration::from_secs(5),
            green_stack_size: 1 << 20,
            blocking_threads: 4,
            ..Settings::default()
        };
        let unused = unused_by_class(&settings);
        assert_eq!(unused.len(), 4, "{unused:?}");
        assert!(unused[0].starts_with("--worker-connections 10 has no effect with -k sync"));
        settings.worker_class = "green".to_owned();
        assert!(unused_by_class(&settings).is_empty());
        settings.worker_class = "gthread".to_owned();
        let unused = unused_by_class(&settings);
        assert_eq!(unused.len(), 2, "{unused:?}");
        assert!(unused[0].starts_with("--green-stack-size 1048576 has no effect with -k gthread"));
        assert!(unused_by_class(&Settings::default()).is_empty());
        settings.worker_class = "./lib.so:Class".to_owned();
        assert!(unused_by_class(&settings).is_empty());
    }

    #[test]
    fn a_sync_header_timeout_not_below_the_timeout_is_named() {
        let secs = std::time::Duration::from_secs;
        let mut settings = Settings {
            timeout: secs(10),
            header_timeout: secs(8),
            ..Settings::default()
        };
        let unused = unused_by_class(&settings);
        assert_eq!(unused.len(), 1, "{unused:?}");
        assert!(
            unused[0].starts_with(
                "--header-timeout 8s is cut to 5s with -k sync, half of --timeout 10s"
            ),
            "{unused:?}"
        );
        settings.header_timeout = std::time::Duration::ZERO;
        assert_eq!(unused_by_class(&settings).len(), 1, "no deadline at all");
        settings.header_timeout = secs(5);
        assert!(unused_by_class(&settings).is_empty());
        settings.header_timeout = secs(10);
        assert!(
            unused_by_class(&settings).is_empty(),
            "the default is cut without a word"
        );
        settings.timeout = std::time::Duration::ZERO;
        settings.header_timeout = secs(60);
        assert!(unused_by_class(&settings).is_empty(), "no heartbeat kill");
        settings.timeout = secs(10);
        settings.worker_class = "gthread".to_owned();
        assert!(
            unused_by_class(&settings).is_empty(),
            "gthread beats from its poller"
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
