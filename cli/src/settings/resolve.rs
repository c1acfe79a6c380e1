//! Precedence: defaults < config file < `RUNICORN_CMD_ARGS` < command line.
//!
//! Stage one of configuration: every source read, every value validated,
//! layered into one `Settings`. [`resolve`] is pure over its [`Inputs`]
//! (argument vector, environment, working directory) apart from reading the
//! config file, so HUP re-runs it to re-read every source.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use runicorn_worker::Settings;

use super::command::{self, Assignment, Parsed};
use super::file;
use super::raw::Raw;
use super::table::SETTINGS;
use crate::error::{CliError, Origin};

/// Everything resolution reads besides the config file.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The argument vector, program name first.
    pub args: Vec<OsString>,
    /// The environment (`RUNICORN_CMD_ARGS`, `RUNICORN_ENV`, `PORT`, ...).
    pub env: BTreeMap<String, String>,
    /// The working directory at start: relative config paths resolve here.
    pub cwd: PathBuf,
}

impl Inputs {
    /// This process's arguments, environment and working directory.
    pub fn from_process() -> Inputs {
        Inputs {
            args: std::env::args_os().collect(),
            env: std::env::vars_os()
                .filter_map(|(key, value)| {
                    Some((key.into_string().ok()?, value.into_string().ok()?))
                })
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }
}

/// The outcome of resolution: settings plus what the operator asked for.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The validated settings.
    pub settings: Settings,
    /// `--check-config`.
    pub check_config: bool,
    /// `--print-config`.
    pub print_config: bool,
}

/// The variable holding extra arguments, as Gunicorn's `GUNICORN_CMD_ARGS`.
pub const CMD_ARGS_VAR: &str = "RUNICORN_CMD_ARGS";

fn apply(settings: &mut Settings, assignment: &Assignment) -> Result<(), CliError> {
    let setting = assignment.setting;
    (setting.apply)(settings, &assignment.raw).map_err(|allowed| {
        // For a list, name the item that was refused rather than the list.
        let culprit = match &assignment.raw {
            Raw::List(items) => items
                .iter()
                .find(|item| (setting.apply)(&mut Settings::default(), item).is_err()),
            _ => None,
        };
        CliError::InvalidValue {
            setting: setting.described(),
            value: culprit.unwrap_or(&assignment.raw).to_string(),
            origin: assignment.origin.clone(),
            allowed,
        }
    })
}

fn text_of(raw: Option<&Raw>) -> Option<String> {
    match raw {
        Some(Raw::Text(text)) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// Resolves every source into settings.
pub fn resolve(inputs: &Inputs) -> Result<Resolved, CliError> {
    let command_line = command::parse(inputs.args.iter().cloned(), &Origin::CommandLine)?;
    let cmd_args = match inputs.env.get(CMD_ARGS_VAR) {
        Some(text) if !text.trim().is_empty() => {
            let words =
                shell_words::split(text).map_err(|err| CliError::CmdArgs(err.to_string()))?;
            command::parse(
                std::iter::once("runicorn".to_owned()).chain(words),
                &Origin::CmdArgs,
            )?
        }
        _ => Parsed::default(),
    };

    let mut settings = Settings::default();
    for setting in SETTINGS {
        if let Some(env_default) = setting.env_default {
            if let Some(value) = inputs.env.get(env_default.var) {
                let raw = (env_default.to_raw)(value);
                apply(
                    &mut settings,
                    &Assignment {
                        setting,
                        raw,
                        origin: Origin::Environment(env_default.var),
                    },
                )?;
            }
        }
    }

    let named_config =
        text_of(command_line.get("config")).or_else(|| text_of(cmd_args.get("config")));
    let config_path = file::locate(named_config.map(PathBuf::from), &inputs.cwd);
    let env_name = text_of(command_line.get("env_name"))
        .or_else(|| text_of(cmd_args.get("env_name")))
        .or_else(|| settings.env_name.clone());

    if let Some(path) = &config_path {
        let config = file::read(path)?;
        for assignment in &config.top {
            apply(&mut settings, assignment)?;
        }
        if let Some(name) = &env_name {
            match config.envs.get(name) {
                Some(section) => {
                    for assignment in section {
                        apply(&mut settings, assignment)?;
                    }
                }
                None if !config.envs.is_empty() => {
                    let available: Vec<String> = config
                        .envs
                        .keys()
                        .map(|name| format!("[env.{name}]"))
                        .collect();
                    return Err(CliError::NoEnvSection {
                        name: name.clone(),
                        path: path.clone(),
                        available: available.join(", "),
                    });
                }
                None => {}
            }
        }
    }
    for assignment in cmd_args.assignments.iter().chain(&command_line.assignments) {
        apply(&mut settings, assignment)?;
    }
    settings.config = config_path;
    settings.env_name = env_name;

    let print_config = command_line.print_config || cmd_args.print_config;
    if settings.app.is_empty() && !print_config {
        return Err(CliError::NoApp);
    }
    Ok(Resolved {
        settings,
        check_config: command_line.check_config || cmd_args.check_config,
        print_config,
    })
}

/// Re-reads every source, for HUP: the same arguments and environment, the
/// config file as it is now.
pub fn reload(inputs: &Inputs) -> Result<Settings, CliError> {
    resolve(inputs).map(|resolved| resolved.settings)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Scratch {
        dir: tempfile::TempDir,
    }

    impl Scratch {
        fn new(config: Option<&str>) -> Scratch {
            let dir = tempfile::tempdir().unwrap();
            if let Some(text) = config {
                std::fs::write(dir.path().join("runicorn.toml"), text).unwrap();
            }
            Scratch { dir }
        }

        fn inputs(&self, args: &[&str], env: &[(&str, &str)]) -> Inputs {
            Inputs {
                args: std::iter::once("runicorn")
                    .chain(args.iter().copied())
                    .map(OsString::from)
                    .collect(),
                env: env
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
                cwd: self.dir.path().to_owned(),
            }
        }

        fn resolve(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Settings, CliError> {
            resolve(&self.inputs(args, env)).map(|resolved| resolved.settings)
        }
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let scratch = Scratch::new(Some(
            "workers = 2\ntimeout = 10\nkeepalive = 7\nbind = [\"127.0.0.1:1\"]\n",
        ));
        let env = [
            ("WEB_CONCURRENCY", "5"),
            ("RUNICORN_CMD_ARGS", "-w 3 -t 20"),
            ("PORT", "9"),
        ];
        let settings = scratch.resolve(&["-w", "4", "app:app"], &env).unwrap();
        assert_eq!(settings.workers, 4, "command line beats RUNICORN_CMD_ARGS");
        assert_eq!(
            settings.timeout,
            Duration::from_secs(20),
            "RUNICORN_CMD_ARGS beats the file"
        );
        assert_eq!(
            settings.keepalive,
            Duration::from_secs(7),
            "the file beats the default"
        );
        assert_eq!(settings.bind, vec!["127.0.0.1:1"], "the file beats $PORT");
        assert_eq!(
            settings.graceful_timeout,
            Duration::from_secs(30),
            "the default stays"
        );
        assert_eq!(
            settings.config,
            Some(scratch.dir.path().join("runicorn.toml"))
        );
    }

    #[test]
    fn env_derived_defaults() {
        let scratch = Scratch::new(None);
        let env = [
            ("PORT", "5000"),
            ("WEB_CONCURRENCY", "3"),
            ("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.2"),
        ];
        let settings = scratch.resolve(&["app:app"], &env).unwrap();
        assert_eq!(settings.bind, vec!["0.0.0.0:5000"]);
        assert_eq!(settings.workers, 3);
        assert_eq!(settings.forwarded_allow_ips, vec!["10.0.0.1", "10.0.0.2"]);
        let settings = scratch.resolve(&["app:app"], &[]).unwrap();
        assert_eq!(
            settings,
            Settings {
                app: "app:app".to_owned(),
                ..Settings::default()
            }
        );
        let err = scratch
            .resolve(&["app:app"], &[("WEB_CONCURRENCY", "lots")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'lots' for workers (-w/--workers) from $WEB_CONCURRENCY: expected a whole number of at least 1"
        );
    }

    #[test]
    fn env_sections_override_the_top_level() {
        let scratch = Scratch::new(Some("workers = 2\n[env.production]\nworkers = 8\n"));
        assert_eq!(scratch.resolve(&["a:b"], &[]).unwrap().workers, 2);
        assert_eq!(
            scratch
                .resolve(&["--env-name", "production", "a:b"], &[])
                .unwrap()
                .workers,
            8
        );
        assert_eq!(
            scratch
                .resolve(&["a:b"], &[("RUNICORN_ENV", "production")])
                .unwrap()
                .workers,
            8
        );
        assert_eq!(
            scratch
                .resolve(&["-w", "1", "a:b"], &[("RUNICORN_ENV", "production")])
                .unwrap()
                .workers,
            1
        );
        let err = scratch
            .resolve(&["--env-name", "prod", "a:b"], &[])
            .unwrap_err();
        assert!(err.to_string().contains("[env.production]"), "{err}");
    }

    #[test]
    fn explicit_config_and_missing_config() {
        let scratch = Scratch::new(None);
        std::fs::write(scratch.dir.path().join("other.toml"), "workers = 6\n").unwrap();
        assert_eq!(
            scratch
                .resolve(&["-c", "other.toml", "a:b"], &[])
                .unwrap()
                .workers,
            6
        );
        assert_eq!(
            scratch
                .resolve(&["a:b"], &[("RUNICORN_CMD_ARGS", "-c other.toml")])
                .unwrap()
                .workers,
            6
        );
        let err = scratch
            .resolve(&["-c", "missing.toml", "a:b"], &[])
            .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }

    #[test]
    fn bad_values_are_one_line_with_the_right_exit_code() {
        let scratch = Scratch::new(None);
        let cases: [(&[&str], &str, u8); 5] = [
            (
                &["-w", "-3", "a:b"],
                "invalid value '-3' for workers (-w/--workers) on the command line",
                2,
            ),
            (
                &["--bind", "nonsense", "a:b"],
                "invalid value 'nonsense' for bind (-b/--bind)",
                2,
            ),
            (
                &["--log-level", "loud", "a:b"],
                "expected one of debug, info, warning, error, critical",
                2,
            ),
            (
                &["-t", "abc", "a:b"],
                "invalid value 'abc' for timeout (-t/--timeout)",
                2,
            ),
            (&[], "no application specified", 2),
        ];
        for (args, expected, code) in cases {
            let err = scratch.resolve(args, &[]).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{args:?}: {message}");
            assert_eq!(err.exit_code(), code, "{args:?}");
        }
        let scratch = Scratch::new(Some("workers = -1\n"));
        let err = scratch.resolve(&["a:b"], &[]).unwrap_err();
        assert!(err.to_string().contains("runicorn.toml line 1"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn raw_env_and_repeatable_flags() {
        let scratch = Scratch::new(Some(
            "bind = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\nraw_env = [\"A=1\"]\n",
        ));
        let settings = scratch
            .resolve(&["-e", "B=2", "-e", "C=x=y", "a:b"], &[])
            .unwrap();
        assert_eq!(settings.bind.len(), 2);
        assert_eq!(
            settings.raw_env,
            vec![
                ("B".to_owned(), "2".to_owned()),
                ("C".to_owned(), "x=y".to_owned())
            ]
        );
        let settings = scratch.resolve(&["-b", "unix:/tmp/s", "a:b"], &[]).unwrap();
        assert_eq!(settings.bind, vec!["unix:/tmp/s"]);
    }

    #[test]
    fn cmd_args_quotes() {
        let scratch = Scratch::new(None);
        let settings = scratch
            .resolve(&[], &[("RUNICORN_CMD_ARGS", "-n 'my app' builtin:hello")])
            .unwrap();
        assert_eq!(settings.proc_name.as_deref(), Some("my app"));
        assert_eq!(settings.app, "builtin:hello");
        let err = scratch
            .resolve(&["a:b"], &[("RUNICORN_CMD_ARGS", "-n 'open")])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn reload_reads_the_file_again() {
        let scratch = Scratch::new(Some("workers = 2\n"));
        let inputs = scratch.inputs(&["a:b"], &[]);
        assert_eq!(reload(&inputs).unwrap().workers, 2);
        std::fs::write(scratch.dir.path().join("runicorn.toml"), "workers = 3\n").unwrap();
        assert_eq!(reload(&inputs).unwrap().workers, 3);
        std::fs::write(scratch.dir.path().join("runicorn.toml"), "workers = \n").unwrap();
        assert!(reload(&inputs).is_err());
    }
}
