//! `-u/--user`, `-g/--group`, `--initgroups`: what workers drop to.
//!
//! Resolved in the master at start (so a user that does not exist is one
//! clear line, not a crash loop), applied in each worker after fork:
//! supplementary groups first (the user's with `--initgroups`, else none:
//! Gunicorn keeps the starting user's, so a worker started by root kept
//! root's groups; runicorn's never does), then the gid, then the uid, each
//! step checked, and the result read back: a worker that is not exactly
//! who it was told to be does not boot. The master keeps its own. A master
//! started as root without `-u` warns once that its workers run as root
//! ([`root_warning`]).

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

use crate::error::MasterError;
use runicorn_worker::Settings;

/// Who workers run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The uid to switch to, if `-u` was given.
    pub uid: Option<Uid>,
    /// The gid to switch to (`-g`, else the user's primary group).
    pub gid: Option<Gid>,
    /// The user's name, for `initgroups`.
    pub user_name: Option<CString>,
    /// `--initgroups`.
    pub initgroups: bool,
}

impl Credentials {
    /// Resolves the settings; `None` when neither `-u` nor `-g` is set.
    pub fn resolve(settings: &Settings) -> Result<Option<Credentials>, MasterError> {
        if settings.user.is_none() && settings.group.is_none() {
            return Ok(None);
        }
        let mut credentials = Credentials {
            uid: None,
            gid: None,
            user_name: None,
            initgroups: settings.initgroups,
        };
        if let Some(user) = &settings.user {
            let found = match user.parse::<u32>() {
                Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten(),
                Err(_) => User::from_name(user).ok().flatten(),
            };
            match (found, user.parse::<u32>()) {
                (Some(entry), _) => {
                    credentials.uid = Some(entry.uid);
                    credentials.gid = Some(entry.gid);
                    credentials.user_name = CString::new(entry.name).ok();
                }
                (None, Ok(uid)) => credentials.uid = Some(Uid::from_raw(uid)),
                (None, Err(_)) => {
                    return Err(MasterError::NoSuchId {
                        setting: "user",
                        value: user.clone(),
                        fix: "give an existing user name or a numeric uid",
                    })
                }
            }
        }
        if let Some(group) = &settings.group {
            credentials.gid = Some(match group.parse::<u32>() {
                Ok(gid) => Gid::from_raw(gid),
                Err(_) => Group::from_name(group)
                    .ok()
                    .flatten()
                    .map(|entry| entry.gid)
                    .ok_or_else(|| MasterError::NoSuchId {
                        setting: "group",
                        value: group.clone(),
                        fix: "give an existing group name or a numeric gid",
                    })?,
            });
        }
        Ok(Some(credentials))
    }

    /// Drops to these credentials: supplementary groups (as root: the
    /// user's with `--initgroups`, else none), then the gid, then the uid.
    /// The error names the step that failed; after the three, the real and
    /// effective ids and the groups are read back and must be the ones
    /// asked for.
    pub fn apply(&self) -> Result<(), PrivilegeError> {
        let step = |step: &'static str| move |source: nix::Error| PrivilegeError { step, source };
        let root = Uid::effective().is_root();
        if root {
            match (&self.user_name, self.gid, self.initgroups) {
                (Some(name), Some(gid), true) => {
                    nix::unistd::initgroups(name, gid).map_err(step("initgroups"))?;
                }
                _ => nix::unistd::setgroups(&[]).map_err(step("setgroups"))?,
            }
        }
        if let Some(gid) = self.gid {
            if gid != Gid::current() || gid != Gid::effective() {
                nix::unistd::setgid(gid).map_err(step("setgid"))?;
            }
        }
        if let Some(uid) = self.uid {
            if uid != Uid::current() || uid != Uid::effective() {
                nix::unistd::setuid(uid).map_err(step("setuid"))?;
            }
        }
        self.check(root)
    }

    /// The read-back after [`Credentials::apply`].
    fn check(&self, dropped_groups: bool) -> Result<(), PrivilegeError> {
        let wrong = |step: &'static str| PrivilegeError {
            step,
            source: nix::Error::EPERM,
        };
        if let Some(uid) = self.uid {
            if Uid::current() != uid || Uid::effective() != uid {
                return Err(wrong("checking the uid"));
            }
        }
        if let Some(gid) = self.gid {
            if Gid::current() != gid || Gid::effective() != gid {
                return Err(wrong("checking the gid"));
            }
        }
        if dropped_groups && !self.initgroups {
            let groups = nix::unistd::getgroups().map_err(|source| PrivilegeError {
                step: "checking the groups",
                source,
            })?;
            if groups.iter().any(|group| Some(*group) != self.gid) {
                return Err(wrong("checking the groups"));
            }
        }
        Ok(())
    }

    /// Gives a unix socket file to the workers' user and group.
    pub fn chown(&self, path: &std::path::Path) -> std::io::Result<()> {
        nix::unistd::chown(path, self.uid, self.gid).map_err(std::io::Error::from)
    }
}

/// A step of dropping privileges that failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed: {source}")]
pub struct PrivilegeError {
    /// `setgroups`, `initgroups`, `setgid`, `setuid`, or a read-back.
    pub step: &'static str,
    /// What the system said.
    pub source: nix::Error,
}

/// The warning for a master started as root that would run its workers as
/// root too (no `-u`): `None` when there is nothing to warn about.
pub fn root_warning(settings: &Settings, effective_uid: Uid) -> Option<String> {
    if !effective_uid.is_root() || settings.user.is_some() {
        return None;
    }
    Some(
        "Running workers as root: every request is served with root's privileges. Pass --user (and \
         --group) to run the workers as an unprivileged user (the master keeps root to bind)."
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_and_groups_are_one_clear_error() {
        let settings = Settings {
            user: Some("no-such-user-xyz".into()),
            ..Settings::default()
        };
        let err = Credentials::resolve(&settings).unwrap_err().to_string();
        assert!(
            err.contains("user 'no-such-user-xyz' does not exist"),
            "{err}"
        );
        let settings = Settings {
            group: Some("no-such-group-xyz".into()),
            ..Settings::default()
        };
        assert!(Credentials::resolve(&settings).is_err());
        assert_eq!(Credentials::resolve(&Settings::default()).unwrap(), None);
    }

    #[test]
    fn the_current_user_resolves_and_applies_as_a_no_op() {
        let uid = Uid::current().as_raw().to_string();
        let settings = Settings {
            user: Some(uid),
            ..Settings::default()
        };
        let credentials = Credentials::resolve(&settings).unwrap().unwrap();
        assert_eq!(credentials.uid, Some(Uid::current()));
    }

    #[test]
    fn only_root_without_a_user_is_warned() {
        let root = Uid::from_raw(0);
        let warning = root_warning(&Settings::default(), root).unwrap();
        assert!(warning.contains("--user"), "{warning}");
        let with_user = Settings {
            user: Some("nobody".into()),
            ..Settings::default()
        };
        assert_eq!(root_warning(&with_user, root), None);
        let group_only = Settings {
            group: Some("nogroup".into()),
            ..Settings::default()
        };
        assert!(root_warning(&group_only, root).is_some());
        assert_eq!(
            root_warning(&Settings::default(), Uid::from_raw(1000)),
            None
        );
    }
}
