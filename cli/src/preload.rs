//! The `--preload` trap: an app that opens a connection while it is
//! imported in the master (a database pool, a cache client) hands every
//! worker the same socket, and their traffic on it interleaves. runicorn
//! cannot tell a harmless socket from a shared connection, so it names every
//! socket the import opened, with where it goes, and the fix: open it in a
//! `post_fork` hook, or lazily on first use.

use std::collections::BTreeSet;

/// The sockets open in this process: `(fd, inode)`.
pub fn open_sockets() -> BTreeSet<(u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let fd: u32 = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((fd, inode))
        })
        .collect()
}

/// `0100007F:1538` (the kernel's hex, host byte order for IPv4) as text.
fn decode_addr(hex: &str) -> Option<String> {
    let (ip, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    match ip.len() {
        8 => {
            let raw = u32::from_str_radix(ip, 16).ok()?;
            let ip = std::net::Ipv4Addr::from(raw.swap_bytes());
            Some(format!("{ip}:{port}"))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (word, chunk) in bytes.chunks_mut(4).enumerate() {
                let raw = u32::from_str_radix(&ip[word * 8..word * 8 + 8], 16).ok()?;
                chunk.copy_from_slice(&raw.swap_bytes().to_be_bytes());
            }
            Some(format!("[{}]:{port}", std::net::Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// What the socket with `inode` is, from `/proc/self/net`: `TCP
/// 127.0.0.1:40000 -> 127.0.0.1:5432`, `UDP ...`, `unix /run/x.sock`.
pub fn describe(inode: u64) -> String {
    for (table, kind) in [
        ("tcp", "TCP"),
        ("tcp6", "TCP"),
        ("udp", "UDP"),
        ("udp6", "UDP"),
    ] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/self/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(9).and_then(|field| field.parse::<u64>().ok()) != Some(inode) {
                continue;
            }
            let local = fields
                .get(1)
                .and_then(|f| decode_addr(f))
                .unwrap_or_default();
            let remote = fields
                .get(2)
                .and_then(|f| decode_addr(f))
                .unwrap_or_default();
            return format!("{kind} {local} -> {remote}");
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/self/net/unix") {
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(6).and_then(|field| field.parse::<u64>().ok()) == Some(inode) {
                let path = fields.get(7).copied().unwrap_or("(unnamed)");
                return format!("unix socket {path}");
            }
        }
    }
    format!("socket inode {inode}")
}

/// Warn about every socket in `after` that was not in `before`.
pub fn warn_new_sockets(before: &BTreeSet<(u32, u64)>, after: &BTreeSet<(u32, u64)>, app: &str) {
    for (fd, inode) in after.difference(before) {
        tracing::warn!(
            "--preload: importing {app} in the master opened a socket (fd {fd}: {}); every worker inherits \
             this one socket and their traffic on it interleaves. Open connections after fork instead: in a \
             post_fork hook (gunicorn.conf.py), or lazily on first use",
            describe(*inode)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_decode() {
        assert_eq!(
            decode_addr("0100007F:1538").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            decode_addr("00000000000000000000000001000000:0050").as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(decode_addr("zz"), None);
    }

    #[test]
    fn a_new_connection_is_seen_and_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let before = open_sockets();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let after = open_sockets();
        let new: Vec<_> = after.difference(&before).collect();
        assert_eq!(new.len(), 1, "{new:?}");
        let text = describe(new[0].1);
        let port = listener.local_addr().unwrap().port();
        assert!(text.starts_with("TCP 127.0.0.1:"), "{text}");
        assert!(text.ends_with(&format!("-> 127.0.0.1:{port}")), "{text}");
        drop(stream);
    }
}
