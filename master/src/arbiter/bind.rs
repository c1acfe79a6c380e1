//! Binding `-b` for the arbiter: at start, and on HUP when `bind` changed.
//! At start, sockets handed over come first: systemd's replace `-b`; an
//! old master's (USR2) stand for the specs they match.

use std::net::ToSocketAddrs;
use std::path::PathBuf;

use super::upgrade::SYSTEMD_SPEC;
use crate::error::MasterError;
use crate::inherit::{self, Inherited};
use crate::listener::{self, BindOptions, BindSpec};
use crate::privileges::Credentials;
use runicorn_worker::Listener;
use runicorn_worker::Settings;

/// Binds `settings.bind` (or, at first start, takes the sockets handed
/// over), under `--umask`, handing unix sockets to the workers' user. A
/// spec already bound (in `current`, on HUP) is reused, never rebound: its
/// accept queue carries over.
pub(super) fn bind_listeners(
    settings: &Settings,
    credentials: Option<&Credentials>,
    first_start: bool,
    current: &[(&String, &Listener)],
) -> Result<Vec<(String, Listener)>, MasterError> {
    if first_start {
        match inherit::take_listeners()? {
            Some(Inherited::Systemd(listeners)) => {
                return Ok(listeners
                    .into_iter()
                    .map(|listener| (SYSTEMD_SPEC.to_owned(), listener))
                    .collect());
            }
            Some(Inherited::Upgrade(listeners)) => {
                return adopt_upgrade(settings, credentials, listeners);
            }
            None => {}
        }
    }
    bind_specs(settings, credentials, first_start, current)
}

/// The new binary of a USR2 upgrade: each listener handed over stands for
/// the `-b` spec it matches (reused, never rebound: same socket, same
/// accept queue, same unix socket file); a spec nothing matches (a bind
/// the new configuration adds) is bound; a listener no spec matches keeps
/// serving, as Gunicorn serves every `GUNICORN_FD`.
fn adopt_upgrade(
    settings: &Settings,
    credentials: Option<&Credentials>,
    inherited: Vec<Listener>,
) -> Result<Vec<(String, Listener)>, MasterError> {
    let mut matched = Vec::new();
    let mut unmatched = Vec::new();
    for listener in inherited {
        match settings
            .bind
            .iter()
            .find(|spec| spec_matches(spec, &listener))
        {
            Some(spec) => matched.push((spec.clone(), listener)),
            None => unmatched.push((inherit::RUNICORN_FD.to_owned(), listener)),
        }
    }
    let current: Vec<(&String, &Listener)> = matched
        .iter()
        .map(|(spec, listener)| (spec, listener))
        .collect();
    let mut bound = bind_specs(settings, credentials, true, &current)?;
    bound.extend(unmatched);
    Ok(bound)
}

/// Does `listener` serve `spec`? A unix path by path, `fd://N` by number,
/// a TCP spec by address (port 0 matches the port it was given).
fn spec_matches(spec: &str, listener: &Listener) -> bool {
    match BindSpec::parse(spec) {
        Ok(BindSpec::Unix(path)) => listener.unix_path().is_some_and(|bound| bound == path),
        Ok(BindSpec::Fd(fd)) => listener.as_raw_fd() == fd,
        Ok(BindSpec::Tcp(address)) => {
            let Some(local) = listener.local_addr() else {
                return false;
            };
            address.to_socket_addrs().is_ok_and(|mut addrs| {
                addrs.any(|addr| {
                    addr.ip() == local.ip() && (addr.port() == 0 || addr.port() == local.port())
                })
            })
        }
        Err(_) => false,
    }
}

/// `-b`, spec by spec, reusing what `current` already has.
fn bind_specs(
    settings: &Settings,
    credentials: Option<&Credentials>,
    first_start: bool,
    current: &[(&String, &Listener)],
) -> Result<Vec<(String, Listener)>, MasterError> {
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
        settings.unix_socket_umask() as _,
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
        match BindSpec::parse(spec).and_then(|parsed| listener::bind(&parsed, options)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_listeners_match_the_specs_they_serve() {
        let tcp = listener::bind_all(&["127.0.0.1:0".into()], BindOptions::default()).unwrap();
        let port = tcp[0].local_addr().unwrap().port();
        assert!(
            spec_matches("127.0.0.1:0", &tcp[0]),
            "port 0 matches the port given"
        );
        assert!(spec_matches(&format!("127.0.0.1:{port}"), &tcp[0]));
        assert!(spec_matches(&format!("localhost:{port}"), &tcp[0]));
        assert!(!spec_matches(&format!("127.0.0.1:{}", port ^ 1), &tcp[0]));
        assert!(!spec_matches("[::1]:0", &tcp[0]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let spec = format!("unix:{}", path.display());
        let unix = listener::bind_all(std::slice::from_ref(&spec), BindOptions::default()).unwrap();
        assert!(spec_matches(&spec, &unix[0]));
        assert!(!spec_matches(
            &format!("unix:{}", dir.path().join("b.sock").display()),
            &unix[0]
        ));
        assert!(!spec_matches(&spec, &tcp[0]));
        assert!(spec_matches(
            &format!("fd://{}", tcp[0].as_raw_fd()),
            &tcp[0]
        ));
    }
}
