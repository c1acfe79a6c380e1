//! Binding `-b` for the arbiter: at start, and on HUP when `bind` changed.

use std::path::PathBuf;

use crate::error::MasterError;
use crate::listener::{self, BindOptions};
use crate::privileges::Credentials;
use runicorn_worker::Listener;
use runicorn_worker::Settings;

/// Binds `settings.bind` (or takes systemd's sockets at first start),
/// under `--umask`, handing unix sockets to the workers' user. A spec
/// already bound (in `current`, on HUP) is reused, never rebound: its
/// accept queue carries over.
pub(super) fn bind_listeners(
    settings: &Settings,
    credentials: Option<&Credentials>,
    first_start: bool,
    current: &[(&String, &Listener)],
) -> Result<Vec<(String, Listener)>, MasterError> {
    if first_start {
        if let Some(listeners) = listener::systemd_listeners()? {
            return Ok(listeners
                .into_iter()
                .map(|listener| ("LISTEN_FDS".to_owned(), listener))
                .collect());
        }
    }
    let options = BindOptions {
        backlog: settings.backlog,
        reuse_port: settings.reuse_port,
        // On HUP, do not block the running master in retries.
        attempts: if first_start {
            listener::BIND_ATTEMPTS
        } else {
            1
        },
        ..BindOptions::default()
    };
    let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        settings.umask as _,
    ));
    let mut bound = Vec::new();
    let mut fresh_paths = Vec::new();
    let mut failure = None;
    for spec in &settings.bind {
        let reused: Vec<Listener> = current
            .iter()
            .filter(|(known, _)| *known == spec)
            .filter_map(|(_, listener)| listener.try_clone().ok())
            .collect();
        if !reused.is_empty() {
            bound.extend(reused.into_iter().map(|listener| (spec.clone(), listener)));
            continue;
        }
        match listener::BindSpec::parse(spec).and_then(|parsed| listener::bind(&parsed, options)) {
            Ok(listeners) => {
                fresh_paths.extend(listeners.iter().filter_map(Listener::unix_path));
                bound.extend(
                    listeners
                        .into_iter()
                        .map(|listener| (spec.clone(), listener)),
                );
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    nix::sys::stat::umask(old_umask);
    if let Some(err) = failure {
        // Do not leave socket files of a half-done bind behind.
        for path in fresh_paths {
            let _ = std::fs::remove_file(path);
        }
        return Err(err);
    }
    if let Some(credentials) = credentials {
        for path in fresh_paths {
            if let Err(err) = credentials.chown(&path) {
                tracing::warn!("cannot give {} to the workers' user: {err}", path.display());
            }
        }
    }
    Ok(bound)
}

/// The unix socket files among `listeners` that came from `-b unix:` (not
/// inherited), so the master removes them at exit.
pub(super) fn owned_unix_paths(settings: &Settings, listeners: &[Listener]) -> Vec<PathBuf> {
    listeners
        .iter()
        .filter_map(Listener::unix_path)
        .filter(|path| {
            settings.bind.iter().any(|spec| {
                spec.strip_prefix("unix:")
                    .is_some_and(|p| path.ends_with(p.trim_start_matches("//")))
            })
        })
        .collect()
}
