//! `runicorn bench`: starts the app under each worker class in turn (the
//! real `runicorn` binary as a child process), drives it with
//! `runicorn-loadgen`, measures the server's CPU and memory, and reports:
//! a table, JSON or CSV, charts, a comparison with an earlier run, and a
//! recommendation. It runs in its own process, never in a master: the
//! threads it starts are the load generator's.
#![forbid(unsafe_code)]

pub mod compare;
pub mod csv;
#[cfg(test)]
mod fixture;
pub mod output;
pub mod plot;
pub mod recommend;
pub mod report;
pub mod table;
