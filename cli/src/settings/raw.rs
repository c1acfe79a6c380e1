//! A setting's value as a source wrote it, before validation.
//!
//! The command line gives text, a TOML file gives typed values; both become a
//! [`Raw`] so that one validator per setting serves every source.

use std::fmt;

/// A value as written in one source.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// Text: every command-line value, and TOML strings.
    Text(String),
    /// A TOML boolean, or a command-line flag that was given.
    Bool(bool),
    /// A TOML integer.
    Int(i64),
    /// A TOML float.
    Float(f64),
    /// A repeated flag, or a TOML array.
    List(Vec<Raw>),
    /// A TOML table (`secure_scheme_headers`), keys in file order.
    Table(Vec<(String, Raw)>),
    /// A TOML value of a type no setting takes (a table, a date).
    Other(String),
}

impl Raw {
    /// Converts a TOML value.
    pub fn from_toml(value: &toml::Value) -> Raw {
        match value {
            toml::Value::String(text) => Raw::Text(text.clone()),
            toml::Value::Integer(number) => Raw::Int(*number),
            toml::Value::Float(number) => Raw::Float(*number),
            toml::Value::Boolean(flag) => Raw::Bool(*flag),
            toml::Value::Array(items) => Raw::List(items.iter().map(Raw::from_toml).collect()),
            toml::Value::Table(table) => Raw::Table(
                table
                    .iter()
                    .map(|(key, value)| (key.clone(), Raw::from_toml(value)))
                    .collect(),
            ),
            other => Raw::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Text(text) => f.write_str(text),
            Raw::Bool(flag) => write!(f, "{flag}"),
            Raw::Int(number) => write!(f, "{number}"),
            Raw::Float(number) => write!(f, "{number}"),
            Raw::List(items) => {
                let shown: Vec<String> = items.iter().map(Raw::to_string).collect();
                write!(f, "[{}]", shown.join(", "))
            }
            Raw::Table(entries) => {
                let shown: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| format!("{key} = {value}"))
                    .collect();
                write!(f, "{{{}}}", shown.join(", "))
            }
            Raw::Other(text) => f.write_str(text),
        }
    }
}
