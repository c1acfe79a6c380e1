//! Python apps under test: the virtual environment with the pinned
//! frameworks of `tests/python/requirements.txt`, runicorn serving the
//! example apps of `examples/python` from it, and Gunicorn, the reference,
//! serving the same files from the same environment.
//!
//! The environment lives at `<target>/pyvenv` and is made on first use
//! (`python3 -m venv`, then `pip install -r`), once for every test binary of
//! the run: whoever makes it holds an exclusive `flock` on
//! `<target>/pyvenv.lock`, and a stamp file inside it holds the sha256 of
//! the requirements it was made from, so a changed file remakes it and an
//! interrupted install (no stamp) is redone. `.ci/run` makes the same
//! environment, with the same stamp, before the tests run.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::examples::{root, target_dir};
use crate::scenario::{Class, LOCAL};
use crate::server::{Launch, Server};

/// The requirements file, relative to the workspace root.
pub const REQUIREMENTS: &str = "tests/python/requirements.txt";

/// The stamp inside the environment: the hex sha256 of the requirements
/// file it was made from (what `sha256sum` prints first).
pub const STAMP: &str = ".runicorn-requirements.sha256";

/// The directory of the example Python apps (`flaskapp.py`, `mysite/`,
/// `environ_dump.py`, `hello.py`, `broken.py`).
pub fn apps_dir() -> PathBuf {
    root().join("examples/python")
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The virtual environment, made (or remade) on first use in this process;
/// panics with pip's output when it cannot be made.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let target = target_dir();
        fs::create_dir_all(&target).expect("create the target dir");
        let dir = target.join("pyvenv");
        if let Err(err) = ensure(&dir, &target.join("pyvenv.lock")) {
            panic!(
                "cannot make the Python environment {}: {err}",
                dir.display()
            );
        }
        dir
    })
}

/// `venv/bin/NAME`.
pub fn venv_bin(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

fn requirements_hash() -> Result<String, String> {
    let path = root().join(REQUIREMENTS);
    let bytes = fs::read(&path).map_err(|err| format!("read {}: {err}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

fn is_fresh(dir: &Path, wanted: &str) -> bool {
    fs::read_to_string(dir.join(STAMP)).is_ok_and(|stamp| stamp.trim() == wanted)
        && dir.join("bin/python").exists()
}

/// Makes `dir` from the requirements unless its stamp already matches,
/// holding the lock at `lock` while it looks and while it makes.
fn ensure(dir: &Path, lock: &Path) -> Result<(), String> {
    let wanted = requirements_hash()?;
    let file = File::create(lock).map_err(|err| format!("open {}: {err}", lock.display()))?;
    // Released when dropped, also when this panics; the kernel releases it
    // if the process dies.
    let _held = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| format!("flock {}: {errno}", lock.display()))?;
    if is_fresh(dir, &wanted) {
        return Ok(());
    }
    if dir.exists() {
        fs::remove_dir_all(dir)
            .map_err(|err| format!("remove the stale {}: {err}", dir.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    run(Command::new(dir.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(root().join(REQUIREMENTS)))?;
    // Written last, and renamed into place: a stamp means a whole install.
    let partial = dir.join(format!("{STAMP}.partial"));
    fs::write(&partial, format!("{wanted}\n"))
        .and_then(|()| fs::rename(&partial, dir.join(STAMP)))
        .map_err(|err| format!("write the stamp: {err}"))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .output()
        .map_err(|err| format!("{command:?}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn apps_dir_str() -> String {
    apps_dir()
        .to_str()
        .expect("the workspace path is UTF-8")
        .to_owned()
}

/// `runicorn -k CLASS -b 127.0.0.1:0 --chdir examples/python EXTRA... APP`
/// with `VIRTUAL_ENV` set to the test environment, not yet started.
pub fn launch(class: Class, extra: &[&str], app: &str) -> Launch {
    let dir = apps_dir_str();
    let mut args = vec!["--chdir", dir.as_str()];
    args.extend_from_slice(extra);
    class
        .launch(&args, app)
        .env("VIRTUAL_ENV", venv())
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

/// [`launch`], started (panics with the log if it does not listen).
pub fn start(class: Class, extra: &[&str], app: &str) -> Server {
    launch(class, extra, app).start()
}

/// The real Gunicorn from the test environment, not yet started:
/// `gunicorn -b 127.0.0.1:0 --chdir examples/python --no-control-socket
/// EXTRA... APP`. Started, it is a [`Server`] like runicorn: in its own
/// process group, its port read from its `Listening at:` line, the whole
/// group killed when dropped, also on panic.
pub fn gunicorn_launch(extra: &[&str], app: &str) -> Launch {
    let dir = apps_dir_str();
    let mut args = vec!["-b", LOCAL, "--chdir", dir.as_str(), "--no-control-socket"];
    args.extend_from_slice(extra);
    args.push(app);
    Launch::new(args)
        .program(venv_bin("gunicorn"))
        .env("VIRTUAL_ENV", venv())
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

/// [`gunicorn_launch`], started.
pub fn gunicorn(extra: &[&str], app: &str) -> Server {
    gunicorn_launch(extra, app).start()
}
