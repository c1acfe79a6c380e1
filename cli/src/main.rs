//! The `runicorn` binary: resolves settings from every source, picks the
//! worker class and the app, and hands them to the arbiter.
//!
//! It never forks or serves itself; `runicorn_master` does that.

fn main() {}
