//! Real TCP proxies that speak the PROXY protocol, in front of the server
//! under test: haproxy (`send-proxy-v2`) and nginx's stream module
//! (`proxy_protocol on`, v1), configured with the examples of
//! `docs/operations.md`'s PROXY protocol section, taken from the document
//! itself (its ```` ```haproxy ```` and ```` ```nginx ```` blocks there),
//! with only their addresses replaced, each replacement checked to hit
//! exactly once, so a changed example fails here instead of being tested
//! half-way.
//!
//! Each proxy runs in the foreground in its own process group with its
//! configuration and logs in a directory of the test's, listening on a
//! loopback port picked by binding port 0 (retried when another process
//! takes it first). Dropping [`TcpProxy`] SIGKILLs the group and reaps it,
//! also when the test panics (then it prints the proxy's log).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;

use crate::wait::{deadline, wait_for};

/// The document the examples come from, relative to the workspace root.
pub const DOC: &str = "docs/operations.md";

/// The heading of the section holding the examples.
const SECTION: &str = "## Behind a TCP proxy: the PROXY protocol";

/// haproxy (Debian's `haproxy`; `.ci/run` installs it).
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// nginx's stream module (Debian's `libnginx-mod-stream`; `.ci/run`
/// installs it), loaded by the test's configuration.
pub const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// How many times a start is retried when the picked port was taken.
const PORT_ATTEMPTS: usize = 5;

/// The fenced block of `language` in the PROXY protocol section of
/// `docs/operations.md`; panics unless there is exactly one.
pub fn example(language: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .join(DOC);
    let text = fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {DOC}: {err}"));
    let section = text
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("{DOC} has no {SECTION:?}"))
        .1;
    let section = section.split("\n## ").next().unwrap_or(section);
    let fence = format!("```{language}\n");
    let blocks: Vec<&str> = section
        .split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or(rest))
        .collect();
    match blocks.as_slice() {
        [block] => (*block).to_owned(),
        _ => panic!(
            "{DOC}'s PROXY protocol section has {} ```{language} blocks, not one",
            blocks.len()
        ),
    }
}

/// `text` with each `(from, to)` replaced; panics unless `from` occurs
/// exactly once.
fn fill(mut text: String, replacements: &[(&str, String)]) -> String {
    for (from, to) in replacements {
        let found = text.matches(from).count();
        assert_eq!(
            found, 1,
            "{DOC}'s example must contain {from:?} exactly once (found {found}): the tests fill in its addresses there\n{text}"
        );
        text = text.replace(from, to);
    }
    text
}

/// The haproxy example, its runicorn at `upstream` and its frontend on
/// `127.0.0.1:port`, in a complete configuration.
pub fn haproxy_config(upstream: SocketAddr, port: u16) -> String {
    let example = fill(
        example("haproxy"),
        &[
            ("127.0.0.1:8000", upstream.to_string()),
            ("bind :443", format!("bind 127.0.0.1:{port}")),
        ],
    );
    format!(
        "# Written by runicorn's tests: haproxy in the foreground.
global
    maxconn 256
defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
{example}"
    )
}

/// The nginx stream example, its runicorn at `upstream` and its server on
/// `127.0.0.1:port`, in a complete configuration with everything in
/// `prefix`.
pub fn nginx_config(prefix: &Path, upstream: SocketAddr, port: u16) -> String {
    let example = fill(
        example("nginx"),
        &[
            ("127.0.0.1:8000", upstream.to_string()),
            ("listen 443;", format!("listen 127.0.0.1:{port};")),
        ],
    );
    let p = prefix.display();
    format!(
        "# Written by runicorn's tests: nginx in the foreground, everything in {p}.
load_module {NGINX_STREAM_MODULE};
daemon off;
master_process on;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log notice;
events {{
    worker_connections 256;
}}
{example}"
    )
}

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// haproxy, `send-proxy-v2`.
    Haproxy,
    /// nginx's stream module, `proxy_protocol on` (v1).
    NginxStream,
}

/// A running proxy.
#[derive(Debug)]
pub struct TcpProxy {
    child: Child,
    dir: PathBuf,
    port: u16,
    reaped: bool,
}

impl TcpProxy {
    /// Starts `kind` in `dir` (created) in front of runicorn at `upstream`.
    pub fn start(kind: Kind, dir: &Path, upstream: SocketAddr) -> TcpProxy {
        let binary = match kind {
            Kind::Haproxy => HAPROXY,
            Kind::NginxStream => crate::nginx::NGINX,
        };
        for needed in [binary, NGINX_STREAM_MODULE] {
            if needed == NGINX_STREAM_MODULE && kind != Kind::NginxStream {
                continue;
            }
            assert!(
                Path::new(needed).exists(),
                "{needed} is missing: apt-get install haproxy libnginx-mod-stream (.ci/run does it)"
            );
        }
        fs::create_dir_all(dir).expect("create the proxy's directory");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = crate::nginx::free_ports(1)[0];
            let config = dir.join("proxy.conf");
            let text = match kind {
                Kind::Haproxy => haproxy_config(upstream, port),
                Kind::NginxStream => nginx_config(dir, upstream, port),
            };
            fs::write(&config, text).expect("write the proxy's configuration");
            let mut command = Command::new(binary);
            match kind {
                // -db: the foreground, no daemon.
                Kind::Haproxy => command.arg("-db").arg("-f").arg(&config),
                Kind::NginxStream => command
                    .arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(&config)
                    .arg("-e")
                    .arg(dir.join("error.log")),
            };
            let log = fs::File::create(dir.join("stderr.log")).expect("the proxy's log file");
            let child = command
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the proxy's log file"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|err| panic!("spawn {binary}: {err}"));
            let mut proxy = TcpProxy {
                child,
                dir: dir.to_path_buf(),
                port,
                reaped: false,
            };
            // Listening once a connection is accepted (the proxy then
            // opens one to runicorn, sends its header and closes: no
            // request, so no access line); a failed bind ends it.
            let listening = wait_for(deadline(30.0), || {
                if TcpStream::connect(proxy.addr()).is_ok() {
                    return Some(true);
                }
                match proxy.child.try_wait() {
                    Ok(Some(_)) => Some(false),
                    _ => None,
                }
            });
            if listening == Some(true) {
                return proxy;
            }
            let log = proxy.log();
            proxy.kill();
            if !log.contains("Address already in use") && !log.contains("cannot bind") {
                panic!("{binary} did not start:\n{log}");
            }
            last_log = log;
        }
        panic!("{binary} found its port taken {PORT_ATTEMPTS} times:\n{last_log}")
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What the proxy logged.
    pub fn log(&self) -> String {
        let mut text = fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        text.push_str(&fs::read_to_string(self.dir.join("error.log")).unwrap_or_default());
        text
    }

    fn kill(&mut self) {
        crate::command::kill_group(&mut self.child, &mut self.reaped);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- proxy log ---\n{}--- end ---", self.log());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_are_filled_in() {
        let upstream: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let haproxy = haproxy_config(upstream, 8081);
        assert!(
            haproxy.contains("127.0.0.1:9000 send-proxy-v2"),
            "{haproxy}"
        );
        assert!(haproxy.contains("bind 127.0.0.1:8081"), "{haproxy}");
        let nginx = nginx_config(Path::new("/tmp/x"), upstream, 8082);
        assert!(nginx.contains("proxy_pass 127.0.0.1:9000;"), "{nginx}");
        assert!(nginx.contains("listen 127.0.0.1:8082;"), "{nginx}");
        assert!(nginx.contains("proxy_protocol on;"), "{nginx}");
    }
}
