//! The example apps, built once per test process: the Rust cdylibs of the
//! `examples/` workspace (`libhello.so`, `libhooks.so`, ...) with cargo, and
//! the C examples with `cc`, into `<target>/examples` beside the test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
}

/// `<target>` of this test run, from `<target>/<profile>/deps/<test>`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps")
        .to_owned()
}

/// The examples workspace, built once per test process; returns the
/// directory holding `libhello.so` and the others.
pub fn examples() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = target_dir().join("examples");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--quiet", "--manifest-path"])
            .arg(root().join("examples/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("run cargo build for the examples");
        assert!(
            output.status.success(),
            "cargo build --manifest-path examples/Cargo.toml failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = target.join("debug");
        assert!(
            dir.join("libhello.so").is_file(),
            "no libhello.so in {}",
            dir.display()
        );
        dir
    })
}

/// The C examples, compiled once per process with `cc`: `libcapp.so` (an
/// app and a non-app symbol) and `libfuture.so` (a table claiming ABI v99).
pub fn c_examples() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("examples").join("c");
        std::fs::create_dir_all(&dir).expect("create <target>/examples/c");
        for (source, library) in [("app.c", "libcapp.so"), ("abi_v99.c", "libfuture.so")] {
            let output = Command::new("cc")
                .args([
                    "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I",
                ])
                .arg(root().join("app/include"))
                .arg("-o")
                .arg(dir.join(library))
                .arg(root().join("examples/c-app").join(source))
                .output()
                .expect("cc is needed for the C example");
            assert!(
                output.status.success(),
                "cc {source} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        dir
    })
}
