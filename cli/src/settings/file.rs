//! The TOML config file: read, checked key by key, with line numbers.
//!
//! Top-level keys are settings; `[env.NAME]` tables hold per-environment
//! overrides, applied after the top level when NAME is selected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use toml::Spanned;

use super::command::Assignment;
use super::inapplicable;
use super::raw::Raw;
use super::table::{self, SETTINGS};
use crate::error::{CliError, Origin};

/// The file runicorn reads when `-c` is not given and it exists.
pub const DEFAULT_CONFIG: &str = "runicorn.toml";
/// Gunicorn's default config file, read when `runicorn.toml` is absent.
pub const GUNICORN_CONFIG: &str = "gunicorn.conf.py";

/// A config file, checked: its top-level assignments and its env sections.
#[derive(Debug, Default)]
pub struct ConfigFile {
    /// The top-level settings, in file order.
    pub top: Vec<Assignment>,
    /// `[env.NAME]` sections, by name.
    pub envs: BTreeMap<String, Vec<Assignment>>,
}

#[derive(serde::Deserialize)]
struct EnvSpans {
    #[serde(default)]
    env: BTreeMap<String, BTreeMap<Spanned<String>, IgnoredAny>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

fn syntax(path: &Path, text: &str, err: &toml::de::Error) -> CliError {
    CliError::ConfigSyntax {
        path: path.to_owned(),
        line: err.span().map_or(1, |span| line_of(text, span.start)),
        message: err.message().trim().to_owned(),
    }
}

/// The known key nearest to `key`, for "did you mean".
pub fn nearest_key(key: &str) -> Option<&'static str> {
    let normalised = key.replace('-', "_").to_ascii_lowercase();
    SETTINGS
        .iter()
        .map(|setting| (strsim::jaro_winkler(&normalised, setting.key), setting.key))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|left, right| left.0.total_cmp(&right.0))
        .map(|(_, known)| known)
}

fn assignment(key: &str, value: &toml::Value, origin: Origin) -> Result<Assignment, CliError> {
    if let Some(setting) = table::find(key) {
        let instead = match key {
            "config" => Some("give the file with -c/--config"),
            "env_name" => Some("select the section with --env-name or RUNICORN_ENV"),
            _ => None,
        };
        if let Some(instead) = instead {
            return Err(CliError::NotInFile {
                key: key.to_owned(),
                origin,
                instead,
            });
        }
        return Ok(Assignment {
            setting,
            raw: Raw::from_toml(value),
            origin,
        });
    }
    if let Some(entry) = inapplicable::find(key) {
        return Err(CliError::Inapplicable {
            key: key.to_owned(),
            origin,
            instead: entry.instead,
        });
    }
    let suggestion = match nearest_key(key) {
        Some(known) => format!(": did you mean '{known}'?"),
        None => ": see docs/settings.md or runicorn --help for the keys".to_owned(),
    };
    Err(CliError::UnknownKey {
        key: key.to_owned(),
        origin,
        suggestion,
    })
}

/// Parses a config file's text. `path` is only for messages.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, CliError> {
    let values: toml::Table = toml::from_str(text).map_err(|err| syntax(path, text, &err))?;
    let top_spans: BTreeMap<Spanned<String>, IgnoredAny> =
        toml::from_str(text).map_err(|err| syntax(path, text, &err))?;
    let line_for = |spans: &BTreeMap<Spanned<String>, IgnoredAny>, key: &str| {
        spans
            .keys()
            .find(|spanned| spanned.get_ref() == key)
            .map_or(1, |spanned| line_of(text, spanned.span().start))
    };
    let origin_at = |line| Origin::ConfigFile {
        path: path.to_owned(),
        line,
    };

    let mut file = ConfigFile::default();
    let mut top: Vec<(usize, Assignment)> = Vec::new();
    for (key, value) in &values {
        let line = line_for(&top_spans, key);
        if key == "env" {
            continue;
        }
        top.push((line, assignment(key, value, origin_at(line))?));
    }
    top.sort_by_key(|(line, _)| *line);
    file.top = top.into_iter().map(|(_, assignment)| assignment).collect();

    if let Some(envs) = values.get("env") {
        let env_line = line_for(&top_spans, "env");
        let not_sections = || CliError::InvalidValue {
            setting: "env".to_owned(),
            value: envs.to_string(),
            origin: origin_at(env_line),
            allowed: "[env.NAME] tables of settings".to_owned(),
        };
        let toml::Value::Table(envs) = envs else {
            return Err(not_sections());
        };
        let spans: EnvSpans = toml::from_str(text).map_err(|_| not_sections())?;
        for (name, section) in envs {
            let toml::Value::Table(section) = section else {
                return Err(not_sections());
            };
            let empty = BTreeMap::new();
            let section_spans = spans.env.get(name).unwrap_or(&empty);
            let mut assignments = Vec::new();
            for (key, value) in section {
                let line = line_for(section_spans, key);
                assignments.push((line, assignment(key, value, origin_at(line))?));
            }
            assignments.sort_by_key(|(line, _)| *line);
            file.envs.insert(
                name.clone(),
                assignments
                    .into_iter()
                    .map(|(_, assignment)| assignment)
                    .collect(),
            );
        }
    }
    Ok(file)
}

/// Reads and parses the file at `path`: TOML, or a Gunicorn config file
/// (Python), executed by the embedded interpreter.
pub fn read(path: &Path) -> Result<ConfigFile, CliError> {
    if crate::python::is_python_config(path) {
        return read_python(path);
    }
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ConfigRead {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// The config file to read: the one named, else `./runicorn.toml`, else
/// `./gunicorn.conf.py` (Gunicorn's default), if it exists.
pub fn locate(named: Option<PathBuf>, cwd: &Path) -> Option<PathBuf> {
    match named {
        Some(path) => Some(cwd.join(path)),
        None => [DEFAULT_CONFIG, GUNICORN_CONFIG]
            .iter()
            .map(|name| cwd.join(name))
            .find(|path| path.is_file()),
    }
}

/// Whether a Python config value asks for nothing (False, None, "", 0).
fn is_unset(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(flag) => !flag,
        serde_json::Value::String(text) => text.is_empty(),
        serde_json::Value::Number(number) => number.as_f64() == Some(0.0),
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(items) => items.is_empty(),
    }
}

/// A Gunicorn config file: executed as Gunicorn executes it; its
/// module-level names that are settings are checked by the same table as
/// TOML keys (a setting runicorn refuses is the same error), names that are
/// not settings are ignored as Gunicorn ignores them (with a warning when
/// one looks like a misspelt setting), and its hook functions become the
/// server hooks.
pub fn read_python(path: &Path) -> Result<ConfigFile, CliError> {
    let python_error = |message: String| CliError::PythonConfig {
        path: path.to_owned(),
        message,
    };
    if !path.is_file() {
        return Err(CliError::ConfigRead {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let json = crate::python::load_config(path)
        .map_err(|traceback| python_error(crate::python::config_failure(path, &traceback)))?;
    let value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|err| python_error(format!("bad settings from the file: {err}")))?;
    let origin = Origin::ConfigFile {
        path: path.to_owned(),
        line: 0,
    };
    let mut file = ConfigFile::default();
    if let Some(settings) = value.get("settings").and_then(|v| v.as_object()) {
        for (key, value) in settings {
            if value.is_null() {
                continue;
            }
            if inapplicable::find(key).is_some() && is_unset(value) {
                // `spew = False`, `tmp_upload_dir = None`: asks for nothing.
                continue;
            }
            let known = table::find(key).is_some() || inapplicable::find(key).is_some();
            if !known {
                if let Some(near) =
                    nearest_key(key).filter(|near| strsim::jaro_winkler(key, near) >= 0.9)
                {
                    eprintln!(
                        "warning: {}: '{key}' is not a setting and is ignored (did you mean '{near}'?)",
                        path.display()
                    );
                }
                continue;
            }
            let Ok(toml_value) = toml::Value::try_from(value) else {
                return Err(python_error(format!(
                    "'{key}' has a value runicorn cannot read: {value}"
                )));
            };
            file.top.push(assignment(key, &toml_value, origin.clone())?);
        }
    }
    if let Some(unsupported) = value.get("unsupported").and_then(|v| v.as_object()) {
        for (key, kind) in unsupported {
            if table::find(key).is_some() {
                return Err(python_error(format!(
                    "'{key}' is a {}; runicorn takes plain values (str, int, float, bool, list, dict) for settings",
                    kind.as_str().unwrap_or("object")
                )));
            }
        }
    }
    if let Some(hooks) = value.get("hooks").and_then(|v| v.as_array()) {
        for name in hooks.iter().filter_map(|name| name.as_str()) {
            let spec = toml::Value::String(format!("{}{name}", crate::python::HOOK_PREFIX));
            file.top.push(assignment(name, &spec, origin.clone())?);
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<ConfigFile, CliError> {
        parse(Path::new("runicorn.toml"), text)
    }

    #[test]
    fn unknown_keys_name_file_line_and_nearest() {
        let err = parse_text("workers = 2\n\nworker = 3\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown setting 'worker' in runicorn.toml line 3: did you mean 'workers'?"
        );
        assert_eq!(err.exit_code(), 1);
        let err =
            parse_text("[env.production]\nbind = [\"0.0.0.0:80\"]\nkeep_alive = 5\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown setting 'keep_alive' in runicorn.toml line 3: did you mean 'keepalive'?"
        );
    }

    #[test]
    fn inapplicable_keys_name_the_alternative() {
        let err = parse_text("paste = \"/srv/app.ini\"\n").unwrap_err();
        assert!(err.to_string().contains("MODULE:VARIABLE"), "{err}");
    }

    #[test]
    fn env_sections_are_kept_apart() {
        let file =
            parse_text("workers = 2\n[env.production]\nworkers = 8\n[env.dev]\nreload = true\n")
                .unwrap();
        assert_eq!(file.top.len(), 1);
        assert_eq!(file.envs["production"][0].raw, Raw::Int(8));
        assert_eq!(file.envs["dev"][0].setting.key, "reload");
    }

    #[test]
    fn syntax_errors_give_a_line() {
        let err = parse_text("workers = 2\nbind = [\n").unwrap_err();
        assert!(
            matches!(err, CliError::ConfigSyntax { line: 2 | 3, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn hooks_are_file_keys() {
        let file = parse_text("post_fork = \"myapp:post_fork\"\n").unwrap();
        assert_eq!(file.top[0].setting.key, "post_fork");
    }
}
