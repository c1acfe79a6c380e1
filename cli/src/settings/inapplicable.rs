//! Gunicorn settings runicorn does not take, each with what to do instead.
//!
//! Using one (as a flag or a config key) is an error that names the
//! alternative, so a migrated config never silently loses a setting.

use super::setting::Inapplicable;

const SSL_CONTEXT: &str =
    "ssl_context is a hook over Python's ssl module; runicorn's TLS is rustls, \
    configured by --certfile, --keyfile, --ca-certs, --cert-reqs, --ciphers and --ssl-version";
const STRICT_PARSER: &str =
    "runicorn's HTTP parser follows RFC 9112 strictly and has no leniency switches: fix the client or the proxy";
const LOGGING: &str = "runicorn's logging is configured with --log-level and --error-logfile";
const NOT_YET: &str = "not supported yet";

/// Every Gunicorn setting runicorn refuses, in Gunicorn's order.
pub static INAPPLICABLE: &[Inapplicable] = &[
    Inapplicable {
        key: "paste",
        long: &["paste", "paster"],
        takes_value: true,
        instead: "name the app as MODULE:VARIABLE (runicorn myapp:app)",
    },
    Inapplicable {
        key: "raw_paste_global_conf",
        long: &["paste-global"],
        takes_value: true,
        instead: "use -e/--env KEY=VALUE to pass values to the app",
    },
    Inapplicable {
        key: "spew",
        long: &["spew"],
        takes_value: false,
        instead: "use --log-level debug, or a debugger (gdb, perf) on the worker",
    },
    Inapplicable {
        key: "check_config",
        long: &[],
        takes_value: false,
        instead: "use the --check-config flag",
    },
    Inapplicable {
        key: "print_config",
        long: &[],
        takes_value: false,
        instead: "use the --print-config flag",
    },
    Inapplicable {
        key: "sendfile",
        long: &["no-sendfile"],
        takes_value: false,
        instead: NOT_YET,
    },
    Inapplicable {
        key: "worker_tmp_dir",
        long: &["worker-tmp-dir"],
        takes_value: true,
        instead: "runicorn's worker heartbeat lives in shared memory (the scoreboard), not in a temporary \
                  file, so there is nothing to place (the usual --worker-tmp-dir /dev/shm advice is how it \
                  already works): remove the setting",
    },
    Inapplicable {
        key: "tmp_upload_dir",
        long: &[],
        takes_value: false,
        instead: "request bodies are streamed to the app, never spooled to disk",
    },
    Inapplicable {
        key: "header_map",
        long: &["header-map"],
        takes_value: true,
        instead: "a Python app's environ drops every header field with `_` in its name (Gunicorn's `drop`) \
                  unless a trusted front end sends one --forwarder-headers lists; native apps get the fields \
                  as received, never mapped",
    },
    Inapplicable {
        key: "logger_class",
        long: &["logger-class"],
        takes_value: true,
        instead: LOGGING,
    },
    Inapplicable {
        key: "logconfig",
        long: &["log-config"],
        takes_value: true,
        instead: LOGGING,
    },
    Inapplicable {
        key: "logconfig_dict",
        long: &[],
        takes_value: false,
        instead: LOGGING,
    },
    Inapplicable {
        key: "logconfig_json",
        long: &["log-config-json"],
        takes_value: true,
        instead: LOGGING,
    },
    Inapplicable {
        key: "enable_stdio_inheritance",
        long: &["enable-stdio-inheritance"],
        takes_value: false,
        instead: "workers always inherit the master's stdio",
    },
    Inapplicable {
        key: "control_socket_mode",
        long: &["control-socket-mode"],
        takes_value: true,
        instead: "the control socket is its owner's alone (mode 0600, and each client's uid checked \
                  with SO_PEERCRED): run runicorn ctl as the master's user or as root",
    },
    Inapplicable {
        key: "control_socket_disable",
        long: &["no-control-socket"],
        takes_value: false,
        instead: "runicorn has no control socket unless --control-socket PATH asks for one",
    },
    Inapplicable {
        key: "default_proc_name",
        long: &[],
        takes_value: false,
        instead: "use -n/--name",
    },
    Inapplicable {
        key: "suppress_ragged_eofs",
        long: &["suppress-ragged-eofs"],
        takes_value: false,
        instead: "runicorn always ends a TLS stream at an EOF without close_notify as at a clean one \
                  (Python's default, True), and a request body cut short is an error either way, so the \
                  setting would change nothing: remove it",
    },
    Inapplicable {
        key: "do_handshake_on_connect",
        long: &["do-handshake-on-connect"],
        takes_value: false,
        instead: "runicorn always completes the TLS handshake before reading the request head, within the \
                  head's deadline, so the setting would change nothing: remove it",
    },
    Inapplicable {
        key: "ssl_context",
        long: &[],
        takes_value: false,
        instead: SSL_CONTEXT,
    },
    Inapplicable {
        key: "strip_header_spaces",
        long: &["strip-header-spaces"],
        takes_value: false,
        instead: STRICT_PARSER,
    },
    Inapplicable {
        key: "permit_unconventional_http_method",
        long: &["permit-unconventional-http-method"],
        takes_value: false,
        instead: STRICT_PARSER,
    },
    Inapplicable {
        key: "permit_unconventional_http_version",
        long: &["permit-unconventional-http-version"],
        takes_value: false,
        instead: STRICT_PARSER,
    },
    Inapplicable {
        key: "casefold_http_method",
        long: &["casefold-http-method"],
        takes_value: false,
        instead: STRICT_PARSER,
    },
    Inapplicable {
        key: "permit_obsolete_folding",
        long: &["permit-obsolete-folding"],
        takes_value: false,
        instead: STRICT_PARSER,
    },
    Inapplicable {
        key: "tolerate_dangerous_framing",
        long: &["tolerate-dangerous-framing"],
        takes_value: false,
        instead: STRICT_PARSER,
    },
    Inapplicable {
        key: "reload_engine",
        long: &["reload-engine"],
        takes_value: true,
        instead: "--reload picks its file watcher itself",
    },
];

/// The inapplicable setting with this key.
pub fn find(key: &str) -> Option<&'static Inapplicable> {
    INAPPLICABLE.iter().find(|entry| entry.key == key)
}
