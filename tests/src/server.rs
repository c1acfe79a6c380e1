//! The running `runicorn` under test: spawned in its own process group, its
//! stderr captured, its addresses read from the `Listening at:` lines, and
//! the whole group SIGKILLed and reaped on drop, also when the test panics.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::binary::runicorn_bin;
use crate::client::Addr;
use crate::proc;
use crate::wait::{deadline, wait_for, Deadline};

/// How long a server may take to print its `Listening at:` lines.
pub const BOOT_TIMEOUT_SECS: f64 = 30.0;

/// Captured output of one pipe, shared with the thread that reads it.
#[derive(Debug, Default)]
struct Capture {
    bytes: Mutex<Vec<u8>>,
    grew: Condvar,
    /// Set once the reader saw end of stream (every writer exited).
    closed: std::sync::atomic::AtomicBool,
}

impl Capture {
    fn spawn_reader(pipe: impl Read + Send + 'static) -> Arc<Capture> {
        let capture = Arc::new(Capture::default());
        let shared = Arc::clone(&capture);
        thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 8192];
            // Ends when every holder of the write end (master, workers) exits.
            while let Ok(read @ 1..) = pipe.read(&mut buf) {
                shared
                    .bytes
                    .lock()
                    .expect("capture lock")
                    .extend_from_slice(&buf[..read]);
                shared.grew.notify_all();
            }
            shared
                .closed
                .store(true, std::sync::atomic::Ordering::Release);
            shared.grew.notify_all();
        });
        capture
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().expect("capture lock")).into_owned()
    }
}

/// Variables that change runicorn's (or Gunicorn's) settings, log or
/// Python interpreter, removed from every server's environment unless the
/// test sets them.
pub const HERMETIC_ENV: [&str; 12] = [
    "PORT",
    "WEB_CONCURRENCY",
    "RUNICORN_ENV",
    "RUNICORN_CMD_ARGS",
    "FORWARDED_ALLOW_IPS",
    "RUST_LOG",
    "GUNICORN_CMD_ARGS",
    "SCRIPT_NAME",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "DJANGO_SETTINGS_MODULE",
];

/// What to start: arguments, environment, working directory, and an optional
/// wrapper command (`unshare --pid --fork ...`) or another program in
/// runicorn's place (Gunicorn, the reference).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    program: Option<PathBuf>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    removed: Vec<OsString>,
    cwd: Option<PathBuf>,
    wrapper: Vec<OsString>,
    log_file: Option<PathBuf>,
}

impl Launch {
    /// `runicorn ARGS...`.
    pub fn new<I, S>(args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Launch {
            args: args
                .into_iter()
                .map(|arg| arg.as_ref().to_owned())
                .collect(),
            ..Launch::default()
        }
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Launch {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Removes an environment variable from the server's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Launch {
        self.removed.push(key.as_ref().to_owned());
        self
    }

    /// Runs the server in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Launch {
        self.cwd = Some(dir.into());
        self
    }

    /// Also reads the log from `path` (the test passes `--error-logfile
    /// PATH`): [`Server::log`] is then stderr followed by the file.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Launch {
        self.log_file = Some(path.into());
        self
    }

    /// Runs `WRAPPER... runicorn ARGS...` (the wrapper must exec or fork it).
    pub fn wrapper<I, S>(mut self, wrapper: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = wrapper
            .into_iter()
            .map(|arg| arg.as_ref().to_owned())
            .collect();
        self
    }

    /// Runs `PROGRAM ARGS...` instead of the workspace's runicorn: a server
    /// that logs `Listening at:` as Gunicorn does (Gunicorn itself, as the
    /// reference, or a `runicorn` that pip installed).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Launch {
        self.program = Some(program.into());
        self
    }

    /// How many `Listening at:` lines to expect: one per `-b`/`--bind`, at
    /// least one.
    fn expected_listeners(&self) -> usize {
        let binds = self
            .args
            .iter()
            .filter(|arg| {
                let arg = arg.to_string_lossy();
                arg == "-b" || arg == "--bind" || arg.starts_with("--bind=")
            })
            .count();
        binds.max(1)
    }

    fn command(&self) -> Command {
        let server: &std::path::Path = match &self.program {
            Some(program) => program,
            None => runicorn_bin(),
        };
        let mut command = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(server);
                command
            }
            None => Command::new(server),
        };
        command.args(&self.args);
        // Hermetic: the developer's shell must not change settings; a test
        // that wants one of these sets it with `Launch::env`.
        for key in HERMETIC_ENV
            .iter()
            .map(OsStr::new)
            .chain(self.removed.iter().map(OsString::as_os_str))
        {
            command.env_remove(key);
        }
        command
            .envs(self.envs.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command
    }

    /// Starts the server and waits for its `Listening at:` lines.
    pub fn start(self) -> Server {
        let mut server = self.spawn();
        let wanted = self.expected_listeners();
        let boot = deadline(BOOT_TIMEOUT_SECS);
        let found = wait_for(boot, || {
            let addrs = server.listening();
            if addrs.len() >= wanted {
                return Some(Ok(addrs));
            }
            match server.child.try_wait() {
                Ok(Some(status)) => Some(Err(status)),
                _ => None,
            }
        });
        match found {
            Some(Ok(addrs)) => {
                server.addrs = addrs;
                server
            }
            Some(Err(status)) => {
                server.reaped = Some(status);
                let log = server.wait_log_closed();
                panic!("runicorn exited ({status}) before listening:\n{log}");
            }
            None => panic!(
                "runicorn printed {} of {wanted} `Listening at:` lines in {BOOT_TIMEOUT_SECS}s:\n{}",
                server.listening().len(),
                server.log()
            ),
        }
    }

    /// Starts a server whose log level hides `Listening at:` (`--log-level
    /// error` or `critical`) and waits until `addr`, which it binds,
    /// accepts a connection.
    pub fn start_at(self, addr: Addr) -> Server {
        let mut server = self.spawn();
        let boot = deadline(BOOT_TIMEOUT_SECS);
        let found = wait_for(boot, || {
            if crate::client::Stream::connect(&addr).is_ok() {
                return Some(Ok(()));
            }
            match server.child.try_wait() {
                Ok(Some(status)) => Some(Err(status)),
                _ => None,
            }
        });
        match found {
            Some(Ok(())) => {
                server.addrs = vec![addr];
                server
            }
            Some(Err(status)) => {
                server.reaped = Some(status);
                let log = server.wait_log_closed();
                panic!("runicorn exited ({status}) before listening:\n{log}");
            }
            None => panic!(
                "runicorn did not accept on {addr} in {BOOT_TIMEOUT_SECS}s:\n{}",
                server.log()
            ),
        }
    }

    /// Starts the server and expects it to exit by itself (a boot failure)
    /// within `secs`; returns its status and everything it logged.
    pub fn expect_exit(self, secs: f64) -> Exited {
        let mut server = self.spawn();
        match server.wait_exit(deadline(secs)) {
            Some(status) => {
                let log = server.wait_log_closed();
                Exited { status, log }
            }
            None => panic!("runicorn did not exit within {secs}s:\n{}", server.log()),
        }
    }

    fn spawn(&self) -> Server {
        let mut child = self.command().spawn().expect("spawn runicorn");
        let stderr = Capture::spawn_reader(child.stderr.take().expect("stderr piped"));
        let stdout = Capture::spawn_reader(child.stdout.take().expect("stdout piped"));
        Server {
            pid: child.id(),
            child,
            stderr,
            stdout,
            log_file: self.log_file.clone(),
            addrs: Vec::new(),
            reaped: None,
        }
    }
}

/// How a server that was expected to fail ended.
#[derive(Debug)]
pub struct Exited {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub log: String,
}

impl Exited {
    /// The exit code; panics (with the log) if it was killed by a signal.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(code) => code,
            None => panic!(
                "runicorn was killed by signal {:?}:\n{}",
                self.status.signal(),
                self.log
            ),
        }
    }
}

/// A running `runicorn` (the master, or the wrapper that started it).
#[derive(Debug)]
pub struct Server {
    child: Child,
    pid: u32,
    stderr: Arc<Capture>,
    stdout: Arc<Capture>,
    log_file: Option<PathBuf>,
    addrs: Vec<Addr>,
    reaped: Option<ExitStatus>,
}

impl Server {
    /// `runicorn ARGS...`, waiting until it listens. Panics with the log if
    /// it exits or does not listen within [`BOOT_TIMEOUT_SECS`].
    pub fn start<I, S>(args: I) -> Server
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Launch::new(args).start()
    }

    /// `runicorn ARGS...`, expected to exit by itself within 30 s.
    pub fn start_expect_exit<I, S>(args: I) -> Exited
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Launch::new(args).expect_exit(30.0)
    }

    /// The first listening address.
    pub fn addr(&self) -> &Addr {
        self.addrs.first().expect("server has a listening address")
    }

    /// Every listening address, in the order logged.
    pub fn addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// The pid of the process started (the master, unless wrapped).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything logged so far: stderr, then the `--error-logfile` given
    /// to [`Launch::log_file`] (and its rotated `.1`, if the test renamed it).
    pub fn log(&self) -> String {
        let mut text = self.stderr.text();
        if let Some(path) = &self.log_file {
            let mut rotated = path.clone().into_os_string();
            rotated.push(".1");
            for file in [PathBuf::from(rotated), path.clone()] {
                if let Ok(contents) = std::fs::read(&file) {
                    text.push_str(&String::from_utf8_lossy(&contents));
                }
            }
        }
        text
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// How many log lines contain `pattern`.
    pub fn log_count(&self, pattern: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(pattern))
            .count()
    }

    /// Waits until a log line contains `pattern`; returns that line.
    pub fn wait_for_log(&self, pattern: &str, deadline: Deadline) -> Option<String> {
        self.wait_for_log_count(pattern, 1, deadline)
    }

    /// Waits until `count` log lines contain `pattern`; returns the
    /// `count`-th of them (so [`Server::wait_for_log`] returns the first).
    pub fn wait_for_log_count(
        &self,
        pattern: &str,
        count: usize,
        deadline: Deadline,
    ) -> Option<String> {
        loop {
            let text = self.log();
            let matching: Vec<&str> = text.lines().filter(|line| line.contains(pattern)).collect();
            if matching.len() >= count {
                return Some(matching[count.max(1) - 1].to_owned());
            }
            if deadline.passed() {
                return None;
            }
            // Wake on new stderr output, or poll the log file.
            let bytes = self.stderr.bytes.lock().expect("capture lock");
            let slice = deadline.remaining().min(crate::wait::POLL * 2);
            drop(
                self.stderr
                    .grew
                    .wait_timeout(bytes, slice)
                    .expect("capture lock"),
            );
        }
    }

    /// Like [`Server::wait_for_log`] but panics with the whole log on timeout.
    pub fn expect_log(&self, pattern: &str, secs: f64) -> String {
        match self.wait_for_log(pattern, deadline(secs)) {
            Some(line) => line,
            None => panic!(
                "no log line containing {pattern:?} within {secs}s:\n{}",
                self.log()
            ),
        }
    }

    /// Sends `signal` to the started process.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid as i32), signal).expect("signal runicorn");
    }

    /// The live children of the started process (its workers), sorted.
    pub fn worker_pids(&self) -> Vec<u32> {
        proc::live_children(self.pid)
    }

    /// Every child of the started process, zombies included.
    pub fn children(&self) -> Vec<proc::ProcStat> {
        proc::children(self.pid)
    }

    /// Waits until exactly `count` live workers exist; returns their pids, or
    /// panics with the log.
    pub fn wait_workers(&self, count: usize, secs: f64) -> Vec<u32> {
        match wait_for(deadline(secs), || {
            Some(self.worker_pids()).filter(|pids| pids.len() == count)
        }) {
            Some(pids) => pids,
            None => panic!(
                "expected {count} workers within {secs}s, have {:?}:\n{}",
                self.worker_pids(),
                self.log()
            ),
        }
    }

    /// Processes still in the server's process group, zombies included (the
    /// master itself until it is reaped).
    pub fn group(&self) -> Vec<proc::ProcStat> {
        proc::group(self.pid)
    }

    /// Waits for the started process to exit and reaps it.
    pub fn wait_exit(&mut self, deadline: Deadline) -> Option<ExitStatus> {
        if self.reaped.is_some() {
            return self.reaped;
        }
        let child = &mut self.child;
        self.reaped = wait_for(deadline, || child.try_wait().ok().flatten());
        self.reaped
    }

    /// The exit status, if the process has been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.reaped
    }

    /// The addresses of the `Listening at:` lines logged so far.
    fn listening(&self) -> Vec<Addr> {
        self.log()
            .lines()
            .filter_map(|line| {
                let (_, rest) = line.split_once("Listening at: ")?;
                Addr::parse_listening(rest.split_whitespace().next()?)
            })
            .collect()
    }

    /// After exit: the full log, once the reader has seen end of stream (or
    /// after a short bound, if an orphan still holds the pipe).
    fn wait_log_closed(&self) -> String {
        let until = deadline(2.0);
        wait_for(until, || proc::group(self.pid).is_empty().then_some(()));
        // The processes are gone; let the reader drain what they wrote.
        wait_for(deadline(5.0), || self.stderr.is_closed().then_some(()));
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The whole group: the master, its workers, and anything they forked
        // without leaving the group.
        let group_alive = self.reaped.is_none() || !proc::group(self.pid).is_empty();
        if group_alive {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
        if self.reaped.is_none() {
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- runicorn (pid {}) stderr ---\n{}--- end ---",
                self.pid,
                self.log()
            );
        }
    }
}
