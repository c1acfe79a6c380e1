//! The harness side: start a toy master in its own process group, read its
//! log, wait on conditions with deadlines, kill everything on drop or when
//! a test overruns.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// A running toy master; its process group is killed on drop.
pub struct Server {
    pub child: Child,
    /// Process groups of daemonized masters, killed on drop too.
    pub daemon_groups: std::cell::RefCell<Vec<i32>>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Server {
    pub fn start(lines: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("toy.conf");
        let log = dir.path().join("error.log");
        let mut text = format!("errorlog={}\n", log.display());
        if !lines.iter().any(|line| line.starts_with("bind=")) {
            text.push_str("bind=127.0.0.1:0\n");
        }
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&config, text).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("--toy-server")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        LIVE_GROUPS.lock().unwrap().push(child.id() as i32);
        Server {
            child,
            daemon_groups: Default::default(),
            dir,
            config,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn wait_log(&self, what: &str, deadline: Duration) -> String {
        let log = wait_for(deadline, || {
            let log = self.log();
            log.contains(what).then_some(log)
        });
        log.unwrap_or_else(|| panic!("log never said {what:?}; log:\n{}", self.log()))
    }

    pub fn port(&self) -> u16 {
        let log = self.wait_log("Listening at: http://127.0.0.1:", Duration::from_secs(10));
        let rest = log.split("Listening at: http://127.0.0.1:").nth(1).unwrap();
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    /// The pids named in `Booting worker with pid: N` lines, in order.
    pub fn booted(&self) -> Vec<i32> {
        self.log()
            .lines()
            .filter_map(|line| line.split("Booting worker with pid: ").nth(1))
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    }

    pub fn wait_booted(&self, count: usize) -> Vec<i32> {
        wait_for(Duration::from_secs(10), || {
            let booted = self.booted();
            (booted.len() >= count).then_some(booted)
        })
        .unwrap_or_else(|| panic!("{count} workers never booted; log:\n{}", self.log()))
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap();
    }

    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let status = wait_for(deadline, || self.child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("master did not exit; log:\n{}", self.log()));
        status.code().unwrap_or(-1)
    }

    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }

    pub fn set_config(&self, lines: &[&str]) {
        let log = self.dir.path().join("error.log");
        let mut text = format!("errorlog={}\n", log.display());
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&self.config, text).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for group in self.daemon_groups.borrow().iter() {
            let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
            LIVE_GROUPS.lock().unwrap().retain(|live| live != group);
        }
        LIVE_GROUPS
            .lock()
            .unwrap()
            .retain(|live| *live != self.pid());
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Every process group a test started and has not killed yet, for the
/// watchdog.
pub static LIVE_GROUPS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// The longest one test may take before the run is abandoned.
pub const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// Kills every live group and exits if `done` is not signalled in time.
pub fn watchdog(name: &'static str) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(TEST_DEADLINE) {
            eprintln!("test {name} ... TIMED OUT after {TEST_DEADLINE:?}");
            for group in LIVE_GROUPS.lock().unwrap().iter() {
                let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
            }
            std::process::exit(1);
        }
    });
    done
}

pub fn wait_for<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): check /proc for the state too.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !status.is_empty() && !status.contains(") Z ")
}

pub fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

pub fn workers_gone(pids: &[i32]) -> bool {
    wait_for(Duration::from_secs(5), || {
        pids.iter().all(|pid| !alive(*pid)).then_some(())
    })
    .is_some()
}
