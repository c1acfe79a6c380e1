//! The clap `Command`, built from the settings table with the builder API,
//! and the reading of parsed arguments back into table assignments.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::inapplicable::INAPPLICABLE;
use super::raw::Raw;
use super::setting::{Arity, Setting};
use super::table::SETTINGS;
use crate::error::{CliError, Origin};

/// The id of the `--check-config` action.
pub const CHECK_CONFIG: &str = "check_config";
/// The id of the `--print-config` action.
pub const PRINT_CONFIG: &str = "print_config";

const ABOUT: &str = "A pre-fork HTTP/1.1 server and process manager, with the concurrency model chosen at run time.";

const AFTER_HELP: &str = "\
Settings come from, lowest precedence first: defaults (PORT, WEB_CONCURRENCY and FORWARDED_ALLOW_IPS
set some), the TOML config file (-c, or ./runicorn.toml when it exists, with [env.NAME] sections chosen
by --env-name or RUNICORN_ENV), RUNICORN_CMD_ARGS, then the command line.
`runicorn ctl --help`: ask a running master through its --control-socket (status, workers, reload, stop).
`runicorn bench --help`: serve an app under each worker class, load it, compare, get a recommendation.
Server hooks are config-file keys, such as post_fork = \"myapp:post_fork\". Reference: docs/settings.md.";

fn inapplicable_id(key: &str) -> String {
    format!("inapplicable.{key}")
}

fn arg_for(setting: &'static Setting) -> Option<Arg> {
    let mut arg = Arg::new(setting.key)
        .help(first_sentence(setting.doc))
        .long_help(setting.doc);
    match setting.arity {
        Arity::FileOnly => return None,
        Arity::Positional => {
            return Some(
                arg.value_name(setting.value_name)
                    .index(1)
                    .action(ArgAction::Set),
            )
        }
        Arity::Flag => arg = arg.action(ArgAction::SetTrue),
        Arity::One => {
            arg = arg
                .action(ArgAction::Set)
                .value_name(setting.value_name)
                .allow_negative_numbers(true);
        }
        Arity::OptionalValue(bare) => {
            arg = arg
                .action(ArgAction::Set)
                .value_name(setting.value_name)
                .num_args(0..=1)
                .default_missing_value(bare);
        }
        Arity::Many => {
            arg = arg
                .action(ArgAction::Append)
                .value_name(setting.value_name)
                .allow_negative_numbers(true);
        }
    }
    if let Some(short) = setting.short {
        arg = arg.short(short);
    }
    let (primary, aliases) = setting.long.split_first()?;
    arg = arg.long(*primary).visible_aliases(aliases.iter().copied());
    Some(arg.help_heading(setting.section.title()))
}

fn first_sentence(doc: &str) -> String {
    match doc.find(". ") {
        Some(end) => doc[..=end].to_owned(),
        None => doc.to_owned(),
    }
}

/// The `runicorn` command: every setting's flags, the two actions, and the
/// refused Gunicorn flags (hidden, so using one gets the alternative).
pub fn command() -> Command {
    let mut command = Command::new("runicorn")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .after_help(AFTER_HELP)
        .override_usage("runicorn [OPTIONS] APP")
        .args_override_self(true)
        .max_term_width(100);
    for setting in SETTINGS {
        if let Some(arg) = arg_for(setting) {
            command = command.arg(arg);
        }
    }
    command = command
        .arg(
            Arg::new(CHECK_CONFIG)
                .long("check-config")
                .action(ArgAction::SetTrue)
                .help("Check the configuration and load the app as a worker would, then exit 0 or 1 with the reason.")
                .help_heading("Debugging"),
        )
        .arg(
            Arg::new(PRINT_CONFIG)
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help("Print the resolved configuration as TOML that -c reads back, then exit.")
                .help_heading("Debugging"),
        );
    for entry in INAPPLICABLE {
        if let Some((primary, aliases)) = entry.long.split_first() {
            let arg = Arg::new(inapplicable_id(entry.key))
                .long(*primary)
                .aliases(aliases.iter().copied())
                .hide(true);
            let arg = if entry.takes_value {
                arg.action(ArgAction::Set).allow_hyphen_values(true)
            } else {
                arg.action(ArgAction::SetTrue)
            };
            command = command.arg(arg);
        }
    }
    command
}

/// One value for one setting, from one place.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The setting.
    pub setting: &'static Setting,
    /// The value as written.
    pub raw: Raw,
    /// Where it was written.
    pub origin: Origin,
}

/// What one argument vector says: its assignments and its actions.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Settings given, in table order.
    pub assignments: Vec<Assignment>,
    /// `--check-config` was given.
    pub check_config: bool,
    /// `--print-config` was given.
    pub print_config: bool,
}

impl Parsed {
    /// The value given for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Raw> {
        self.assignments
            .iter()
            .find(|assignment| assignment.setting.key == key)
            .map(|assignment| &assignment.raw)
    }
}

/// Parses one argument vector (the program name first).
pub fn parse<I, T>(args: I, origin: &Origin) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    read_matches(&matches, origin)
}

fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

fn read_matches(matches: &ArgMatches, origin: &Origin) -> Result<Parsed, CliError> {
    for entry in INAPPLICABLE {
        if !entry.long.is_empty() && given(matches, &inapplicable_id(entry.key)) {
            return Err(CliError::Inapplicable {
                key: format!("--{}", entry.long[0]),
                origin: origin.clone(),
                instead: entry.instead,
            });
        }
    }
    let mut parsed = Parsed {
        check_config: matches.get_flag(CHECK_CONFIG),
        print_config: matches.get_flag(PRINT_CONFIG),
        ..Parsed::default()
    };
    for setting in SETTINGS {
        if setting.arity == Arity::FileOnly || !given(matches, setting.key) {
            continue;
        }
        let raw = match setting.arity {
            Arity::Flag => Raw::Bool(true),
            Arity::Many => Raw::List(
                matches
                    .get_many::<String>(setting.key)
                    .into_iter()
                    .flatten()
                    .map(|value| Raw::Text(value.clone()))
                    .collect(),
            ),
            _ => match matches.get_one::<String>(setting.key) {
                Some(value) => Raw::Text(value.clone()),
                None => continue,
            },
        };
        parsed.assignments.push(Assignment {
            setting,
            raw,
            origin: origin.clone(),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn flags_map_to_settings() {
        let parsed = parse(
            [
                "runicorn",
                "-w",
                "3",
                "-b",
                "a:1",
                "-b",
                "b:2",
                "--preload",
                "--keep-alive",
                "5",
                "builtin:hello",
            ],
            &Origin::CommandLine,
        )
        .unwrap();
        assert_eq!(parsed.get("workers"), Some(&Raw::Text("3".to_owned())));
        assert_eq!(
            parsed.get("bind"),
            Some(&Raw::List(vec![
                Raw::Text("a:1".to_owned()),
                Raw::Text("b:2".to_owned())
            ]))
        );
        assert_eq!(parsed.get("preload_app"), Some(&Raw::Bool(true)));
        assert_eq!(parsed.get("keepalive"), Some(&Raw::Text("5".to_owned())));
        assert_eq!(
            parsed.get("wsgi_app"),
            Some(&Raw::Text("builtin:hello".to_owned()))
        );
    }

    #[test]
    fn negative_numbers_reach_the_validator() {
        let parsed = parse(["runicorn", "-w", "-3"], &Origin::CommandLine).unwrap();
        assert_eq!(parsed.get("workers"), Some(&Raw::Text("-3".to_owned())));
    }

    #[test]
    fn the_last_value_wins_and_aliases_work() {
        let parsed = parse(
            [
                "runicorn",
                "-w",
                "2",
                "--workers",
                "4",
                "--log-file",
                "x.log",
            ],
            &Origin::CommandLine,
        )
        .unwrap();
        assert_eq!(parsed.get("workers"), Some(&Raw::Text("4".to_owned())));
        assert_eq!(parsed.get("errorlog"), Some(&Raw::Text("x.log".to_owned())));
    }

    #[test]
    fn refused_gunicorn_flags_name_the_alternative() {
        let err = parse(
            ["runicorn", "--paste", "/x.ini", "app:app"],
            &Origin::CommandLine,
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("MODULE:VARIABLE"), "{err}");
    }
}
