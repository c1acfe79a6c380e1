//! Text generated from the table: `--print-config` and `docs/settings.md`.

use std::fmt::Write;

use runicorn_worker::Settings;

use super::inapplicable::INAPPLICABLE;
use super::setting::{Arity, Section, Setting};
use super::table::SETTINGS;

fn sections() -> Vec<Section> {
    let mut sections: Vec<Section> = SETTINGS.iter().map(|setting| setting.section).collect();
    sections.dedup();
    sections
}

/// The resolved settings as a TOML config file that `-c` reads back.
pub fn print_config(settings: &Settings) -> String {
    let mut out = String::from(
        "# runicorn --print-config: the resolved settings. Read back with `runicorn -c FILE`.\n",
    );
    for section in sections() {
        let _ = write!(out, "\n# --- {}\n", section.title());
        for setting in SETTINGS.iter().filter(|setting| setting.section == section) {
            let value = (setting.show)(settings);
            match (setting.key, value) {
                ("config" | "env_name", Some(value)) => {
                    let _ = writeln!(out, "# {} = {value}  (command line only)", setting.key);
                }
                (_, Some(value)) => {
                    let _ = writeln!(out, "{} = {value}", setting.key);
                }
                (_, None) => {
                    let _ = writeln!(out, "# {} is unset", setting.key);
                }
            }
        }
    }
    out
}

/// The resolved settings as a JSON object under Gunicorn's names (what a
/// Python hook reads as `server.cfg`); unset settings are `null`.
pub fn settings_json(settings: &Settings) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for setting in SETTINGS {
        let value = (setting.show)(settings)
            .and_then(|value| serde_json::to_value(value).ok())
            .unwrap_or(serde_json::Value::Null);
        object.insert(setting.key.to_owned(), value);
    }
    // Gunicorn's name for the app setting, and the hooks by name.
    object.insert(
        "workers".to_owned(),
        serde_json::Value::from(settings.workers),
    );
    serde_json::Value::Object(object)
}

fn flags_cell(setting: &Setting) -> String {
    match setting.arity {
        Arity::Positional => format!("`{}` (positional)", setting.value_name),
        Arity::FileOnly => "config file only".to_owned(),
        Arity::Flag => format!("`{}`", setting.flags_text()),
        Arity::One => format!("`{} {}`", setting.flags_text(), setting.value_name),
        Arity::OptionalValue(bare) => format!(
            "`{} [{}]` (bare: `{bare}`)",
            setting.flags_text(),
            setting.value_name
        ),
        Arity::Many => format!(
            "`{} {}` (repeatable)",
            setting.flags_text(),
            setting.value_name
        ),
    }
}

fn default_cell(setting: &Setting) -> String {
    let shown = match (setting.show)(&Settings::default()) {
        Some(value) => format!("`{value}`"),
        None => "unset".to_owned(),
    };
    match setting.env_default {
        Some(env_default) => format!("{shown}; {}", env_default.doc),
        None => shown,
    }
}

/// `docs/settings.md`, generated from the table.
pub fn reference() -> String {
    let mut out = String::from(
        "# Settings reference\n\n\
         Generated from `cli/src/settings/table.rs`; do not edit by hand. Regenerate with\n\
         `RUNICORN_BLESS=1 cargo test -p runicorn-cli`.\n\n\
         Keys and flags are Gunicorn's. Precedence, lowest first: defaults (some taken from the environment),\n\
         the TOML config file (`-c PATH`, or `./runicorn.toml` when it exists), `RUNICORN_CMD_ARGS` (one\n\
         string, split with shell rules), then the command line. A list setting (`bind`, `raw_env`, ...) given\n\
         in a higher source replaces the whole list.\n\n\
         The config file's top-level keys are the keys below. `[env.NAME]` tables hold overrides applied after\n\
         the top level when NAME is selected with `--env-name NAME` or `RUNICORN_ENV=NAME`:\n\n\
         ```toml\nworkers = 2\nbind = [\"127.0.0.1:8000\"]\npost_fork = \"myapp:post_fork\"\n\n\
         [env.production]\nworkers = 8\nbind = [\"0.0.0.0:80\"]\n```\n\n\
         An unknown key is an error naming the file, the line and the nearest known key. HUP re-reads every\n\
         source; when the file is broken the error is logged and the running configuration stays.\n\
         `runicorn --print-config` prints the resolved settings in this format; `runicorn --check-config`\n\
         validates them and loads the app as a worker would, then exits 0 or 1.\n\n\
         Invalid values are refused in one line naming the setting, the value and what is allowed; the exit\n\
         code is 2 when the value came from the command line or `RUNICORN_CMD_ARGS`, 1 otherwise.\n",
    );
    for section in sections() {
        let _ = write!(
            out,
            "\n## {}\n\n| key | flags | default | meaning |\n|---|---|---|---|\n",
            section.title()
        );
        for setting in SETTINGS.iter().filter(|setting| setting.section == section) {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                setting.key,
                flags_cell(setting),
                default_cell(setting),
                setting.doc.replace('|', "\\|")
            );
        }
    }
    out.push_str(
        "\n## Gunicorn settings that do not apply\n\n\
         Using one, as a flag or a config key, is an error that says what to do instead.\n\n\
         | key | flags | instead |\n|---|---|---|\n",
    );
    for entry in INAPPLICABLE {
        let flags: Vec<String> = entry
            .long
            .iter()
            .map(|long| format!("`--{long}`"))
            .collect();
        let flags = if flags.is_empty() {
            "config only".to_owned()
        } else {
            flags.join(", ")
        };
        let _ = writeln!(out, "| `{}` | {flags} | {} |", entry.key, entry.instead);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::settings::file;

    fn docs_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/settings.md")
    }

    #[test]
    fn docs_settings_md_is_fresh() {
        let expected = reference();
        if std::env::var_os("RUNICORN_BLESS").is_some() {
            std::fs::write(docs_path(), &expected).unwrap();
            return;
        }
        let actual = std::fs::read_to_string(docs_path()).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/settings.md is stale: regenerate it with `RUNICORN_BLESS=1 cargo test -p runicorn-cli`"
        );
    }

    #[test]
    fn print_config_round_trips() {
        let mut settings = Settings {
            app: "builtin:hello".to_owned(),
            bind: vec![
                "127.0.0.1:0".to_owned(),
                "unix:/tmp/x \"y\".sock".to_owned(),
            ],
            workers: 3,
            timeout: std::time::Duration::from_millis(2500),
            umask: Some(0o27),
            user: Some("nobody".to_owned()),
            raw_env: vec![("A".to_owned(), "b=c".to_owned())],
            hooks: vec![("post_fork".to_owned(), "myapp:post_fork".to_owned())],
            forwarded_allow_ips: vec!["10.0.0.0/8".to_owned(), "::1".to_owned()],
            secure_scheme_headers: vec![("X-Scheme".to_owned(), "https".to_owned())],
            ..Settings::default()
        };
        let text = print_config(&settings);
        let parsed = file::parse(std::path::Path::new("printed.toml"), &text).unwrap();
        let mut reread = Settings::default();
        for assignment in &parsed.top {
            (assignment.setting.apply)(&mut reread, &assignment.raw).unwrap();
        }
        settings.config = None;
        assert_eq!(reread, settings, "{text}");
    }
}
