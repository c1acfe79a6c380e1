//! `main`: resolve, then print the config, check it, or run the arbiter.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use runicorn_master::{log, AppLoader, Arbiter, ArbiterConfig, NoHooks, Settings};

use crate::app::Loader;
use crate::classes;
use crate::error::CliError;
use crate::settings::{reload, render, resolve, system, Inputs};

/// Resolves settings for a run: every source, then the system checks and
/// Gunicorn's `--threads` rule. Returns the settings and the lines to log.
fn settings_for_run(inputs: &Inputs) -> Result<(Settings, Vec<String>), CliError> {
    let mut settings = reload(inputs)?;
    system::check(&settings)?;
    let notes = classes::promote_threads(&mut settings)
        .into_iter()
        .collect();
    Ok((settings, notes))
}

fn fail(err: &CliError) -> ExitCode {
    if let CliError::Clap(clap_err) = err {
        let _ = clap_err.print();
    } else {
        eprintln!("error: {err}");
    }
    ExitCode::from(err.exit_code())
}

/// The `runicorn` command.
pub fn main() -> ExitCode {
    let inputs = Inputs::from_process();
    let resolved = match resolve(&inputs) {
        Ok(resolved) => resolved,
        Err(err) => return fail(&err),
    };
    if resolved.print_config {
        let mut stdout = std::io::stdout().lock();
        return match stdout.write_all(render::print_config(&resolved.settings).as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let (settings, notes) = match settings_for_run(&inputs) {
        Ok(found) => found,
        Err(err) => return fail(&err),
    };
    let class = match classes::select(&settings) {
        Ok(class) => class,
        Err(err) => return fail(&err),
    };
    if let Err(err) = log::init(&settings.loglevel, &settings.errorlog) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    for note in notes {
        tracing::info!("{note}");
    }
    if !settings.hooks.is_empty() {
        let names: Vec<&str> = settings
            .hooks
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        eprintln!(
            "error: server hooks ({}) cannot be loaded by this build yet: remove them from the config file",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    if resolved.check_config {
        return check_config(&settings);
    }
    let running_class = settings.worker_class.clone();
    let reload = Box::new(move || {
        let (settings, notes) = settings_for_run(&inputs).map_err(|err| err.to_string())?;
        if settings.worker_class != running_class {
            return Err(format!(
                "-k/--worker-class changed from '{running_class}' to '{}': a new class needs a restart",
                settings.worker_class
            ));
        }
        for note in notes {
            tracing::info!("{note}");
        }
        Ok(settings)
    });
    let config = ArbiterConfig {
        settings,
        class,
        loader: Arc::new(Loader),
        reload,
        hooks: Arc::new(NoHooks),
    };
    match Arbiter::new(config) {
        Ok(arbiter) => arbiter.run(),
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// `--check-config`: everything was validated; now load the app as a worker
/// would (after `--chdir`), and say so.
fn check_config(settings: &Settings) -> ExitCode {
    if let Some(dir) = &settings.chdir {
        if let Err(err) = std::env::set_current_dir(dir) {
            eprintln!(
                "error: cannot change to --chdir {}: {err}; check that the directory exists",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    match Loader.load(settings) {
        Ok(app) => {
            eprintln!(
                "configuration OK: app {} loads, worker class {}",
                app.name, settings.worker_class
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
