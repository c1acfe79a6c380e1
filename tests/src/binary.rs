//! Finding the `runicorn` binary: `RUNICORN_BIN` if set, else built once per
//! test process with the same cargo, target dir and profile as the tests,
//! together with the Python plugin (`librunicorn_python.so`) it opens from
//! its own directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The path of the `runicorn` binary under test.
///
/// Panics (failing the test) with cargo's output if the build fails.
pub fn runicorn_bin() -> &'static Path {
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("RUNICORN_BIN") {
            return PathBuf::from(path);
        }
        build()
    })
}

fn build() -> PathBuf {
    let test_exe = std::env::current_exe().expect("current_exe of the test binary");
    // The test runs from <target>/<profile>/deps/<test>-<hash>.
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let target_dir = profile_dir
        .parent()
        .expect("<target>/<profile> has a parent");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "runicorn-cli",
            "-p",
            "runicorn-python",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        command.arg("--release");
    }
    let output = command.output().expect("run cargo build for runicorn");
    assert!(
        output.status.success(),
        "cargo build -p runicorn-cli -p runicorn-python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = profile_dir.join("runicorn");
    assert!(
        binary.exists(),
        "built runicorn but {} is missing",
        binary.display()
    );
    binary
}
