//! The settings table: every setting runicorn takes, declared once.
//!
//! Keys and flags are Gunicorn's, odd spellings included (`--preload` for
//! `preload_app`, `--keep-alive` for `keepalive`, `-p/--pid` for `pidfile`,
//! `--limit-request-field_size`). Defaults are `Settings::default()` plus
//! the environment-derived ones declared here; `--help`, `--print-config`
//! and `docs/settings.md` are all generated from this table.

use std::path::PathBuf;

use runicorn_worker::Settings;

use super::parse;
use super::raw::Raw;
use super::setting::{Arity, EnvDefault, Section, Setting};

fn int(number: impl TryInto<i64>) -> Option<toml::Value> {
    Some(toml::Value::Integer(number.try_into().unwrap_or(i64::MAX)))
}

fn string(text: &str) -> Option<toml::Value> {
    Some(toml::Value::String(text.to_owned()))
}

fn optional(text: Option<&str>) -> Option<toml::Value> {
    text.map(|text| toml::Value::String(text.to_owned()))
}

fn optional_path(path: Option<&PathBuf>) -> Option<toml::Value> {
    path.map(|path| toml::Value::String(path.display().to_string()))
}

fn boolean(flag: bool) -> Option<toml::Value> {
    Some(toml::Value::Boolean(flag))
}

fn seconds(duration: std::time::Duration) -> Option<toml::Value> {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        int(duration.as_secs())
    } else {
        Some(toml::Value::Float(secs))
    }
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Option<toml::Value> {
    Some(toml::Value::Array(
        items
            .into_iter()
            .map(|item| toml::Value::String(item.to_owned()))
            .collect(),
    ))
}

fn paths(items: &[PathBuf]) -> Option<toml::Value> {
    Some(toml::Value::Array(
        items
            .iter()
            .map(|item| toml::Value::String(item.display().to_string()))
            .collect(),
    ))
}

fn path_list(raw: &Raw) -> Result<Vec<PathBuf>, parse::Allowed> {
    parse::list(raw, |item| {
        parse::optional_path(item)?.ok_or_else(|| "a non-empty path".to_owned())
    })
}

/// Stores one server hook, replacing an earlier value for the same hook.
fn set_hook(settings: &mut Settings, name: &str, raw: &Raw) -> Result<(), parse::Allowed> {
    let target = parse::hook(raw)?;
    settings.hooks.retain(|(hook, _)| hook != name);
    settings.hooks.push((name.to_owned(), target));
    Ok(())
}

fn show_hook(settings: &Settings, name: &str) -> Option<toml::Value> {
    settings
        .hooks
        .iter()
        .find(|(hook, _)| hook == name)
        .and_then(|(_, target)| string(target))
}

/// Declares a server hook: a config-file key naming `module:function`.
macro_rules! hook {
    ($name:literal, $doc:literal) => {
        Setting {
            key: $name,
            section: Section::ServerHooks,
            short: None,
            long: &[],
            value_name: "MODULE:FUNCTION",
            arity: Arity::FileOnly,
            env_default: None,
            doc: $doc,
            apply: |settings, raw| set_hook(settings, $name, raw),
            show: |settings| show_hook(settings, $name),
        }
    };
}

/// What `--proxy-protocol` takes, and the one mistake a Gunicorn command
/// line makes with it.
const PROXY_MODES: &str = "off, v1, v2 or auto (true means auto); a bare --proxy-protocol right before the APP \
                           argument takes the app as its value: write --proxy-protocol=auto, or put it after \
                           another flag";

/// Every setting, in reference order.
pub static SETTINGS: &[Setting] = &[
    // --- config file
    Setting {
        key: "config",
        section: Section::ConfigFile,
        short: Some('c'),
        long: &["config"],
        value_name: "CONFIG",
        arity: Arity::One,
        env_default: None,
        doc: "The TOML config file to read. Defaults to `./runicorn.toml` when that file exists. \
              Precedence, lowest first: defaults, the config file, `RUNICORN_CMD_ARGS`, the command line.",
        apply: |settings, raw| {
            settings.config = parse::optional_path(raw)?;
            Ok(())
        },
        show: |settings| optional_path(settings.config.as_ref()),
    },
    Setting {
        key: "env_name",
        section: Section::ConfigFile,
        short: None,
        long: &["env-name"],
        value_name: "NAME",
        arity: Arity::One,
        env_default: Some(EnvDefault {
            var: "RUNICORN_ENV",
            to_raw: |value| Raw::Text(value.to_owned()),
            doc: "`$RUNICORN_ENV` when set",
        }),
        doc: "Selects the `[env.NAME]` section of the config file: its keys override the file's top-level keys \
              (this replaces Gunicorn's `if env == \"production\"` idiom).",
        apply: |settings, raw| {
            settings.env_name = parse::optional_text(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.env_name.as_deref()),
    },
    // --- app
    Setting {
        key: "wsgi_app",
        section: Section::App,
        short: None,
        long: &[],
        value_name: "APP",
        arity: Arity::Positional,
        env_default: None,
        doc: "The app to serve, `MODULE:VARIABLE`: `builtin:hello`, or `myapp:app` for the symbol `app` exported \
              by `libmyapp.so` (found on `--chdir` and `--app-path`), or a path to the library.",
        apply: |settings, raw| {
            settings.app = parse::text(raw)?;
            Ok(())
        },
        show: |settings| (!settings.app.is_empty()).then(|| toml::Value::String(settings.app.clone())),
    },
    Setting {
        key: "chdir",
        section: Section::App,
        short: None,
        long: &["chdir"],
        value_name: "DIR",
        arity: Arity::One,
        env_default: None,
        doc: "Change to this directory before loading the app.",
        apply: |settings, raw| {
            settings.chdir = parse::optional_path(raw)?;
            Ok(())
        },
        show: |settings| optional_path(settings.chdir.as_ref()),
    },
    Setting {
        key: "app_path",
        section: Section::App,
        short: None,
        long: &["app-path"],
        value_name: "DIR",
        arity: Arity::Many,
        env_default: None,
        doc: "A directory searched for app libraries (repeatable); for Python modules see `--pythonpath`.",
        apply: |settings, raw| {
            settings.app_path = path_list(raw)?;
            Ok(())
        },
        show: |settings| paths(&settings.app_path),
    },
    Setting {
        key: "pythonpath",
        section: Section::App,
        short: None,
        long: &["pythonpath"],
        value_name: "STRING",
        arity: Arity::One,
        env_default: None,
        doc: "Comma-separated directories added to Python's `sys.path` before a Python app is imported, \
              as Gunicorn's `--pythonpath` (the current directory, or `--chdir`, comes first).",
        apply: |settings, raw| {
            settings.pythonpath = match raw {
                Raw::List(_) => path_list(raw)?,
                _ => parse::text(raw)?
                    .split(',')
                    .map(str::trim)
                    .filter(|dir| !dir.is_empty())
                    .map(PathBuf::from)
                    .collect(),
            };
            Ok(())
        },
        show: |settings| {
            (!settings.pythonpath.is_empty()).then(|| {
                let dirs: Vec<String> = settings.pythonpath.iter().map(|dir| dir.display().to_string()).collect();
                toml::Value::String(dirs.join(","))
            })
        },
    },
    Setting {
        key: "preload_app",
        section: Section::App,
        short: None,
        long: &["preload"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "Load the app library in the master before forking workers (each worker still runs the app's \
              `init_worker`). Saves memory and boot time; a HUP then cannot pick up a new library.",
        apply: |settings, raw| {
            settings.preload_app = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.preload_app),
    },
    Setting {
        key: "raw_env",
        section: Section::App,
        short: Some('e'),
        long: &["env"],
        value_name: "KEY=VALUE",
        arity: Arity::Many,
        env_default: None,
        doc: "Set an environment variable in the workers (repeatable).",
        apply: |settings, raw| {
            settings.raw_env = parse::list(raw, parse::env_pair)?;
            Ok(())
        },
        show: |settings| {
            let pairs: Vec<String> = settings.raw_env.iter().map(|(key, value)| format!("{key}={value}")).collect();
            strings(pairs.iter().map(String::as_str))
        },
    },
    // --- debugging
    Setting {
        key: "reload",
        section: Section::Debugging,
        short: None,
        long: &["reload"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "Development: roll the workers when the app library, the config file or a `--reload-extra-file` \
              changes. A watcher process (inotify) sends the master HUP; replace a library by rename \
              (`cp new.so lib.so.tmp && mv lib.so.tmp lib.so`), never by writing over it.",
        apply: |settings, raw| {
            settings.reload = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.reload),
    },
    Setting {
        key: "reload_extra_files",
        section: Section::Debugging,
        short: None,
        long: &["reload-extra-file"],
        value_name: "FILE",
        arity: Arity::Many,
        env_default: None,
        doc: "Another file whose change triggers a reload (repeatable; implies nothing without `--reload`).",
        apply: |settings, raw| {
            settings.reload_extra_files = path_list(raw)?;
            Ok(())
        },
        show: |settings| paths(&settings.reload_extra_files),
    },
    // --- server socket
    Setting {
        key: "bind",
        section: Section::ServerSocket,
        short: Some('b'),
        long: &["bind"],
        value_name: "ADDRESS",
        arity: Arity::Many,
        env_default: Some(EnvDefault {
            var: "PORT",
            to_raw: |port| Raw::Text(format!("0.0.0.0:{port}")),
            doc: "`0.0.0.0:$PORT` when `PORT` is set",
        }),
        doc: "The socket to bind (repeatable): `HOST:PORT`, `[IPV6]:PORT`, `unix:PATH`, or `fd://N` for an \
              inherited descriptor.",
        apply: |settings, raw| {
            settings.bind = parse::list(raw, parse::bind)?;
            if settings.bind.is_empty() {
                return Err(format!("at least one address: {}", parse::BIND_FORMS));
            }
            Ok(())
        },
        show: |settings| strings(settings.bind.iter().map(String::as_str)),
    },
    Setting {
        key: "backlog",
        section: Section::ServerSocket,
        short: None,
        long: &["backlog"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "The listen queue length: connections waiting to be accepted. The kernel caps it at \
              `net.core.somaxconn`.",
        apply: |settings, raw| {
            settings.backlog = parse::bounded(raw, 1, i32::MAX as u64)? as i32;
            Ok(())
        },
        show: |settings| int(settings.backlog),
    },
    Setting {
        key: "reuse_port",
        section: Section::ServerSocket,
        short: None,
        long: &["reuse-port"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "Set `SO_REUSEPORT` on TCP listeners. Caveat: with several processes bound to one port, the kernel \
              drops the connections still queued on a socket that closes, so a stopping server can lose them.",
        apply: |settings, raw| {
            settings.reuse_port = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.reuse_port),
    },
    Setting {
        key: "forwarded_allow_ips",
        section: Section::ServerSocket,
        short: None,
        long: &["forwarded-allow-ips"],
        value_name: "IPS",
        arity: Arity::One,
        env_default: Some(EnvDefault {
            var: "FORWARDED_ALLOW_IPS",
            to_raw: |value| Raw::Text(value.to_owned()),
            doc: "`$FORWARDED_ALLOW_IPS` when set",
        }),
        doc: "Front ends trusted to set forwarding headers, comma-separated IP addresses and CIDR networks \
              (`10.0.0.0/8`); `*` trusts every peer, and unix-socket peers are always trusted (as Gunicorn). From \
              a trusted peer, `secure_scheme_headers` set the URL scheme the app sees (contradictory ones get 400) \
              and `X-Forwarded-For` gives the app the client's address (the rightmost hop that is not a trusted \
              front end) next to the socket peer; the standard `Forwarded` field (RFC 7239) is read the same way: \
              the rightmost element whose `for=` is not a trusted front end gives the client (`unknown` and \
              obfuscated `_ids` as written), its `proto=` the scheme (400 if a scheme header disagrees) and its \
              `host=` the host (a WSGI app's `HTTP_HOST`); it wins over `X-Forwarded-For`, and one that breaks \
              RFC 7239's grammar gets 400. From any other peer those headers reach the app untouched and are \
              never believed.",
        apply: |settings, raw| {
            let allowed = || "comma-separated IP addresses or CIDR networks (10.0.0.0/8), or *".to_owned();
            let items: Vec<String> = match raw {
                Raw::Text(text) => text.split(',').map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect(),
                Raw::List(_) => parse::list(raw, parse::text)?,
                _ => return Err(allowed()),
            };
            runicorn_http::ForwardedPolicy::new(&items, &[]).map_err(|_| allowed())?;
            settings.forwarded_allow_ips = items;
            Ok(())
        },
        show: |settings| string(&settings.forwarded_allow_ips.join(",")),
    },
    Setting {
        key: "secure_scheme_headers",
        section: Section::ServerSocket,
        short: None,
        long: &["secure-scheme-headers"],
        value_name: "NAME=VALUE,...",
        arity: Arity::One,
        env_default: None,
        doc: "Header fields, each with the exact value by which a front end trusted by `forwarded_allow_ips` \
              says the client used https: a match makes the URL scheme the app sees `https`, a present field \
              that does not match makes it `http`, and two that disagree get 400 (so does one that disagrees \
              with a trusted `Forwarded: proto=`). Names are case-insensitive, values exact. On the command \
              line `--secure-scheme-headers 'X-FORWARDED-PROTO=https,X-FORWARDED-SSL=on'`, in TOML a table \
              `secure_scheme_headers = { X-FORWARDED-PROTO = \"https\" }`; `''` or `{}` believes no scheme \
              field (a trusted `Forwarded: proto=` still counts).",
        apply: |settings, raw| {
            let allowed = || {
                "NAME=VALUE pairs, comma-separated (X-FORWARDED-PROTO=https,X-FORWARDED-SSL=on), or a table of \
                 header names to values, such as { X-FORWARDED-PROTO = \"https\" }"
                    .to_owned()
            };
            let entries: Vec<(String, String)> = match raw {
                Raw::Table(entries) => entries
                    .iter()
                    .map(|(name, value)| Ok((name.clone(), parse::text(value).map_err(|_| allowed())?)))
                    .collect::<Result<_, String>>()?,
                Raw::Text(text) => text
                    .split(',')
                    .map(str::trim)
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (name, value) = pair.split_once('=').ok_or_else(allowed)?;
                        Ok((name.trim().to_owned(), value.trim().to_owned()))
                    })
                    .collect::<Result<_, String>>()?,
                _ => return Err(allowed()),
            };
            for (name, _) in &entries {
                if !parse::is_token(name) {
                    return Err(allowed());
                }
            }
            settings.secure_scheme_headers = entries;
            Ok(())
        },
        show: |settings| {
            let table: toml::Table = settings
                .secure_scheme_headers
                .iter()
                .map(|(name, value)| (name.clone(), toml::Value::String(value.clone())))
                .collect();
            Some(toml::Value::Table(table))
        },
    },
    Setting {
        key: "forwarder_headers",
        section: Section::ServerSocket,
        short: None,
        long: &["forwarder-headers"],
        value_name: "NAMES",
        arity: Arity::One,
        env_default: None,
        doc: "Python (WSGI) apps: header field names with `_` that a front end trusted by \
              `forwarded_allow_ips` may send to set WSGI environ keys, comma-separated, case-insensitive \
              (Gunicorn's). From a trusted peer a listed field reaches the environ (`HTTP_<NAME>`), and \
              `SCRIPT_NAME: /prefix` sets `SCRIPT_NAME` with `PATH_INFO` made relative to it; every other \
              field with `_` in its name, and every one from an untrusted peer, is dropped (Gunicorn's \
              `header_map = drop`): `X_Forwarded_For` cannot pass for `X-Forwarded-For`. `*` allows every \
              name from a trusted peer; `''` none. Make sure the front end strips these fields from clients. A native app has no environ: with one, \
              any value but the default is refused at start.",
        apply: |settings, raw| {
            let allowed = || "comma-separated header field names (SCRIPT_NAME,PATH_INFO), or *".to_owned();
            let items: Vec<String> = match raw {
                Raw::Text(text) => {
                    text.split(',').map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect()
                }
                Raw::List(_) => parse::list(raw, parse::text)?,
                _ => return Err(allowed()),
            };
            if items.iter().any(|item| item != "*" && !parse::is_token(item)) {
                return Err(allowed());
            }
            settings.forwarder_headers = items.iter().map(|item| item.to_ascii_uppercase()).collect();
            Ok(())
        },
        show: |settings| string(&settings.forwarder_headers.join(",")),
    },
    // --- SSL
    Setting {
        key: "certfile",
        section: Section::Ssl,
        short: None,
        long: &["certfile"],
        value_name: "FILE",
        arity: Arity::One,
        env_default: None,
        doc: "Serve HTTPS: the server's certificate in PEM, followed by its chain (intermediates). Needs \
              `--keyfile`. Every listener speaks TLS (1.2 and 1.3), on every worker class; ALPN offers \
              `http/1.1`; apps see the scheme `https`. The master reads and checks the files at start (a bad one \
              stops it with one line) and again on each HUP: files that do not load leave the running \
              configuration, and the certificate it serves, in place (the error is logged).",
        apply: |settings, raw| {
            settings.certfile = parse::optional_path(raw)?;
            Ok(())
        },
        show: |settings| optional_path(settings.certfile.as_ref()),
    },
    Setting {
        key: "keyfile",
        section: Section::Ssl,
        short: None,
        long: &["keyfile"],
        value_name: "FILE",
        arity: Arity::One,
        env_default: None,
        doc: "The private key of `--certfile`, in PEM (PKCS#8, PKCS#1 RSA or SEC1 EC); it must match the \
              certificate.",
        apply: |settings, raw| {
            settings.keyfile = parse::optional_path(raw)?;
            Ok(())
        },
        show: |settings| optional_path(settings.keyfile.as_ref()),
    },
    Setting {
        key: "ca_certs",
        section: Section::Ssl,
        short: None,
        long: &["ca-certs"],
        value_name: "FILE",
        arity: Arity::One,
        env_default: None,
        doc: "The CA certificates (PEM) that client certificates must be signed by; used with `--cert-reqs` \
              1 or 2 (and refused without it).",
        apply: |settings, raw| {
            settings.ca_certs = parse::optional_path(raw)?;
            Ok(())
        },
        show: |settings| optional_path(settings.ca_certs.as_ref()),
    },
    Setting {
        key: "cert_reqs",
        section: Section::Ssl,
        short: None,
        long: &["cert-reqs"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "Client certificates, as Python's `ssl` numbers them: 0 (`none`) asks for none; 1 (`optional`) \
              asks, and checks one presented against `--ca-certs`; 2 (`required`) refuses a client without a \
              certificate signed by `--ca-certs`.",
        apply: |settings, raw| {
            let allowed = || "0 (none), 1 (optional) or 2 (required)".to_owned();
            let text = parse::text(raw).map_err(|_| allowed())?;
            settings.cert_reqs = runicorn_worker::tls::CertReqs::parse(&text).ok_or_else(allowed)?;
            Ok(())
        },
        show: |settings| int(settings.cert_reqs.number()),
    },
    Setting {
        key: "ciphers",
        section: Section::Ssl,
        short: None,
        long: &["ciphers"],
        value_name: "CIPHERS",
        arity: Arity::One,
        env_default: None,
        doc: "The cipher suites offered, in order, separated by `:`; the default is rustls' own set (every suite \
              below, TLS 1.3 ones first). Each is a suite rustls implements, by its IANA name as rustls spells it \
              or OpenSSL's: `TLS13_AES_256_GCM_SHA384` (`TLS_AES_256_GCM_SHA384`), `TLS13_AES_128_GCM_SHA256`, \
              `TLS13_CHACHA20_POLY1305_SHA256`, `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384` \
              (`ECDHE-ECDSA-AES256-GCM-SHA384`), `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, \
              `TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256`, `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384` \
              (`ECDHE-RSA-AES256-GCM-SHA384`), `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, \
              `TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256`. OpenSSL cipher strings (`HIGH:!aNULL`, \
              `ECDHE+AESGCM`) are refused: rustls has no such language, and no weaker suite to enable.",
        apply: |settings, raw| {
            let text = parse::text(raw)
                .map_err(|_| "cipher-suite names separated by ':'".to_owned())?;
            settings.ciphers = runicorn_worker::tls::parse_ciphers(&text).map_err(|reason| {
                format!("cipher-suite names rustls implements, separated by ':' (docs/settings.md lists them): {reason}")
            })?;
            Ok(())
        },
        show: |settings| {
            if settings.ciphers.is_empty() {
                None
            } else {
                string(&settings.ciphers.join(":"))
            }
        },
    },
    Setting {
        key: "ssl_version",
        section: Section::Ssl,
        short: None,
        long: &["ssl-version"],
        value_name: "VERSION",
        arity: Arity::One,
        env_default: None,
        doc: "The TLS versions spoken, as Gunicorn names Python's protocols: `TLS_SERVER` (also `TLS`, \
              `SSLv23`, 2 or 17; the default) negotiates TLS 1.3 or 1.2; `TLSv1_2` (5) speaks TLS 1.2 only; \
              `TLSv1_3` TLS 1.3 only. SSLv3, TLS 1.0 and 1.1 are refused: rustls does not implement them.",
        apply: |settings, raw| {
            let text = parse::text(raw).map_err(|_| "a protocol name such as TLS_SERVER".to_owned())?;
            settings.ssl_version = runicorn_worker::tls::TlsVersions::parse(&text)
                .map_err(|reason| format!("TLS_SERVER, TLSv1_2 or TLSv1_3 ({reason})"))?;
            Ok(())
        },
        show: |settings| string(settings.ssl_version.name()),
    },
    // --- worker processes
    Setting {
        key: "workers",
        section: Section::WorkerProcesses,
        short: Some('w'),
        long: &["workers"],
        value_name: "INT",
        arity: Arity::One,
        env_default: Some(EnvDefault {
            var: "WEB_CONCURRENCY",
            to_raw: |value| Raw::Text(value.to_owned()),
            doc: "`$WEB_CONCURRENCY` when set",
        }),
        doc: "The number of worker processes. A start: 2-4 per core for sync; fewer with threads.",
        apply: |settings, raw| {
            settings.workers = parse::count(raw, 1)?;
            Ok(())
        },
        show: |settings| int(settings.workers),
    },
    Setting {
        key: "worker_class",
        section: Section::WorkerProcesses,
        short: Some('k'),
        long: &["worker-class"],
        value_name: "CLASS",
        arity: Arity::One,
        env_default: None,
        doc: "The concurrency model: `sync`, `gthread`, `green`, `async`, or `LIBRARY:SYMBOL` for a class in a \
              shared library. `--threads` above 1 with `sync` selects `gthread`, as Gunicorn does. Gunicorn's \
              names start too, with one WARNING saying what differs: `gevent` and `eventlet` run as `green`, \
              `tornado` and `uvicorn.workers.UvicornWorker` as `async` (also spelled `egg:gunicorn#gevent` \
              or by class path). Against slow clients: `sync` serves one connection at a time, so one client \
              dripping its request holds a worker until the head deadline (put a buffering proxy such as nginx \
              in front, as for Gunicorn's sync); under `gthread`, `green` and `async` a client slow to send \
              its head costs a parked connection, not a thread (docs/operations.md, Slow clients).",
        apply: |settings, raw| {
            settings.worker_class = parse::text(raw)?;
            Ok(())
        },
        show: |settings| string(&settings.worker_class),
    },
    Setting {
        key: "threads",
        section: Section::WorkerProcesses,
        short: None,
        long: &["threads"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "Threads per worker: the pool of `gthread`, the may workers of `green`, the runtimes of `async`.",
        apply: |settings, raw| {
            settings.threads = parse::count(raw, 1)?;
            Ok(())
        },
        show: |settings| int(settings.threads),
    },
    Setting {
        key: "worker_connections",
        section: Section::WorkerProcesses,
        short: None,
        long: &["worker-connections"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "The most connections one worker holds at once (gthread, green, async; with `sync`, which holds \
              one, a WARNING says it has no effect).",
        apply: |settings, raw| {
            settings.worker_connections = parse::count(raw, 1)?;
            Ok(())
        },
        show: |settings| int(settings.worker_connections),
    },
    Setting {
        key: "max_requests",
        section: Section::WorkerProcesses,
        short: None,
        long: &["max-requests"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "Restart a worker after this many requests, to bound leaks; 0 never restarts.",
        apply: |settings, raw| {
            settings.max_requests = parse::unsigned(raw, 0)?;
            Ok(())
        },
        show: |settings| int(settings.max_requests),
    },
    Setting {
        key: "max_requests_jitter",
        section: Section::WorkerProcesses,
        short: None,
        long: &["max-requests-jitter"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "Add a random 0..=N to each worker's `max_requests`, so workers do not restart together.",
        apply: |settings, raw| {
            settings.max_requests_jitter = parse::unsigned(raw, 0)?;
            Ok(())
        },
        show: |settings| int(settings.max_requests_jitter),
    },
    Setting {
        key: "max_worker_memory",
        section: Section::WorkerProcesses,
        short: None,
        long: &["max-worker-memory"],
        value_name: "MB",
        arity: Arity::One,
        env_default: None,
        doc: "Retire a worker gracefully once its resident set size (RSS, sampled by the master about once a \
              second) passes this many megabytes (MiB: 1,048,576 bytes): it stops accepting, finishes its requests and exits, and a new \
              worker takes its place (uWSGI's `reload-on-rss`). Each worker's threshold is drawn between 90% and \
              100% of the value, so workers that grow alike do not retire together. 0 (the default) never \
              retires a worker for its memory.",
        apply: |settings, raw| {
            settings.max_worker_memory = parse::unsigned(raw, 0)?;
            Ok(())
        },
        show: |settings| int(settings.max_worker_memory),
    },
    Setting {
        key: "timeout",
        section: Section::WorkerProcesses,
        short: Some('t'),
        long: &["timeout"],
        value_name: "SECONDS",
        arity: Arity::One,
        env_default: None,
        doc: "A worker silent for longer than this is killed and replaced; 0 disables the check. A request \
              that runs longer is named in the log under every class, as it passes the limit and as it ends: \
              a `sync` worker is killed with it (`WORKER TIMEOUT`), a `gthread` worker retires once it ends, \
              `green` and `async` only report it (see docs/operations.md).",
        apply: |settings, raw| {
            settings.timeout = parse::seconds(raw)?;
            Ok(())
        },
        show: |settings| seconds(settings.timeout),
    },
    Setting {
        key: "graceful_timeout",
        section: Section::WorkerProcesses,
        short: None,
        long: &["graceful-timeout"],
        value_name: "SECONDS",
        arity: Arity::One,
        env_default: None,
        doc: "After a graceful stop (TERM, HUP, max-requests), how long workers may finish their requests \
              before they are killed.",
        apply: |settings, raw| {
            settings.graceful_timeout = parse::seconds(raw)?;
            Ok(())
        },
        show: |settings| seconds(settings.graceful_timeout),
    },
    Setting {
        key: "keepalive",
        section: Section::WorkerProcesses,
        short: None,
        long: &["keep-alive"],
        value_name: "SECONDS",
        arity: Arity::One,
        env_default: None,
        doc: "How long an idle keep-alive connection is kept (not `sync`, which closes every connection: there a \
              WARNING says it has no effect).",
        apply: |settings, raw| {
            settings.keepalive = parse::seconds(raw)?;
            Ok(())
        },
        show: |settings| seconds(settings.keepalive),
    },
    Setting {
        key: "green_stack_size",
        section: Section::WorkerProcesses,
        short: None,
        long: &["green-stack-size"],
        value_name: "BYTES",
        arity: Arity::One,
        env_default: None,
        doc: "The stack of each coroutine of the `green` class, in bytes (at least 16384); other classes warn \
              that it has no effect.",
        apply: |settings, raw| {
            settings.green_stack_size = parse::count(raw, 16 * 1024)?;
            Ok(())
        },
        show: |settings| int(settings.green_stack_size),
    },
    Setting {
        key: "blocking_threads",
        section: Section::WorkerProcesses,
        short: None,
        long: &["blocking-threads"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "The thread pool on which blocking apps run: the `async` class's for apps without an async entry, \
              the `green` class's for apps that block a thread (Python ones). It bounds those apps' requests in \
              flight per worker, below `--worker-connections`; such a worker logs the bound at boot (`...: its \
              requests run on the blocking pool, at most N at once in this worker (--blocking-threads B)`). Other \
              classes run apps on their own threads (a WARNING says so when it is set for them).",
        apply: |settings, raw| {
            settings.blocking_threads = parse::count(raw, 1)?;
            Ok(())
        },
        show: |settings| int(settings.blocking_threads),
    },
    // --- security
    Setting {
        key: "limit_request_line",
        section: Section::Security,
        short: None,
        long: &["limit-request-line"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "The longest request line in bytes (0: unlimited). Longer lines get 414.",
        apply: |settings, raw| {
            settings.limit_request_line = parse::bounded(raw, 0, 1 << 20)? as usize;
            Ok(())
        },
        show: |settings| int(settings.limit_request_line),
    },
    Setting {
        key: "limit_request_fields",
        section: Section::Security,
        short: None,
        long: &["limit-request-fields"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "The most header fields in a request; more get 431. 0 means Gunicorn's maximum, 32768.",
        apply: |settings, raw| {
            settings.limit_request_fields = parse::bounded(raw, 0, 32768)? as usize;
            Ok(())
        },
        show: |settings| int(settings.limit_request_fields),
    },
    Setting {
        key: "limit_request_field_size",
        section: Section::Security,
        short: None,
        long: &["limit-request-field_size"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "The longest header field line in bytes, counted as Gunicorn counts it: name, colon, whitespace, \
              value and the CRLF (so 8190 admits a line of 8188 bytes plus CRLF); longer ones get 431. 0 means \
              the default, 8190. It also bounds trailer lines, and chunk-size lines (400 beyond).",
        apply: |settings, raw| {
            settings.limit_request_field_size = parse::bounded(raw, 0, 1 << 20)? as usize;
            Ok(())
        },
        show: |settings| int(settings.limit_request_field_size),
    },
    Setting {
        key: "limit_request_body",
        section: Section::Security,
        short: None,
        long: &["limit-request-body"],
        value_name: "BYTES",
        arity: Arity::One,
        env_default: None,
        doc: "The largest request body in bytes; larger ones get 413.",
        apply: |settings, raw| {
            settings.limit_request_body = parse::unsigned(raw, 0)?;
            Ok(())
        },
        show: |settings| int(settings.limit_request_body),
    },
    // --- slow and greedy clients (issue 16)
    Setting {
        key: "header_timeout",
        section: Section::Security,
        short: None,
        long: &["header-timeout"],
        value_name: "SECONDS",
        arity: Arity::One,
        env_default: None,
        doc: "The total deadline for a request head. On a new connection it runs from the accept, so it also \
              bounds the wait for the first byte (and a PROXY header or a TLS handshake before the head); on a \
              kept-alive connection from the first byte of the next request (the wait for that byte is \
              `--keep-alive`). A client with part of a head sent by then gets 408 and a close (a slowloris \
              client dripping a byte a second); one that sent nothing is closed silently. 0: no deadline. \
              Under `sync`, which serves one connection at a time, this bounds how long one slow client holds \
              the worker: put a buffering proxy (nginx) in front of it, as Gunicorn's sync worker needs. A sync \
              worker does not beat while it waits for a head, so there the deadline is cut to half of \
              `--timeout` when it is longer (a WARNING says so when it was set).",
        apply: |settings, raw| {
            settings.header_timeout = parse::seconds(raw)?;
            Ok(())
        },
        show: |settings| seconds(settings.header_timeout),
    },
    Setting {
        key: "body_timeout",
        section: Section::Security,
        short: None,
        long: &["body-timeout"],
        value_name: "SECONDS",
        arity: Arity::One,
        env_default: None,
        doc: "The longest wait for the next bytes of a request body. Past it the client gets 408 (if no \
              response started) and a close, and the app's body read fails (`wsgi.input.read` raises \
              `OSError`): a body cut short is never passed off as complete. Unset: half of `--timeout` (15 s \
              by default, 30 s with `--timeout 0`), so that a `sync` worker waiting on a slow client fails the \
              read before the master kills it for silence. 0: no timeout.",
        apply: |settings, raw| {
            settings.body_timeout = Some(parse::seconds(raw)?);
            Ok(())
        },
        show: |settings| settings.body_timeout.and_then(seconds),
    },
    Setting {
        key: "body_min_rate",
        section: Section::Security,
        short: None,
        long: &["body-min-rate"],
        value_name: "BYTES_PER_SECOND",
        arity: Arity::One,
        env_default: None,
        doc: "The least average rate at which a request body must come once `--body-min-rate-grace` is used \
              up: the time spent waiting for body bytes may be at most the grace plus one second per \
              BYTES_PER_SECOND bytes received (Apache's `RequestReadTimeout body=20,MinRate=500`, the \
              defaults). Time the app spends between its reads does not count. A slower body ends as a \
              `--body-timeout` does: 408, and a failed read for the app. 0: no minimum.",
        apply: |settings, raw| {
            settings.body_min_rate = parse::unsigned(raw, 0)?;
            Ok(())
        },
        show: |settings| int(settings.body_min_rate),
    },
    Setting {
        key: "body_min_rate_grace",
        section: Section::Security,
        short: None,
        long: &["body-min-rate-grace"],
        value_name: "SECONDS",
        arity: Arity::One,
        env_default: None,
        doc: "The waiting time a request body gets before `--body-min-rate` applies.",
        apply: |settings, raw| {
            settings.body_min_rate_grace = parse::seconds(raw)?;
            Ok(())
        },
        show: |settings| seconds(settings.body_min_rate_grace),
    },
    Setting {
        key: "write_timeout",
        section: Section::Security,
        short: None,
        long: &["write-timeout"],
        value_name: "SECONDS",
        arity: Arity::One,
        env_default: None,
        doc: "The longest a write to a client may go without progress (a client that does not read, such as \
              one that pipelines requests and never reads the answers); the connection is then closed. \
              A write that makes some progress starts the wait again, so the close comes once nothing has gone \
              out for that long (the kernel's socket buffers may take a few steps to fill: on loopback a client \
              that stops reading is closed a few times this after). Meanwhile the worker reads nothing more \
              from that connection and buffers at most 64 KiB of its answers plus one write of the app. \
              Unset: half of `--timeout` (15 s by default, 30 s with `--timeout 0`). 0: no timeout.",
        apply: |settings, raw| {
            settings.write_timeout = Some(parse::seconds(raw)?);
            Ok(())
        },
        show: |settings| settings.write_timeout.and_then(seconds),
    },
    // --- server mechanics
    Setting {
        key: "daemon",
        section: Section::ServerMechanics,
        short: Some('D'),
        long: &["daemon"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "Detach from the terminal and run in the background.",
        apply: |settings, raw| {
            settings.daemon = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.daemon),
    },
    Setting {
        key: "control_socket",
        section: Section::ServerMechanics,
        short: None,
        long: &["control-socket"],
        value_name: "PATH",
        arity: Arity::One,
        env_default: None,
        doc: "Serve a control socket at this path for `runicorn ctl` (status of every worker and its \
              requests in flight, workers add|remove N, reload, stop); off by default. Mode 0600, \
              and only its owner (the master's user) and root are answered.",
        apply: |settings, raw| {
            settings.control_socket = parse::optional_path(raw)?;
            Ok(())
        },
        show: |settings| optional_path(settings.control_socket.as_ref()),
    },
    Setting {
        key: "pidfile",
        section: Section::ServerMechanics,
        short: Some('p'),
        long: &["pid"],
        value_name: "FILE",
        arity: Arity::One,
        env_default: None,
        doc: "Write the master's pid to this file (refused when it names a live process).",
        apply: |settings, raw| {
            settings.pidfile = parse::optional_path(raw)?;
            Ok(())
        },
        show: |settings| optional_path(settings.pidfile.as_ref()),
    },
    Setting {
        key: "user",
        section: Section::ServerMechanics,
        short: Some('u'),
        long: &["user"],
        value_name: "USER",
        arity: Arity::One,
        env_default: None,
        doc: "Workers switch to this user (name or uid) after the master has bound the sockets.",
        apply: |settings, raw| {
            settings.user = parse::principal(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.user.as_deref()),
    },
    Setting {
        key: "group",
        section: Section::ServerMechanics,
        short: Some('g'),
        long: &["group"],
        value_name: "GROUP",
        arity: Arity::One,
        env_default: None,
        doc: "Workers switch to this group (name or gid) after the master has bound the sockets.",
        apply: |settings, raw| {
            settings.group = parse::principal(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.group.as_deref()),
    },
    Setting {
        key: "umask",
        section: Section::ServerMechanics,
        short: Some('m'),
        long: &["umask"],
        value_name: "INT",
        arity: Arity::One,
        env_default: None,
        doc: "The file mode mask of the workers (files the app creates) and of unix sockets: octal `0o022` or \
              `022`, hex or decimal. Unset, workers run under `0` (Gunicorn's default) but unix sockets are \
              made `0660` (`rw-rw----`, owner and group only: chowned to `--user`/`--group`); given, a socket \
              is `0777` minus the mask, as Gunicorn makes it (`--umask 007`: `0770`; `--umask 0`: \
              world-connectable, Gunicorn's default, only when asked for).",
        apply: |settings, raw| {
            settings.umask = Some(parse::umask(raw)?);
            Ok(())
        },
        show: |settings| settings.umask.and_then(|umask| string(&format!("0o{umask:03o}"))),
    },
    Setting {
        key: "initgroups",
        section: Section::ServerMechanics,
        short: None,
        long: &["initgroups"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "With `--user`: give workers the user's supplementary groups (otherwise they are cleared).",
        apply: |settings, raw| {
            settings.initgroups = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.initgroups),
    },
    Setting {
        key: "proxy_protocol",
        section: Section::ServerMechanics,
        short: None,
        long: &["proxy-protocol"],
        value_name: "MODE",
        arity: Arity::OptionalValue("auto"),
        env_default: None,
        doc: "Read a PROXY protocol header (haproxy's `send-proxy`, nginx's `proxy_protocol on`) at the start of \
              every connection, before TLS and HTTP, within the head deadline: `v1` or `v2` requires that \
              version on every connection, `auto` takes either or none, `off` reads none (then `PROXY ...` is a \
              bad request, 400). As in Gunicorn, a bare `--proxy-protocol` (or `true`) means `auto`, and a bare one \
              right before the APP argument takes the app as its value: put it after another flag or write \
              `--proxy-protocol=auto`. A TCP4/TCP6 (v1) or PROXY (v2) header replaces the peer address the app \
              (`REMOTE_ADDR`, `REMOTE_PORT`), the access log (`%h`) and `forwarded_allow_ips` see; v1 UNKNOWN and \
              v2 LOCAL keep the socket's peer. A malformed header is answered 400 and closed, one from a peer not \
              in `proxy_allow_ips` 403 and closed, a connection closed inside its header or past the deadline is \
              closed; the app is never called for them. Unix-socket listeners read the header too.",
        apply: |settings, raw| {
            settings.proxy_protocol = match raw {
                Raw::Bool(true) => runicorn_http::ProxyMode::Auto,
                Raw::Bool(false) => runicorn_http::ProxyMode::Off,
                Raw::Text(text) => text.parse().map_err(|_| PROXY_MODES.to_owned())?,
                _ => return Err(PROXY_MODES.to_owned()),
            };
            Ok(())
        },
        show: |settings| string(settings.proxy_protocol.as_str()),
    },
    Setting {
        key: "proxy_allow_ips",
        section: Section::ServerMechanics,
        short: None,
        long: &["proxy-allow-from"],
        value_name: "IPS",
        arity: Arity::One,
        env_default: None,
        doc: "Peers allowed to send a PROXY protocol header: comma-separated IP addresses and CIDR networks \
              (`10.0.0.0/8`), `*` for every peer; unix-socket peers are always allowed (the socket file's mode \
              says who connects). A header from any other peer is answered 403 and the connection closed; under \
              `--proxy-protocol=v1` or `=v2` such a peer is refused on its first bytes.",
        apply: |settings, raw| {
            let allowed = || "comma-separated IP addresses or CIDR networks (10.0.0.0/8), or *".to_owned();
            let items: Vec<String> = match raw {
                Raw::Text(text) => text.split(',').map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect(),
                Raw::List(_) => parse::list(raw, parse::text)?,
                _ => return Err(allowed()),
            };
            runicorn_http::ProxyPolicy::new(runicorn_http::ProxyMode::Off, &items).map_err(|_| allowed())?;
            settings.proxy_allow_ips = items;
            Ok(())
        },
        show: |settings| string(&settings.proxy_allow_ips.join(",")),
    },
    // --- logging
    Setting {
        key: "errorlog",
        section: Section::Logging,
        short: None,
        long: &["error-logfile", "log-file"],
        value_name: "FILE",
        arity: Arity::One,
        env_default: None,
        doc: "The error log file; `-` is stderr. Reopened on USR1.",
        apply: |settings, raw| {
            settings.errorlog = parse::text(raw)?;
            Ok(())
        },
        show: |settings| string(&settings.errorlog),
    },
    Setting {
        key: "accesslog",
        section: Section::Logging,
        short: None,
        long: &["access-logfile"],
        value_name: "FILE",
        arity: Arity::One,
        env_default: None,
        doc: "The access log file, one line per request on every worker class; `-` is stdout. Off by \
              default, as in Gunicorn. Each worker buffers its lines and writes whole lines at least \
              once a second, when 64 KiB are waiting, and when it stops; reopened on USR1.",
        apply: |settings, raw| {
            settings.accesslog = parse::optional_text(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.accesslog.as_deref()),
    },
    Setting {
        key: "access_log_format",
        section: Section::Logging,
        short: None,
        long: &["access-logformat"],
        value_name: "STRING",
        arity: Arity::One,
        env_default: None,
        doc: "The access log format, Gunicorn's atoms: `h` client, `l` `-`, `u` Basic user, `t` time, \
              `r` request line, `s` status, `m` method, `U` path, `q` query, `H` protocol, `b`/`B` \
              body bytes, `f` referer, `a` user agent, `T`/`M`/`D`/`L` request time in s/ms/µs/decimal \
              s, `p` `<pid>`, `{name}i` request field, `{name}o` response field, `{key}e` WSGI environ \
              key. Written `%(name)s`; a `\"` in a value is written `\\\"`, as Gunicorn does.",
        apply: |settings, raw| {
            settings.access_log_format = parse::access_log_format(raw)?;
            Ok(())
        },
        show: |settings| string(&settings.access_log_format),
    },
    Setting {
        key: "request_id_header",
        section: Section::Logging,
        short: None,
        long: &["request-id-header"],
        value_name: "FIELD",
        arity: Arity::One,
        env_default: None,
        doc: "Give every request an id in this field (usually `X-Request-ID`; not in Gunicorn): a \
              client's id is kept when it is 1-128 visible ASCII characters without quotes, else a \
              random 128-bit hex id replaces it. The app sees it in the request, the response carries \
              it, and the access log shows it with `%({x-request-id}i)s`. Off by default.",
        apply: |settings, raw| {
            settings.request_id_header = parse::optional_field_name(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.request_id_header.as_deref()),
    },
    Setting {
        key: "capture_output",
        section: Section::Logging,
        short: None,
        long: &["capture-output"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "Send stdout and stderr (a Python app's `print()`, a library's own writes) to the error log \
              file, as Gunicorn does; needs `--error-logfile FILE` (with `-` they already go to the \
              terminal).",
        apply: |settings, raw| {
            settings.capture_output = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.capture_output),
    },
    Setting {
        key: "loglevel",
        section: Section::Logging,
        short: None,
        long: &["log-level"],
        value_name: "LEVEL",
        arity: Arity::One,
        env_default: None,
        doc: "The error log's level: debug, info, warning, error or critical.",
        apply: |settings, raw| {
            settings.loglevel = parse::log_level(raw)?;
            Ok(())
        },
        show: |settings| string(&settings.loglevel),
    },
    Setting {
        key: "log_format",
        section: Section::Logging,
        short: None,
        long: &["log-format"],
        value_name: "FORMAT",
        arity: Arity::One,
        env_default: None,
        doc: "The error log's line format: `text` (Gunicorn's `[time] [pid] [LEVEL] message`) or `json` \
              (one JSON object per line: `time` in RFC 3339 with the local UTC offset, `level`, `pid`, \
              `role` master/worker, `message`, and the event's fields such as `worker_pid`), for log \
              shippers; syslog gets the same body.",
        apply: |settings, raw| {
            settings.log_format = runicorn_worker::log::LogFormat::parse(&parse::text(raw)?)
                .map_err(|_| "text or json".to_owned())?;
            Ok(())
        },
        show: |settings| string(settings.log_format.name()),
    },
    Setting {
        key: "syslog",
        section: Section::Logging,
        short: None,
        long: &["log-syslog"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "Send the error log (and the access log, unless `--disable-redirect-access-to-syslog`) to \
              syslog too, as Gunicorn does: `<PRI>runicorn.PREFIX.error: [pid] message`. Sends never block: \
              a line the socket cannot take is dropped.",
        apply: |settings, raw| {
            settings.syslog = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.syslog),
    },
    Setting {
        key: "syslog_addr",
        section: Section::Logging,
        short: None,
        long: &["log-syslog-to"],
        value_name: "SYSLOG_ADDR",
        arity: Arity::One,
        env_default: None,
        doc: "Where `--log-syslog` sends: `udp://HOST:PORT`, `tcp://HOST:PORT` (port 514 when left out) or \
              `unix://PATH` (`unix:///dev/log`; `#dgram` or `#stream` after the path picks the socket type, \
              else datagram then stream).",
        apply: |settings, raw| {
            let text = parse::text(raw)?;
            runicorn_worker::log::syslog::parse_address(&text).map_err(|_| {
                "udp://HOST:PORT, tcp://HOST:PORT or unix://PATH[#dgram|#stream]".to_owned()
            })?;
            settings.syslog_addr = text;
            Ok(())
        },
        show: |settings| string(&settings.syslog_addr),
    },
    Setting {
        key: "disable_redirect_access_to_syslog",
        section: Section::Logging,
        short: None,
        long: &["disable-redirect-access-to-syslog"],
        value_name: "",
        arity: Arity::Flag,
        env_default: None,
        doc: "With `--log-syslog`, keep access lines out of syslog (by default they go there as \
              `runicorn.PREFIX.access`, and the access log is on even without `--access-logfile`, as \
              Gunicorn does).",
        apply: |settings, raw| {
            settings.disable_redirect_access_to_syslog = parse::flag(raw)?;
            Ok(())
        },
        show: |settings| boolean(settings.disable_redirect_access_to_syslog),
    },
    Setting {
        key: "syslog_prefix",
        section: Section::Logging,
        short: None,
        long: &["log-syslog-prefix"],
        value_name: "SYSLOG_PREFIX",
        arity: Arity::One,
        env_default: None,
        doc: "The syslog program name is `runicorn.PREFIX.error` (and `.access`); without it, PREFIX is \
              `--name`, else the app, with `:` made `.`.",
        apply: |settings, raw| {
            settings.syslog_prefix = parse::optional_text(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.syslog_prefix.as_deref()),
    },
    Setting {
        key: "syslog_facility",
        section: Section::Logging,
        short: None,
        long: &["log-syslog-facility"],
        value_name: "SYSLOG_FACILITY",
        arity: Arity::One,
        env_default: None,
        doc: "The syslog facility: user, daemon, local0..local7, auth, authpriv, cron, ftp, kern, lpr, \
              mail, news, syslog, uucp.",
        apply: |settings, raw| {
            let text = parse::text(raw)?;
            runicorn_worker::log::syslog::parse_facility(&text)
                .map_err(|_| "a syslog facility name: user, daemon, local0..local7, ...".to_owned())?;
            settings.syslog_facility = text.to_ascii_lowercase();
            Ok(())
        },
        show: |settings| string(&settings.syslog_facility),
    },
    Setting {
        key: "metrics_bind",
        section: Section::Logging,
        short: None,
        long: &["metrics-bind"],
        value_name: "HOST:PORT",
        arity: Arity::One,
        env_default: None,
        doc: "Serve Prometheus metrics at `http://HOST:PORT/metrics` from the master (off by default): \
              requests by worker class and status class, a request duration histogram, requests in \
              flight, workers, restarts by reason, boot failures, each worker's memory and CPU, the \
              listen queue, the build. A TCP address only; keep it off the public network.",
        apply: |settings, raw| {
            settings.metrics_bind = parse::metrics_bind(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.metrics_bind.as_deref()),
    },
    Setting {
        key: "statsd_host",
        section: Section::Logging,
        short: None,
        long: &["statsd-host"],
        value_name: "STATSD_ADDR",
        arity: Arity::One,
        env_default: None,
        doc: "Send StatsD metrics, as Gunicorn names them with `runicorn.` for `gunicorn.`, to \
              `HOST:PORT` (UDP; port 8125 when left out) or `unix://PATH` (a datagram socket): \
              per request from each worker `runicorn.request.duration` (ms), `runicorn.requests` \
              and `runicorn.request.status.<code>`; `runicorn.workers` from the master; \
              `runicorn.log.critical|error|warning|exception` per such log line. Sent without \
              waiting, dropped when the server is not there.",
        apply: |settings, raw| {
            settings.statsd_host = parse::statsd_host(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.statsd_host.as_deref()),
    },
    Setting {
        key: "statsd_prefix",
        section: Section::Logging,
        short: None,
        long: &["statsd-prefix"],
        value_name: "STATSD_PREFIX",
        arity: Arity::One,
        env_default: None,
        doc: "Put before every StatsD metric's name (a trailing `.` is added if not given).",
        apply: |settings, raw| {
            settings.statsd_prefix = parse::optional_text(raw)?.unwrap_or_default();
            Ok(())
        },
        show: |settings| string(&settings.statsd_prefix),
    },
    Setting {
        key: "dogstatsd_tags",
        section: Section::Logging,
        short: None,
        long: &["dogstatsd-tags"],
        value_name: "DOGSTATSD_TAGS",
        arity: Arity::One,
        env_default: None,
        doc: "Datadog's tags, comma-separated (`tag1:value1,tag2`), appended as `|#TAGS` to every \
              StatsD metric.",
        apply: |settings, raw| {
            settings.dogstatsd_tags = parse::optional_text(raw)?.unwrap_or_default();
            Ok(())
        },
        show: |settings| string(&settings.dogstatsd_tags),
    },
    // --- process naming
    Setting {
        key: "proc_name",
        section: Section::ProcessNaming,
        short: Some('n'),
        long: &["name"],
        value_name: "STRING",
        arity: Arity::One,
        env_default: None,
        doc: "Process titles become `runicorn: master [NAME]` and `runicorn: worker [NAME]` (as `ps` shows them); \
              without it, the app's name.",
        apply: |settings, raw| {
            settings.proc_name = parse::optional_text(raw)?;
            Ok(())
        },
        show: |settings| optional(settings.proc_name.as_deref()),
    },
    // --- server hooks (config file only, `module:function` in an app library)
    hook!("on_starting", "Called in the master just before it initialises."),
    hook!("on_reload", "Called in the master on HUP, before the new workers start."),
    hook!(
        "when_ready",
        "Called in the master once every worker of the first generation has booted (loaded the app), \
         after their `booted in` lines and the `Ready:` line; Gunicorn calls it before forking."
    ),
    hook!("pre_fork", "Called in the master just before each worker is forked."),
    hook!("post_fork", "Called in each worker just after fork."),
    hook!("post_worker_init", "Called in each worker once the app is loaded."),
    hook!("worker_int", "Called in a worker that received INT or QUIT."),
    hook!("worker_abort", "Called in a worker that received ABRT (a timeout)."),
    hook!("pre_request", "Called in the worker before each request."),
    hook!("post_request", "Called in the worker after each request."),
    hook!("child_exit", "Called in the master after a worker exited."),
    hook!("worker_exit", "Called in a worker just before it exits."),
    hook!("nworkers_changed", "Called in the master when the number of workers changed."),
    hook!("on_exit", "Called in the master just before it exits."),
    hook!(
        "pre_exec",
        "Called in the master's forked child on USR2, just before it executes the new binary."
    ),
];

/// The setting with this key.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_flags_are_unique() {
        let mut keys = std::collections::HashSet::new();
        let mut flags = std::collections::HashSet::new();
        for setting in SETTINGS {
            assert!(keys.insert(setting.key), "duplicate key {}", setting.key);
            for long in setting.long {
                assert!(flags.insert(long.to_string()), "duplicate flag --{long}");
            }
            if let Some(short) = setting.short {
                assert!(flags.insert(short.to_string()), "duplicate flag -{short}");
            }
        }
    }

    #[test]
    fn every_default_reads_back_and_reapplies() {
        let defaults = Settings::default();
        let mut reapplied = Settings::default();
        for setting in SETTINGS {
            if let Some(value) = (setting.show)(&defaults) {
                (setting.apply)(&mut reapplied, &Raw::from_toml(&value)).unwrap_or_else(
                    |allowed| panic!("{}: default refused, expected {allowed}", setting.key),
                );
            }
        }
        assert_eq!(reapplied, defaults);
    }

    #[test]
    fn gunicorn_spellings() {
        assert_eq!(find("preload_app").map(|s| s.long), Some(&["preload"][..]));
        assert_eq!(find("keepalive").map(|s| s.long), Some(&["keep-alive"][..]));
        assert_eq!(
            find("pidfile").map(|s| s.flags_text()),
            Some("-p/--pid".to_owned())
        );
        assert_eq!(
            find("limit_request_field_size").map(|s| s.long),
            Some(&["limit-request-field_size"][..])
        );
        assert_eq!(
            find("errorlog").map(|s| s.flags_text()),
            Some("--error-logfile/--log-file".to_owned())
        );
    }
}
