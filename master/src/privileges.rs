//! `-u/--user`, `-g/--group`, `--initgroups`: what workers drop to.
//!
//! Resolved in the master at start (so a user that does not exist is one
//! clear line, not a crash loop), applied in each worker after fork:
//! supplementary groups first (the user's with `--initgroups`, else none),
//! then the gid, then the uid. The master keeps its own.

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

    /// Drops to these credentials (groups, then gid, then uid).
    pub fn apply(&self) -> std::io::Result<()> {
        let changing = self.uid.is_some_and(|uid| uid != Uid::current())
            || self.gid.is_some_and(|gid| gid != Gid::current());
        if changing && Uid::effective().is_root() {
            match (&self.user_name, self.gid, self.initgroups) {
                (Some(name), Some(gid), true) => nix::unistd::initgroups(name, gid)?,
                _ => nix::unistd::setgroups(&[])?,
            }
        }
        if let Some(gid) = self.gid {
            if gid != Gid::current() {
                nix::unistd::setgid(gid)?;
            }
        }
        if let Some(uid) = self.uid {
            if uid != Uid::current() {
                nix::unistd::setuid(uid)?;
            }
        }
        Ok(())
    }

    /// Gives a unix socket file to the workers' user and group.
    pub fn chown(&self, path: &std::path::Path) -> std::io::Result<()> {
        nix::unistd::chown(path, self.uid, self.gid).map_err(std::io::Error::from)
    }
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
}
