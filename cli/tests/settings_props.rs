//! Property tests: arbitrary config files and argument vectors never panic
//! the settings code, and whatever resolves prints a config that reads back
//! to the same settings.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use proptest::prelude::*;
use runicorn_cli::settings::table::SETTINGS;
use runicorn_cli::settings::{file, render, resolve, Inputs};

fn keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = SETTINGS.iter().map(|setting| setting.key).collect();
    keys.extend(["env", "pythonpath", "worker", "certfile", ""]);
    keys
}

fn flags() -> Vec<String> {
    let mut flags = Vec::new();
    for setting in SETTINGS {
        flags.extend(setting.short.map(|short| format!("-{short}")));
        flags.extend(setting.long.iter().map(|long| format!("--{long}")));
    }
    flags.extend(
        [
            "--check-config",
            "--print-config",
            "--pythonpath",
            "--spew",
            "--",
            "-",
        ]
        .map(String::from),
    );
    flags
}

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|number| number.to_string()),
        any::<f64>().prop_map(|number| format!("{number:?}")),
        any::<bool>().prop_map(|flag| flag.to_string()),
        ".{0,12}".prop_map(|text| format!("{text:?}")),
        prop::collection::vec(".{0,8}", 0..3).prop_map(|items| format!("{items:?}")),
        Just("{ a = 1 }".to_owned()),
        Just("1979-05-27".to_owned()),
    ]
}

fn toml_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(keys()), toml_value())
            .prop_map(|(key, value)| format!("{key} = {value}")),
        "[a-z_.]{1,10}".prop_map(|name| format!("[env.{name}]")),
        ".{0,20}",
    ]
}

fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(flags()),
        2 => "[-0-9a-z:./=]{0,10}",
        1 => ".{0,10}",
        1 => Just("builtin:hello".to_owned()),
    ]
}

fn inputs(dir: &Path, args: Vec<String>, env: &[(&str, String)]) -> Inputs {
    Inputs {
        args: std::iter::once("runicorn".to_owned())
            .chain(args)
            .map(OsString::from)
            .collect(),
        env: env
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect::<BTreeMap<_, _>>(),
        cwd: dir.to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_text_as_a_config_file_never_panics(text in ".{0,200}") {
        let _ = file::parse(Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn any_config_lines_never_panic(lines in prop::collection::vec(toml_line(), 0..8)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runicorn.toml"), lines.join("\n")).unwrap();
        let env = [("RUNICORN_ENV", "a".to_owned())];
        let _ = resolve(&inputs(dir.path(), vec!["builtin:hello".to_owned()], &env));
    }

    #[test]
    fn any_arguments_never_panic(
        args in prop::collection::vec(argument(), 0..8),
        cmd_args in ".{0,30}",
        port in prop_oneof![Just(String::new()), ".{0,6}"],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("RUNICORN_CMD_ARGS", cmd_args)];
        if !port.is_empty() {
            env.push(("PORT", port.clone()));
            env.push(("WEB_CONCURRENCY", port));
        }
        if let Err(err) = resolve(&inputs(dir.path(), args, &env)) {
            let message = err.to_string();
            prop_assert!(err.exit_code() == 1 || err.exit_code() == 2 || err.exit_code() == 0);
            if !matches!(err, runicorn_cli::CliError::Clap(_)) {
                prop_assert!(!message.contains('\n'), "{}", message);
            }
        }
    }

    #[test]
    fn what_resolves_prints_a_config_that_reads_back(args in prop::collection::vec(argument(), 0..8)) {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args;
        args.push("builtin:hello".to_owned());
        let Ok(first) = resolve(&inputs(dir.path(), args, &[])) else { return Ok(()) };
        std::fs::write(dir.path().join("printed.toml"), render::print_config(&first.settings)).unwrap();
        let again = resolve(&inputs(dir.path(), vec!["-c".to_owned(), "printed.toml".to_owned()], &[]));
        let mut again = again.map_err(|err| TestCaseError::fail(err.to_string()))?.settings;
        let mut expected = first.settings;
        again.config = None;
        expected.config = None;
        again.env_name.clone_from(&expected.env_name);
        prop_assert_eq!(again, expected);
    }
}
