//! Helpers for the end-to-end tests: start the real `runicorn` binary in its
//! own process group, find its port from the `Listening at:` line, speak
//! HTTP over loopback, and kill everything it started, also on panic.
