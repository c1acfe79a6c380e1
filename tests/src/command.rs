//! Running a helper command to completion (pip, maturin, a venv's python)
//! within a bound: in its own process group, which is SIGKILLed whole on
//! timeout and when the test panics, with its output kept for the failure
//! message.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::wait::{deadline, wait_for};

/// A started command's process group; killed and reaped on drop unless it
/// was reaped already.
#[derive(Debug)]
struct Group {
    child: Child,
    reaped: bool,
}

impl Drop for Group {
    fn drop(&mut self) {
        kill_group(&mut self.child, &mut self.reaped);
    }
}

/// SIGKILLs `child`'s whole process group and reaps `child`, unless
/// `reaped` says that was done (it says so after).
pub(crate) fn kill_group(child: &mut Child, reaped: &mut bool) {
    if *reaped {
        return;
    }
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
    *reaped = true;
}

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout and stderr, interleaved as written.
    pub output: String,
}

/// Runs `command` with no stdin until it exits or `secs` pass; on timeout
/// its whole process group is killed and the test fails with its output.
pub fn run_bounded(what: &str, command: &mut Command, secs: f64) -> Finished {
    let mut log = tempfile::tempfile().expect("a temporary file for the output");
    let out = log.try_clone().expect("clone the output file");
    let err = log.try_clone().expect("clone the output file");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {what} ({command:?}): {err}"));
    let mut group = Group {
        child,
        reaped: false,
    };
    let status = wait_for(deadline(secs), || group.child.try_wait().ok().flatten());
    let read_output = |log: &mut std::fs::File| {
        let mut bytes = Vec::new();
        log.seek(SeekFrom::Start(0)).expect("rewind the output");
        log.read_to_end(&mut bytes).expect("read the output");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    match status {
        Some(status) => {
            group.reaped = true;
            // Anything it left running in its group goes too.
            let _ = killpg(Pid::from_raw(group.child.id() as i32), Signal::SIGKILL);
            Finished {
                status,
                output: read_output(&mut log),
            }
        }
        None => {
            drop(group);
            panic!(
                "{what} did not finish within {secs}s (killed):\n{}",
                read_output(&mut log)
            );
        }
    }
}

/// [`run_bounded`], failing the test unless the command exits 0; returns
/// its output.
pub fn run_ok(what: &str, command: &mut Command, secs: f64) -> String {
    let finished = run_bounded(what, command, secs);
    assert!(
        finished.status.success(),
        "{what} failed ({}):\n{}",
        finished.status,
        finished.output
    );
    finished.output
}
