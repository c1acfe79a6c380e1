//! The Python user's install, for real (issue 13, "Installing it the way
//! Python users install servers"): the wheel is built with maturin from the
//! repository's pyproject.toml, installed with pip into a fresh virtual
//! environment beside Flask (pinned by tests/python/requirements.txt), and
//! that environment's `bin/runicorn` serves the README's quick-start app
//! (examples/python/flaskapp.py) with no `VIRTUAL_ENV`, no
//! `LD_LIBRARY_PATH` and a `PATH` without the build tree: the binary must
//! find its libpython and its environment by itself.
//!
//! Tools come from PyPI with pip, into virtual environments under
//! `<target>/packaging/`: maturin (pinned) once, the app's environment anew
//! every run. The wheel is cached there per hash of the sources it is built
//! from, so a rerun without changes skips maturin; a fresh build directory
//! (CI) always builds it. It is built with cargo's `dev` profile (the
//! release profile's LTO build takes minutes on two cores; `pip install .`
//! builds with `release`, which changes optimisation only, not what goes in
//! the wheel or how the binary finds its Python).

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;

use runicorn_tests::command::run_ok;
use runicorn_tests::examples::{root, target_dir};
use runicorn_tests::python::REQUIREMENTS;
use runicorn_tests::{deadline, get, Launch, Signal};

/// The maturin the project builds with (pyproject.toml's build-system).
const MATURIN: &str = "maturin==1.16.0";
/// Bounds for the slow steps (a cold dev build took 1m46s here).
const BUILD_SECS: f64 = 1200.0;
const PIP_SECS: f64 = 300.0;
/// A `PATH` with nothing of the build tree, cargo or pyenv on it.
const PLAIN_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The interpreter to build for and to make the app's venv from:
/// `$PYO3_PYTHON` (as pyo3 picks it), else `python3`, as an absolute path.
fn python() -> PathBuf {
    let name = std::env::var_os("PYO3_PYTHON").unwrap_or_else(|| "python3".into());
    let output = run_ok(
        "python3 (a Python 3 with venv and pip; .ci/run installs it)",
        Command::new(&name).args(["-c", "import sys; print(sys.executable)"]),
        60.0,
    );
    PathBuf::from(output.trim())
}

/// The shared libpython of `python`, resolved (a machine may have another
/// of the same version in the loader's default paths: Debian's beside
/// pyenv's).
fn libpython(python: &Path) -> PathBuf {
    let output = run_ok(
        "python3 (its libpython)",
        Command::new(python).args([
            "-c",
            "import os, sysconfig; v = sysconfig.get_config_var; \
             print(os.path.realpath(os.path.join(v('LIBDIR'), v('INSTSONAME'))))",
        ]),
        60.0,
    );
    PathBuf::from(output.trim())
}

/// A virtual environment at `dir` made by `python`, with `packages`
/// installed from PyPI by its pip.
fn venv(python: &Path, dir: &Path, packages: &[&str]) {
    run_ok(
        "python3 -m venv",
        Command::new(python).arg("-m").arg("venv").arg(dir),
        PIP_SECS,
    );
    run_ok(
        "pip install",
        Command::new(dir.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--no-input"])
            .args(packages)
            .env_remove("VIRTUAL_ENV"),
        PIP_SECS,
    );
}

/// maturin in `<work>/maturin`, installed once.
fn maturin(python: &Path, work: &Path) -> PathBuf {
    let dir = work.join("maturin");
    let maturin = dir.join("bin/maturin");
    let wanted = MATURIN.replace("==", " ");
    let installed = Command::new(&maturin)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == wanted);
    if !installed {
        let _ = std::fs::remove_dir_all(&dir);
        venv(python, &dir, &[MATURIN]);
    }
    maturin
}

/// Hashes the files under `path` (sorted, names and contents), skipping
/// build output and VCS data.
fn hash_tree(hasher: &mut DefaultHasher, root: &Path, path: &Path) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if path.is_dir() {
        if name == "target" || name.starts_with('.') || name == "__pycache__" {
            return;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            hash_tree(hasher, root, &entry);
        }
    } else if path.is_file() {
        let relative = path.strip_prefix(root).unwrap_or(path);
        hasher.write(relative.as_os_str().as_encoded_bytes());
        hasher.write(&std::fs::read(path).unwrap_or_default());
    }
}

/// The wheel's cache key: everything in the repository but the parts no
/// wheel is built from (tests, benchmarks, docs, examples), the
/// interpreter, maturin's version and the profile.
fn source_hash(python: &Path, profile: &str) -> String {
    let mut hasher = DefaultHasher::new();
    let root = root();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("read the workspace root")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !matches!(name, "tests" | "bench" | "docs" | "examples")
        })
        .collect();
    entries.sort();
    for entry in entries {
        hash_tree(&mut hasher, root, &entry);
    }
    hasher.write(python.as_os_str().as_encoded_bytes());
    hasher.write(MATURIN.as_bytes());
    hasher.write(profile.as_bytes());
    format!("{:016x}", hasher.finish())
}

/// The one `.whl` in `dir`.
fn wheel_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
}

/// The wheel for these sources: cached, or built now by maturin from
/// pyproject.toml into its own cargo target dir (so that the workspace's
/// `target/debug/runicorn`, built without Python, is not replaced).
fn wheel(python: &Path, work: &Path) -> PathBuf {
    const PROFILE: &str = "dev";
    let dir = work.join("wheels").join(source_hash(python, PROFILE));
    if let Some(wheel) = wheel_in(&dir) {
        eprintln!("packaging: reusing {}", wheel.display());
        return wheel;
    }
    let maturin = maturin(python, work);
    let staging = work.join(format!("wheels/staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let started = std::time::Instant::now();
    run_ok(
        "maturin build",
        Command::new(&maturin)
            .args(["build", "--profile", PROFILE, "--strip", "--interpreter"])
            .arg(python)
            .arg("--out")
            .arg(&staging)
            .current_dir(root())
            .env("CARGO_TARGET_DIR", work.join("cargo"))
            .env_remove("VIRTUAL_ENV")
            .env_remove("LD_LIBRARY_PATH"),
        BUILD_SECS,
    );
    eprintln!(
        "packaging: maturin build took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    // Keep only this hash's wheel.
    if let Ok(entries) = std::fs::read_dir(work.join("wheels")) {
        for entry in entries.filter_map(Result::ok) {
            if entry.path() != staging {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    std::fs::rename(&staging, &dir).expect("move the built wheel into the cache");
    wheel_in(&dir).unwrap_or_else(|| panic!("maturin built no wheel in {}", dir.display()))
}

#[test]
fn pip_installed_runicorn_serves_flask_bound_to_its_venv() {
    let python = python();
    let work = target_dir().join("packaging");
    std::fs::create_dir_all(&work).expect("create <target>/packaging");
    let wheel = wheel(&python, &work);

    // A fresh environment, as the user's: the wheel and Flask, by pip.
    let user = tempfile::Builder::new()
        .prefix("venv-")
        .tempdir_in(&work)
        .expect("a directory for the venv");
    let venv_dir = user.path().join("venv");
    // Flask and its dependencies at the versions the Python tests pin.
    let wheel_arg = wheel.display().to_string();
    let constraints = root().join(REQUIREMENTS).display().to_string();
    venv(
        &python,
        &venv_dir,
        &[&wheel_arg, "flask", "-c", &constraints],
    );
    let runicorn = venv_dir.join("bin/runicorn");
    assert!(
        runicorn.is_file(),
        "pip installed no {}",
        runicorn.display()
    );

    // The binary links the libpython of the interpreter it was built for,
    // and finds that very file by itself (its run path).
    let ldd = run_ok(
        "ldd",
        Command::new("ldd")
            .arg(&runicorn)
            .env_clear()
            .env("PATH", PLAIN_PATH),
        60.0,
    );
    let ldd_line = ldd
        .lines()
        .find(|line| line.contains("libpython"))
        .unwrap_or_else(|| panic!("the wheel's runicorn does not link libpython:\n{ldd}"));
    let found = ldd_line
        .split_once("=>")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|path| std::fs::canonicalize(path).ok())
        .unwrap_or_else(|| panic!("the wheel's runicorn cannot find its libpython:\n{ldd}"));
    assert_eq!(
        found,
        libpython(&python),
        "the wheel's runicorn loads another libpython than {}'s:\n{ldd}",
        python.display()
    );

    let app_dir = root().join("examples/python");
    let mut launch = Launch::new(["-b", "127.0.0.1:0", "flaskapp:app"])
        .program(&runicorn)
        .current_dir(&app_dir)
        .env("PATH", PLAIN_PATH);
    for key in [
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "PYTHONHOME",
        "PYTHONPATH",
        "PYO3_PYTHON",
        "RUNICORN_PYTHON_PLUGIN",
    ] {
        launch = launch.env_remove(key);
    }
    let mut server = launch.start();

    let hello = get(server.addr(), "/").expect("GET /");
    assert_eq!(hello.status, 200, "{hello:?}\n{}", server.log());
    assert_eq!(hello.text(), "Hello from Flask!\n");

    // The interpreter runs in the environment the binary was installed in.
    let prefix = get(server.addr(), "/prefix").expect("GET /prefix");
    assert_eq!(prefix.status, 200, "{prefix:?}\n{}", server.log());
    let seen = std::fs::canonicalize(prefix.text())
        .unwrap_or_else(|err| panic!("sys.prefix {:?} is not a directory: {err}", prefix.text()));
    assert_eq!(
        seen,
        std::fs::canonicalize(&venv_dir).expect("the venv exists"),
        "sys.prefix is not the venv runicorn was installed into"
    );

    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(deadline(30.0))
        .unwrap_or_else(|| panic!("runicorn did not stop on TERM:\n{}", server.log()));
    assert!(status.success(), "{status}:\n{}", server.log());
}
