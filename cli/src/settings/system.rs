//! Stage two checks: values that are well-formed but must also exist on
//! this system (users, groups), checked before anything is bound or forked.
//!
//! The lookup itself is the master's (`runicorn_master::privileges`, which
//! resolves `-u`/`-g` into the credentials workers drop to); this module
//! only words its refusal as a settings error, naming the flag.

use runicorn_master::privileges::Credentials;
use runicorn_master::MasterError;
use runicorn_worker::Settings;

use super::table;
use crate::error::CliError;

fn described(key: &str) -> String {
    table::find(key).map_or_else(|| key.to_owned(), |setting| setting.described())
}

/// Checks `-u/--user` and `-g/--group` name an existing user and group (or
/// are numeric ids, as Gunicorn takes them).
pub fn check(settings: &Settings) -> Result<(), CliError> {
    // Anything else a resolve could report, the arbiter reports when it
    // resolves the same settings at start.
    let Err(MasterError::NoSuchId { setting, value, .. }) = Credentials::resolve(settings) else {
        return Ok(());
    };
    Err(CliError::NoSuchPrincipal {
        setting: described(setting),
        value,
        kind: setting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_users_and_groups_are_one_line() {
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
            group: Some("no-such-group-runicorn".to_owned()),
            ..Settings::default()
        };
        assert_eq!(
            check(&settings).unwrap_err().to_string(),
            "invalid value 'no-such-group-runicorn' for group (-g/--group): no such group on this system; \
             expected an existing group name or a numeric id"
        );
        let settings = Settings {
            user: Some("root".to_owned()),
            group: Some("0".to_owned()),
            ..Settings::default()
        };
        assert!(check(&settings).is_ok());
    }
}
