//! The `runicorn` binary; everything lives in the `runicorn_cli` library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    runicorn_cli::main()
}
