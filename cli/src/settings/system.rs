//! Stage two checks: values that are well-formed but must also exist on
//! this system (users, groups), checked before anything is bound or forked.

use nix::unistd::{Gid, Group, Uid, User};
use runicorn_worker::Settings;

use super::table;
use crate::error::CliError;

fn described(key: &str) -> String {
    table::find(key).map_or_else(|| key.to_owned(), |setting| setting.described())
}

fn user_exists(name: &str) -> bool {
    match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten().is_some() || uid == 0,
        Err(_) => User::from_name(name).ok().flatten().is_some(),
    }
}

fn group_exists(name: &str) -> bool {
    match name.parse::<u32>() {
        Ok(gid) => Group::from_gid(Gid::from_raw(gid)).ok().flatten().is_some() || gid == 0,
        Err(_) => Group::from_name(name).ok().flatten().is_some(),
    }
}

/// Checks `-u/--user` and `-g/--group` name an existing user and group.
pub fn check(settings: &Settings) -> Result<(), CliError> {
    if let Some(user) = &settings.user {
        if !user_exists(user) {
            return Err(CliError::NoSuchPrincipal {
                setting: described("user"),
                value: user.clone(),
                kind: "user",
            });
        }
    }
    if let Some(group) = &settings.group {
        if !group_exists(group) {
            return Err(CliError::NoSuchPrincipal {
                setting: described("group"),
                value: group.clone(),
                kind: "group",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_users_are_one_line() {
        let settings = Settings {
            user: Some("no-such-user-runicorn".to_owned()),
            ..Settings::default()
        };
        let err = check(&settings).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'no-such-user-runicorn' for user (-u/--user): no such user on this system; \
             expected an existing user name or a numeric id"
        );
        assert_eq!(err.exit_code(), 1);
        let settings = Settings {
            user: Some("root".to_owned()),
            group: Some("0".to_owned()),
            ..Settings::default()
        };
        assert!(check(&settings).is_ok());
    }
}
