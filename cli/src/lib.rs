//! The `runicorn` command: resolves the settings from every source (the
//! table in [`settings`], the TOML file, `RUNICORN_CMD_ARGS`, the command
//! line), picks the worker class ([`classes`]) and the app loader ([`app`]),
//! and hands them to the arbiter; `runicorn ctl` ([`ctl`]) talks to a
//! running master instead. It never forks, binds or serves by itself:
//! `runicorn_master` does that, and nothing here may start a thread in the
//! master process.
#![forbid(unsafe_code)]

pub mod app;
pub mod classes;
pub mod ctl;
pub mod error;
pub mod hooks;
pub mod preload;
pub mod python;
pub mod reload;
pub mod run;
pub mod settings;

pub use error::CliError;
pub use run::{main, main_with_apps};
