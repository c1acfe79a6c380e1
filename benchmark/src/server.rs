//! The server under test: `runicorn APP -k CLASS ...` started as a child
//! process in its own process group (a Ctrl-C at the terminal reaches only
//! the bench, which then stops the server itself), pinned to the
//! `--server-cpus` when asked, watched through its log on stderr until its
//! workers are ready, and stopped with TERM, then KILL to the whole group.
//! The group is killed on drop too, so an error or a panic in the bench
//! leaves no server behind.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use runicorn_loadgen::Target;

use crate::procfs;

/// How long a server may take from its start to its `Ready:` line.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a TERMed server may take to exit before its group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The classes runicorn names itself in its `Using worker:` line.
const BUILTIN_CLASSES: [&str; 4] = ["sync", "gthread", "green", "async"];

/// The log lines kept (the first ones, which name a boot failure).
const KEPT_LINES: usize = 2000;

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub binary: &'a Path,
    pub app: &'a str,
    pub class: &'a str,
    pub workers: u32,
    pub threads: u32,
    pub worker_connections: u32,
    pub unix: bool,
    /// Pin the server to these CPUs (empty: not pinned).
    pub cpus: &'a [u32],
    /// The user's `-- SERVER_ARGS`.
    pub extra: &'a [String],
}

impl Spec<'_> {
    fn args(&self, bind: &str) -> Vec<String> {
        let mut args: Vec<String> = vec![
            self.app.to_owned(),
            "-k".to_owned(),
            self.class.to_owned(),
            "-w".to_owned(),
            self.workers.to_string(),
        ];
        // `--threads` is gthread's pool. `-k sync --threads N` would run
        // gthread, as Gunicorn does; for green and async it is the runtime's
        // threads, and N of them on the few pinned CPUs would measure their
        // contention: those run with runicorn's default (one per worker).
        if self.class == "gthread" {
            args.extend(["--threads".to_owned(), self.threads.to_string()]);
        }
        args.extend([
            "--worker-connections".to_owned(),
            self.worker_connections.to_string(),
            "-b".to_owned(),
            bind.to_owned(),
            "--log-level".to_owned(),
            "info".to_owned(),
        ]);
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// Why a server is not serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// It exited, or did not get ready in time: one line saying why.
    Failed(String),
    /// Ctrl-C came while it booted (it was killed).
    Interrupted,
}

/// The server's stderr, read by a thread.
#[derive(Debug, Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    closed: AtomicBool,
}

impl Log {
    fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default()
    }
}

/// A running server; its process group is killed when it is dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pid: u32,
    log: Arc<Log>,
    reaped: Option<ExitStatus>,
    target: Target,
    host: String,
    /// Holds the unix socket's directory (removed on drop).
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts the server and waits until every worker is ready.
    pub fn start(spec: &Spec<'_>, stop: &AtomicBool) -> Result<Server, StartError> {
        let dir = if spec.unix {
            Some(
                tempfile::Builder::new()
                    .prefix("runicorn-bench-")
                    .tempdir()
                    .map_err(|err| {
                        StartError::Failed(format!(
                            "cannot make a directory for the unix socket: {err} (set TMPDIR to a writable directory)"
                        ))
                    })?,
            )
        } else {
            None
        };
        let socket: Option<PathBuf> = dir.as_ref().map(|dir| dir.path().join("s.sock"));
        let bind = match &socket {
            Some(path) => format!("unix:{}", path.display()),
            None => "127.0.0.1:0".to_owned(),
        };
        let mut command = Command::new(spec.binary);
        command
            .args(spec.args(&bind))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = spawn_pinned(&mut command, spec.cpus).map_err(|err| {
            StartError::Failed(format!(
                "cannot start {}: {err} (give a runicorn binary with --runicorn PATH)",
                spec.binary.display()
            ))
        })?;
        let log = Arc::new(Log::default());
        if let Some(stderr) = child.stderr.take() {
            let shared = Arc::clone(&log);
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if let Ok(mut lines) = shared.lines.lock() {
                                if lines.len() < KEPT_LINES {
                                    lines
                                        .push(String::from_utf8_lossy(&line).trim_end().to_owned());
                                }
                            }
                        }
                    }
                }
                shared.closed.store(true, Ordering::Release);
            });
        }
        let pid = child.id();
        let mut server = Server {
            child,
            pid,
            log,
            reaped: None,
            target: Target::Unix(PathBuf::new()),
            host: "localhost".to_owned(),
            _dir: dir,
        };
        let target = server.wait_ready(spec, socket, stop)?;
        server.host = match &target {
            Target::Tcp(addr) => addr.to_string(),
            Target::Unix(_) => "localhost".to_owned(),
        };
        server.target = target;
        Ok(server)
    }

    fn wait_ready(
        &mut self,
        spec: &Spec<'_>,
        socket: Option<PathBuf>,
        stop: &AtomicBool,
    ) -> Result<Target, StartError> {
        let started = Instant::now();
        loop {
            let lines = self.log.lines();
            let listening = lines.iter().find_map(|line| listening_at(line));
            let ready = lines.iter().any(|line| line.contains("] Ready: "));
            if let (Some(addr), true) = (&listening, ready) {
                // The class asked for is the class that runs (the server
                // arguments could change it).
                if let Some(used) = lines
                    .iter()
                    .find_map(|line| line.split_once("] Using worker: "))
                {
                    let used = used.1.trim();
                    if BUILTIN_CLASSES.contains(&spec.class) && used != spec.class {
                        return Err(StartError::Failed(format!(
                            "runicorn used the {used} worker class instead of {} (check the server arguments after --)",
                            spec.class
                        )));
                    }
                }
                // The workers are the master's children: up before measuring.
                if procfs::children(self.pid).len() >= spec.workers as usize {
                    return Ok(match socket {
                        Some(path) => Target::Unix(path),
                        None => match addr.parse() {
                            Ok(addr) => Target::Tcp(addr),
                            Err(_) => {
                                return Err(StartError::Failed(format!(
                                    "it listens at {addr}, which is not a 127.0.0.1 address (drop the -b from the server arguments)"
                                )))
                            }
                        },
                    });
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = Some(status);
                // Let the reader take the last lines the group wrote.
                let until = Instant::now() + Duration::from_secs(2);
                while !self.log.closed.load(Ordering::Acquire) && Instant::now() < until {
                    thread::sleep(Duration::from_millis(20));
                }
                return Err(StartError::Failed(exit_reason(&self.log.lines(), status)));
            }
            if stop.load(Ordering::Relaxed) {
                return Err(StartError::Interrupted);
            }
            if started.elapsed() > BOOT_TIMEOUT {
                let last = last_error(&lines)
                    .or_else(|| lines.last().map(|line| strip_log_prefix(line).to_owned()))
                    .map(|line| format!("; its last line: {line}"))
                    .unwrap_or_default();
                let what = if listening.is_none() {
                    "did not listen"
                } else {
                    "its workers were not ready"
                };
                return Err(StartError::Failed(format!(
                    "{what} within {}s{last}",
                    BOOT_TIMEOUT.as_secs()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where it listens.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The Host header to send.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The requests one worker runs at once on its blocking pool, when the
    /// app's requests run there: from the line the green and async
    /// classes log at boot (`runicorn_worker::blocking_pool`), which is in
    /// the log before `Ready:`.
    pub fn blocking_pool(&self) -> Option<u32> {
        blocking_pool(&self.log.lines())
    }

    /// The workers (the master's children), in pid order.
    pub fn workers(&self) -> Vec<u32> {
        procfs::children(self.pid)
    }

    /// TERM to the master, a bounded wait, then KILL to the group.
    pub fn stop(mut self) {
        if self.reaped.is_none() {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
            let until = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < until {
                if let Ok(Some(status)) = self.child.try_wait() {
                    self.reaped = Some(status);
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Drop kills what is left of the group and reaps the master.
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The whole group: the master, its workers, anything they started.
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        if self.reaped.is_none() {
            let _ = self.child.wait();
        }
    }
}

/// Spawns `command` with the calling thread's affinity set to `cpus`
/// (inherited by the child before it execs and forks its workers), then
/// puts the thread's own affinity back.
fn spawn_pinned(command: &mut Command, cpus: &[u32]) -> std::io::Result<Child> {
    if cpus.is_empty() {
        return command.spawn();
    }
    let this_thread = Pid::from_raw(0);
    let saved = sched_getaffinity(this_thread).map_err(std::io::Error::from)?;
    let mut set = CpuSet::new();
    for cpu in cpus {
        set.set(*cpu as usize).map_err(std::io::Error::from)?;
    }
    sched_setaffinity(this_thread, &set).map_err(std::io::Error::from)?;
    let spawned = command.spawn();
    sched_setaffinity(this_thread, &saved).map_err(std::io::Error::from)?;
    spawned
}

/// `127.0.0.1:45989` from a `Listening at: http://127.0.0.1:45989 (pid)`
/// line; `unix:/path` as it is.
fn listening_at(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("Listening at: ")?;
    let token = rest.split_whitespace().next()?;
    Some(token.strip_prefix("http://").unwrap_or(token).to_owned())
}

/// The bound the first worker's blocking pool line names (every worker
/// of a server logs the same).
fn blocking_pool(lines: &[String]) -> Option<u32> {
    lines
        .iter()
        .find_map(|line| runicorn_worker::blocking_pool::parse_pool_line(line))
}

/// `[2026-12-07 20:15:42 +0000] [20347] [ERROR] text` → `text`.
fn strip_log_prefix(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..3 {
        match rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            Some((_, after)) => rest = after,
            None => return line,
        }
    }
    rest
}

/// The first error the server logged (runicorn's `[ERROR]`/`[CRITICAL]`
/// lines, or a usage error's `error: ...`).
fn last_error(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .find(|line| {
            line.contains("] [ERROR] ")
                || line.contains("] [CRITICAL] ")
                || line.starts_with("error: ")
                || line.starts_with("Error: ")
        })
        .map(|line| {
            let text = strip_log_prefix(line);
            text.strip_prefix("error: ").unwrap_or(text).to_owned()
        })
}

/// Why a server exited before it was ready, in one line.
fn exit_reason(lines: &[String], status: ExitStatus) -> String {
    let line = last_error(lines).or_else(|| {
        lines
            .iter()
            .rev()
            .find(|line| !line.trim().is_empty())
            .map(|line| strip_log_prefix(line).to_owned())
    });
    let how = match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => format!("was killed ({status})"),
    };
    match line {
        Some(line) => format!("{line} ({how})"),
        None => format!("it {how} before listening"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gthread_gets_threads() {
        let spec = |class| Spec {
            binary: Path::new("runicorn"),
            app: "builtin:hello",
            class,
            workers: 2,
            threads: 8,
            worker_connections: 100,
            unix: false,
            cpus: &[],
            extra: &[],
        };
        for class in ["sync", "green", "async"] {
            assert!(
                !spec(class)
                    .args("127.0.0.1:0")
                    .contains(&"--threads".to_owned()),
                "{class}"
            );
        }
        let gthread = spec("gthread").args("127.0.0.1:0");
        let at = gthread.iter().position(|arg| arg == "--threads").unwrap();
        assert_eq!(gthread[at + 1], "8");
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            listening_at(
                "[2026-12-07 20:15:42 +0000] [1] [INFO] Listening at: http://127.0.0.1:45989 (1)"
            ),
            Some("127.0.0.1:45989".to_owned())
        );
        assert_eq!(
            listening_at("[x] [1] [INFO] Listening at: unix:/tmp/a/s.sock (1)"),
            Some("unix:/tmp/a/s.sock".to_owned())
        );
        let lines = vec![
            "[2026-12-07 20:15:42 +0000] [20346] [WARNING] Running workers as root".to_owned(),
            "[2026-12-07 20:15:42 +0000] [20347] [ERROR] Exception in worker process: Failed to find application object 'nosuch' in 'builtin'".to_owned(),
            "[2026-12-07 20:15:42 +0000] [20346] [INFO] Reason: App failed to load.".to_owned(),
        ];
        assert_eq!(
            last_error(&lines).as_deref(),
            Some("Exception in worker process: Failed to find application object 'nosuch' in 'builtin'")
        );
        assert_eq!(blocking_pool(&lines), None);
        let green = [
            "[2026-12-07 20:15:42 +0000] [20347] [INFO] Green worker on may: 1 thread".to_owned(),
            format!(
                "[2026-12-07 20:15:42 +0000] [20347] [INFO] {}",
                runicorn_worker::blocking_pool::pool_line(
                    runicorn_worker::blocking_pool::PoolReason::BlocksThread,
                    2,
                    2
                )
            ),
            "[2026-12-07 20:15:42 +0000] [20346] [INFO] Ready: 1 worker booted in 0.10s".to_owned(),
        ];
        assert_eq!(blocking_pool(&green), Some(2));
        let usage = vec!["error: unknown worker class 'nosuch': known classes are sync".to_owned()];
        assert_eq!(
            last_error(&usage).as_deref(),
            Some("unknown worker class 'nosuch': known classes are sync")
        );
    }
}
