//! `-p/--pid`: the pidfile, written atomically and removed only if ours.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::error::MasterError;

/// A pidfile this process wrote.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    pid: i32,
}

/// Is `pid` a live process (ours to signal or not)?
pub fn is_alive(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(Pid::from_raw(pid), None),
            Err(Errno::ESRCH)
        )
}

impl Pidfile {
    /// Writes this process's pid to `path` (temp file + rename), refusing
    /// when the file already names another live process.
    pub fn create(path: &Path) -> Result<Pidfile, MasterError> {
        let pid = std::process::id() as i32;
        if let Some(existing) = read_pid(path) {
            if existing != pid && is_alive(existing) {
                return Err(MasterError::AlreadyRunning {
                    path: path.to_owned(),
                    pid: existing,
                });
            }
        }
        let pidfile = Pidfile {
            path: path.to_owned(),
            pid,
        };
        pidfile.write().map_err(|source| MasterError::Pidfile {
            path: path.to_owned(),
            source,
        })?;
        Ok(pidfile)
    }

    fn write(&self) -> std::io::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", self.pid));
        let mut file = std::fs::File::create(&temp)?;
        writeln!(file, "{}", self.pid)?;
        file.sync_all()?;
        std::fs::rename(&temp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    }

    /// Gunicorn's `rename`: this process's pid moves to `path` (a new
    /// master promoted after a USR2 upgrade: `<pidfile>.2` becomes
    /// `<pidfile>`). Refused, keeping the old file, when `path` names
    /// another live process.
    pub fn rename(&mut self, path: &Path) -> Result<(), MasterError> {
        let moved = Pidfile::create(path)?;
        self.remove();
        *self = moved;
        Ok(())
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if it still names this process and we are it.
    pub fn remove(&self) {
        if std::process::id() as i32 == self.pid && read_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The pid a pidfile names, if it names one.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_refused_when_live_and_removed_only_if_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        let pidfile = Pidfile::create(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id() as i32));
        // Another live process (pid 1) named in the file: refused.
        std::fs::write(&path, "1\n").unwrap();
        let err = Pidfile::create(&path).unwrap_err();
        assert!(err.to_string().contains("already running"), "{err}");
        // Not ours any more: left alone.
        pidfile.remove();
        assert!(path.exists());
        // A stale pid is replaced.
        std::fs::write(&path, "999999999\n").unwrap();
        let pidfile = Pidfile::create(&path).unwrap();
        pidfile.remove();
        assert!(!path.exists());
    }

    #[test]
    fn a_promoted_master_moves_its_pid_to_the_main_name() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("app.pid");
        let upgrade = dir.path().join("app.pid.2");
        let mut pidfile = Pidfile::create(&upgrade).unwrap();
        // The old master's file, still there: a live other process.
        std::fs::write(&main, "1\n").unwrap();
        assert!(pidfile.rename(&main).is_err());
        assert_eq!(pidfile.path(), upgrade, "kept where it was");
        // The old master removed its file on exit.
        std::fs::remove_file(&main).unwrap();
        pidfile.rename(&main).unwrap();
        assert_eq!(read_pid(&main), Some(std::process::id() as i32));
        assert!(!upgrade.exists());
        pidfile.remove();
        assert!(!main.exists());
    }
}
