//! With the `embedded-python` feature the binary links libpython: record
//! its directory in the binary's run path, as the interpreter's own binary
//! does, so that it starts when libpython is outside the loader's default
//! paths (pyenv, a custom prefix). Without the feature, nothing.

fn main() {
    #[cfg(feature = "embedded-python")]
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
