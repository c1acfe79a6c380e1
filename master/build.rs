//! What `/metrics`' `runicorn_build_info` says beyond the version: the git
//! commit the master was built from (when built from a git checkout, or
//! given as `RUNICORN_GIT_COMMIT`) and the compiler's version.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RUNICORN_GIT_COMMIT");
    let commit = std::env::var("RUNICORN_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RUNICORN_GIT_COMMIT={commit}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = output(Command::new(rustc).arg("--version"))
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RUNICORN_RUSTC_VERSION={version}");
}

/// The checkout's commit, and the files whose change means a new one.
fn git_commit() -> Option<String> {
    let commit = output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))?;
    let branch = output(Command::new("git").args(["symbolic-ref", "-q", "HEAD"]));
    for path in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        // Only files that exist: cargo reruns a script watching a missing one every build.
        if let Some(file) = output(Command::new("git").args(["rev-parse", "--git-path", path]))
            .filter(|file| std::path::Path::new(file).exists())
        {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    Some(commit)
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}
