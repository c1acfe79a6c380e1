//! `main`: resolve, then print the config, check it, or run the arbiter.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use runicorn_master::{log, AppLoader, Arbiter, ArbiterConfig, Hooks, NoHooks, Role};
use runicorn_worker::{Ending, Settings, WorkerClass};

use crate::app::{Linked, Loader};
use crate::classes;
use crate::error::CliError;
use crate::reload::{self, WithWatcher};
use crate::settings::{reload as reread, render, resolve, system, Inputs};

/// A line to log once the log is set up.
enum Note {
    Info(String),
    Warning(String),
}

impl Note {
    fn log(&self) {
        match self {
            Note::Info(line) => tracing::info!("{line}"),
            Note::Warning(line) => tracing::warn!("{line}"),
        }
    }
}

/// Resolves settings for a run: every source, then the system checks,
/// Gunicorn's worker-class names and its `--threads` rule. Returns the
/// settings and the lines to log.
fn settings_for_run(inputs: &Inputs) -> Result<(Settings, Vec<Note>), CliError> {
    let mut settings = reread(inputs)?;
    system::check(&settings)?;
    // The certificate and key are read and checked here, by the master, at
    // start and on every HUP (a HUP whose files fail is refused whole).
    settings.load_tls().map_err(CliError::Tls)?;
    let mapped = classes::map_gunicorn_class(&mut settings).map(Note::Warning);
    let promoted = classes::promote_threads(&mut settings).map(Note::Info);
    let unused = classes::unused_by_class(&settings)
        .into_iter()
        .map(Note::Warning);
    Ok((
        settings,
        mapped.into_iter().chain(promoted).chain(unused).collect(),
    ))
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
    main_with_apps(Linked::default())
}

/// The `runicorn` command in a binary that links its own apps in, as the
/// built-in ones are: `linked` pairs a `module:variable` name (what the
/// command line names) with the app, its async entry included.
pub fn main_with_apps(linked: Linked) -> ExitCode {
    let loader = Loader::with_linked(linked);
    if let Ok(master) = std::env::var(reload::WATCHER_ENV) {
        return reload::watcher_main(&master);
    }
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|first| first == "ctl") {
        return crate::ctl::main(args.skip(1));
    }
    if args.peek().is_some_and(|first| first == "bench") {
        return runicorn_bench::main(args.skip(1));
    }
    // Before anything (a Python config file's interpreter) copies the
    // environment: take out what was handed to this master alone.
    runicorn_master::inherit::capture();
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
    if let Err(err) =
        log::LogOptions::from_settings(&settings).and_then(|options| log::init(&options))
    {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    for note in &notes {
        note.log();
    }
    let hooks = match load_hooks(&settings) {
        Ok(hooks) => hooks,
        Err(code) => return code,
    };
    if resolved.check_config {
        return check_config(&settings, &loader);
    }
    serve(inputs, settings, class, hooks, loader)
}

/// The server hooks the config names, wrapped with the `--reload` watcher.
fn load_hooks(settings: &Settings) -> Result<Arc<dyn Hooks>, ExitCode> {
    let hooks: Arc<dyn Hooks> = match crate::hooks::load(settings) {
        Ok(Some(hooks)) => hooks,
        Ok(None) => Arc::new(NoHooks),
        Err(err) => {
            eprintln!("error: {err}");
            return Err(Ending::of_load_error(&err).into());
        }
    };
    if settings.reload {
        return Ok(Arc::new(WithWatcher::new(
            hooks,
            reload::watched_files(settings),
        )));
    }
    Ok(hooks)
}

/// Hands everything to the arbiter; HUP re-resolves every source.
fn serve(
    inputs: Inputs,
    settings: Settings,
    class: Arc<dyn WorkerClass>,
    hooks: Arc<dyn Hooks>,
    loader: Loader,
) -> ExitCode {
    let running_class = settings.worker_class.clone();
    let reload = Box::new(move || {
        let (settings, notes) = settings_for_run(&inputs).map_err(|err| err.to_string())?;
        if settings.worker_class != running_class {
            return Err(format!(
                "-k/--worker-class changed from '{running_class}' to '{}': a new class needs a restart",
                settings.worker_class
            ));
        }
        for note in &notes {
            note.log();
        }
        if crate::python::opened().is_some() {
            // Hooks see the new settings as `server.cfg`.
            crate::python::start(Some(&settings))?;
        }
        Ok(settings)
    });
    let config = ArbiterConfig {
        settings,
        class,
        loader: Arc::new(loader),
        reload,
        hooks,
    };
    match Arbiter::new(config) {
        Ok(arbiter) => match arbiter.run() {
            Role::Master(code) => code,
            // A forked worker, out of the master's code: run it here.
            Role::Worker(child) => child.run().into(),
        },
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// `--check-config`: everything was validated and the hooks loaded; now
/// load the app as a worker would (after `--chdir`), and say so.
fn check_config(settings: &Settings, loader: &Loader) -> ExitCode {
    if let Some(dir) = &settings.chdir {
        if let Err(err) = std::env::set_current_dir(dir) {
            eprintln!(
                "error: cannot change to --chdir {}: {err}; check that the directory exists",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    match loader.load(settings) {
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
