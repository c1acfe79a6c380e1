//! A real nginx (`/usr/sbin/nginx`, from the system packages) in front of
//! the server under test, configured with `deploy/nginx/runicorn.conf`, the
//! example users copy: one copy of it per upstream (a unix socket, a TCP
//! address), with only its addresses and names replaced, each replacement
//! checked to hit exactly once so a changed example fails here instead of
//! being tested half-way.
//!
//! nginx runs in the foreground (`daemon off`) in its own process group,
//! with its prefix, configuration, pid file, error and access logs and
//! temporary directories in a directory of the test's; it listens on
//! loopback ports picked by binding port 0 (nginx itself cannot), retried
//! when another process takes one first. Dropping [`Nginx`] SIGKILLs the
//! group and reaps it, also when the test panics (then it prints the error
//! log).

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;

use crate::client::Addr;
use crate::wait::{deadline, wait_for};

/// Where the tests expect nginx (Debian's `nginx` package; `.ci/run`
/// installs it when missing).
pub const NGINX: &str = "/usr/sbin/nginx";

/// The example configuration, relative to the workspace root.
pub const EXAMPLE: &str = "deploy/nginx/runicorn.conf";

/// How many times a start is retried when a picked port was taken.
const PORT_ATTEMPTS: usize = 5;

/// The text of `deploy/nginx/runicorn.conf`.
pub fn example() -> String {
    let path = workspace().join(EXAMPLE);
    fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// The value of the `--FLAG VALUE` in the example's comment that shows how
/// runicorn is started to match it (`--keep-alive 5`), so the tests start
/// runicorn with the numbers the example promises.
pub fn example_runicorn_flag(flag: &str) -> String {
    let text = example();
    let words: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix('#'))
        .skip_while(|line| !line.trim_start().starts_with("runicorn -b"))
        .take_while(|line| !line.trim().is_empty())
        .flat_map(str::split_whitespace)
        .collect();
    let at = words
        .iter()
        .position(|word| *word == flag)
        .unwrap_or_else(|| panic!("{EXAMPLE}'s runicorn command line has no {flag}"));
    words
        .get(at + 1)
        .unwrap_or_else(|| panic!("{EXAMPLE}: {flag} has no value"))
        .to_string()
}

/// The value of an nginx directive in the example (`keepalive_timeout`
/// gives `2s`); panics unless it appears exactly once.
pub fn example_directive(name: &str) -> String {
    let text = example();
    let values: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(char::is_whitespace)?;
            Some(rest.trim().trim_end_matches(';').trim().to_owned())
        })
        .collect();
    match values.as_slice() {
        [value] => value.clone(),
        _ => panic!("{EXAMPLE} sets {name} {} times: {values:?}", values.len()),
    }
}

/// One instance of the example: its upstream renamed `name`, pointing at
/// `upstream`, and its server listening on `127.0.0.1:port`.
pub fn instantiate(name: &str, upstream: &Addr, port: u16) -> String {
    let server = match upstream {
        Addr::Tcp(addr) => format!("server {addr};"),
        Addr::Unix(path) => format!("server unix:{};", path.display()),
    };
    let replacements = [
        ("upstream runicorn {", format!("upstream {name} {{")),
        (
            "proxy_pass http://runicorn;",
            format!("proxy_pass http://{name};"),
        ),
        (
            "    server unix:/run/runicorn.sock;",
            format!("    {server}"),
        ),
        ("listen 80;", format!("listen 127.0.0.1:{port};")),
    ];
    let mut text = example();
    for (from, to) in replacements {
        let found = text.matches(from).count();
        assert_eq!(
            found, 1,
            "{EXAMPLE} must contain {from:?} exactly once (found {found}): the tests fill in its addresses there"
        );
        text = text.replace(from, &to);
    }
    text
}

/// The nginx worker processes' user and group, when the test runs as root
/// (nginx ignores the directive otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerUser {
    /// A user name.
    pub user: String,
    /// A group name.
    pub group: String,
}

impl WorkerUser {
    /// The test's own user and group: nginx's workers then reach what the
    /// test and runicorn create, as a user's nginx reaches what its
    /// runicorn creates for it.
    pub fn current() -> Option<WorkerUser> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid()).ok()??;
        let group = nix::unistd::Group::from_gid(nix::unistd::getegid()).ok()??;
        Some(WorkerUser {
            user: user.name,
            group: group.name,
        })
    }
}

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
    ports: Vec<u16>,
    reaped: bool,
}

impl Nginx {
    /// Starts nginx in `prefix` (created) with one instance of the example
    /// per upstream, in order, the workers running as the test's user.
    pub fn start(prefix: &Path, upstreams: &[Addr]) -> Nginx {
        Nginx::start_as(prefix, upstreams, WorkerUser::current())
    }

    /// Like [`Nginx::start`], with the workers as `user` (when root).
    pub fn start_as(prefix: &Path, upstreams: &[Addr], user: Option<WorkerUser>) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: install nginx from the system packages (apt-get install nginx; .ci/run does it)"
        );
        fs::create_dir_all(prefix).expect("create nginx's prefix");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let ports = free_ports(upstreams.len());
            write_config(prefix, upstreams, &ports, user.as_ref());
            match Nginx::spawn(prefix, ports) {
                Ok(nginx) => return nginx,
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx found its ports taken {PORT_ATTEMPTS} times:\n{last_log}")
    }

    fn spawn(prefix: &Path, ports: Vec<u16>) -> Result<Nginx, String> {
        let pidfile = prefix.join("nginx.pid");
        let _ = fs::remove_file(&pidfile);
        let _ = fs::remove_file(prefix.join("error.log"));
        let stderr = fs::File::create(prefix.join("stderr.log")).expect("nginx's stderr file");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {NGINX}: {err}"));
        let mut nginx = Nginx {
            child,
            prefix: prefix.to_path_buf(),
            ports,
            reaped: false,
        };
        let pid = nginx.child.id();
        // nginx writes its pid file once it has bound every listener; a
        // bind that fails ends it (after retries nginx makes itself, cut
        // short here).
        let started = wait_for(deadline(30.0), || {
            if fs::read_to_string(&pidfile)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok())
                == Some(pid)
            {
                return Some(Ok(()));
            }
            if nginx.error_log().contains("Address already in use") {
                return Some(Err(()));
            }
            match nginx.child.try_wait() {
                Ok(Some(_)) => Some(Err(())),
                _ => None,
            }
        });
        match started {
            Some(Ok(())) => Ok(nginx),
            _ => {
                let log = nginx.error_log();
                nginx.kill();
                Err(log)
            }
        }
    }

    /// The address of the `index`-th instance (the order of the upstreams).
    pub fn addr(&self, index: usize) -> Addr {
        Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], self.ports[index])))
    }

    /// Every instance's address.
    pub fn addrs(&self) -> Vec<Addr> {
        (0..self.ports.len())
            .map(|index| self.addr(index))
            .collect()
    }

    /// nginx's error log (and anything it wrote to stderr).
    pub fn error_log(&self) -> String {
        let mut text = fs::read_to_string(self.prefix.join("stderr.log")).unwrap_or_default();
        text.push_str(&fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default());
        text
    }

    /// The access log: one line per request, `STATUS UPSTREAM_STATUS
    /// "REQUEST"`.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.prefix.join("access.log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        crate::command::kill_group(&mut self.child, &mut self.reaped);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- nginx error log ---\n{}--- end ---", self.error_log());
        }
    }
}

/// `count` distinct loopback ports that were free a moment ago: each bound
/// on port 0 and held until all are picked, then closed for nginx to bind.
pub(crate) fn free_ports(count: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    held.iter()
        .map(|listener| listener.local_addr().expect("local address").port())
        .collect()
}

fn write_config(prefix: &Path, upstreams: &[Addr], ports: &[u16], user: Option<&WorkerUser>) {
    let mut includes = String::new();
    for (index, (upstream, port)) in upstreams.iter().zip(ports).enumerate() {
        let site = prefix.join(format!("site-{index}.conf"));
        fs::write(
            &site,
            instantiate(&format!("runicorn_{index}"), upstream, *port),
        )
        .expect("write a site");
        includes.push_str(&format!("    include {};\n", site.display()));
    }
    let user = user.map_or(String::new(), |user| {
        format!("user {} {};\n", user.user, user.group)
    });
    let p = prefix.display();
    let config = format!(
        "# Written by runicorn's tests: nginx in the foreground, everything in {p}.
daemon off;
master_process on;
worker_processes 1;
{user}pid {p}/nginx.pid;
error_log {p}/error.log notice;
events {{
    worker_connections 1024;
}}
http {{
    log_format upstream '$status $upstream_status \"$request\"';
    access_log {p}/access.log upstream;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
{includes}}}
"
    );
    fs::write(prefix.join("nginx.conf"), config).expect("write nginx.conf");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_filled_in_once_per_address() {
        let unix = instantiate("up_unix", &Addr::Unix("/tmp/x.sock".into()), 8081);
        assert!(unix.contains("upstream up_unix {"), "{unix}");
        assert!(unix.contains("proxy_pass http://up_unix;"), "{unix}");
        assert!(unix.contains("    server unix:/tmp/x.sock;"), "{unix}");
        assert!(unix.contains("listen 127.0.0.1:8081;"), "{unix}");
        let tcp = instantiate(
            "up_tcp",
            &Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9000))),
            8082,
        );
        assert!(tcp.contains("    server 127.0.0.1:9000;"), "{tcp}");
        assert!(!tcp.contains("/run/runicorn.sock;"), "{tcp}");
    }

    #[test]
    fn reads_the_runicorn_flags_and_directives_of_the_example() {
        assert!(example_runicorn_flag("--keep-alive").parse::<u64>().is_ok());
        assert!(example_directive("keepalive_timeout").ends_with('s'));
    }
}
