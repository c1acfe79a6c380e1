//! Record where libpython lives in the plugin's run path, so that the plugin
//! opens on a machine whose libpython is outside the loader's default paths
//! (pyenv, a custom prefix), as the interpreter's own binary does.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(lib_dir) = config.lib_dir() {
        // The plugin, and the crate's unit-test binary.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
