//! Stage one of configuration: the settings table and its sources.
//!
//! `table` declares every setting once; `command` builds the clap command
//! from it; `file` reads the TOML config; `resolve` layers defaults, the
//! file, `RUNICORN_CMD_ARGS` and the command line into `runicorn_worker::Settings`;
//! `render` generates `--print-config` and `docs/settings.md`.

pub mod command;
pub mod file;
pub mod inapplicable;
pub mod parse;
pub mod raw;
pub mod render;
pub mod resolve;
pub mod setting;
pub mod system;
pub mod table;

pub use resolve::{reload, resolve, Inputs, Resolved};
