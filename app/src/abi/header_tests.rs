//! `app/include/runicorn.h` is written by hand; this compiles it with `cc`
//! and checks every struct size and the offsets of every field that follows
//! padding against the Rust definitions, so the two cannot drift apart.

use std::mem::offset_of;
use std::process::Command;

use super::types::*;
use super::worker_class::{RcWorkerClass, RcWorkerParams, RcWorkerServices};
use crate::hooks::{RcArbiterView, RcHook, RcHookEvent, RcWorkerView};

/// (C expression, Rust value) pairs.
fn expected() -> Vec<(&'static str, usize)> {
    vec![
        ("sizeof(rc_str)", size_of::<RcStr>()),
        ("sizeof(rc_field)", size_of::<RcField>()),
        ("sizeof(rc_request)", size_of::<RcRequest>()),
        (
            "offsetof(rc_request, version)",
            offset_of!(RcRequest, version),
        ),
        (
            "offsetof(rc_request, headers)",
            offset_of!(RcRequest, headers),
        ),
        ("offsetof(rc_request, peer)", offset_of!(RcRequest, peer)),
        ("sizeof(rc_worker_info)", size_of::<RcWorkerInfo>()),
        (
            "offsetof(rc_worker_info, age)",
            offset_of!(RcWorkerInfo, age),
        ),
        (
            "offsetof(rc_worker_info, worker_class)",
            offset_of!(RcWorkerInfo, worker_class),
        ),
        ("sizeof(rc_connection_info)", size_of::<RcConnectionInfo>()),
        (
            "offsetof(rc_connection_info, url_scheme)",
            offset_of!(RcConnectionInfo, url_scheme),
        ),
        (
            "offsetof(rc_connection_info, client_addr)",
            offset_of!(RcConnectionInfo, client_addr),
        ),
        (
            "offsetof(rc_connection_info, server_addr)",
            offset_of!(RcConnectionInfo, server_addr),
        ),
        (
            "offsetof(rc_connection_info, forwarded_host)",
            offset_of!(RcConnectionInfo, forwarded_host),
        ),
        (
            "offsetof(rc_connection_info, proxy_protocol)",
            offset_of!(RcConnectionInfo, proxy_protocol),
        ),
        (
            "offsetof(rc_connection_info, proxy_addr)",
            offset_of!(RcConnectionInfo, proxy_addr),
        ),
        ("sizeof(rc_error_buf)", size_of::<RcErrorBuf>()),
        ("sizeof(rc_host_table)", size_of::<RcHostTable>()),
        (
            "offsetof(rc_host_table, sleep)",
            offset_of!(RcHostTable, sleep),
        ),
        (
            "offsetof(rc_host_table, worker_info)",
            offset_of!(RcHostTable, worker_info),
        ),
        (
            "offsetof(rc_host_table, connection_info)",
            offset_of!(RcHostTable, connection_info),
        ),
        (
            "RC_HOST_HAS(&(rc_host_table){.struct_size = offsetof(rc_host_table, connection_info)}, connection_info)",
            usize::from(RcHostTable::has_connection_info(offset_of!(
                RcHostTable,
                connection_info
            ))),
        ),
        (
            "RC_HOST_HAS(&(rc_host_table){.struct_size = sizeof(rc_host_table)}, connection_info)",
            usize::from(RcHostTable::has_connection_info(size_of::<RcHostTable>())),
        ),
        ("sizeof(rc_object_header)", size_of::<RcObjectHeader>()),
        (
            "offsetof(rc_object_header, kind)",
            offset_of!(RcObjectHeader, kind),
        ),
        (
            "offsetof(rc_object_header, struct_size)",
            offset_of!(RcObjectHeader, struct_size),
        ),
        ("sizeof(rc_app)", size_of::<RcApp>()),
        (
            "offsetof(rc_app, capabilities)",
            offset_of!(RcApp, capabilities),
        ),
        ("offsetof(rc_app, data)", offset_of!(RcApp, data)),
        ("offsetof(rc_app, handle)", offset_of!(RcApp, handle)),
        ("offsetof(rc_app, poll)", offset_of!(RcApp, poll)),
        (
            "offsetof(rc_app, shutdown_worker)",
            offset_of!(RcApp, shutdown_worker),
        ),
        ("sizeof(rc_factory)", size_of::<RcFactory>()),
        ("sizeof(rc_arbiter_view)", size_of::<RcArbiterView>()),
        (
            "offsetof(rc_arbiter_view, app)",
            offset_of!(RcArbiterView, app),
        ),
        ("sizeof(rc_worker_view)", size_of::<RcWorkerView>()),
        (
            "offsetof(rc_worker_view, age)",
            offset_of!(RcWorkerView, age),
        ),
        ("sizeof(rc_hook_event)", size_of::<RcHookEvent>()),
        (
            "offsetof(rc_hook_event, name)",
            offset_of!(RcHookEvent, name),
        ),
        (
            "offsetof(rc_hook_event, request)",
            offset_of!(RcHookEvent, request),
        ),
        (
            "offsetof(rc_hook_event, old_value)",
            offset_of!(RcHookEvent, old_value),
        ),
        ("sizeof(rc_hook)", size_of::<RcHook>()),
        ("sizeof(rc_worker_params)", size_of::<RcWorkerParams>()),
        (
            "offsetof(rc_worker_params, pid)",
            offset_of!(RcWorkerParams, pid),
        ),
        (
            "offsetof(rc_worker_params, age)",
            offset_of!(RcWorkerParams, age),
        ),
        (
            "offsetof(rc_worker_params, max_requests)",
            offset_of!(RcWorkerParams, max_requests),
        ),
        (
            "offsetof(rc_worker_params, app_name)",
            offset_of!(RcWorkerParams, app_name),
        ),
        ("sizeof(rc_worker_services)", size_of::<RcWorkerServices>()),
        ("sizeof(rc_worker_class)", size_of::<RcWorkerClass>()),
        (
            "offsetof(rc_worker_class, run)",
            offset_of!(RcWorkerClass, run),
        ),
    ]
}

#[test]
fn the_c_header_matches_the_rust_definitions() {
    let dir = tempfile_dir();
    let mut program = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"runicorn.h\"\nint main(void) {\n",
    );
    program.push_str("    printf(\"%llu %u\\n\", (unsigned long long)RC_MAGIC, RC_ABI_VERSION);\n");
    for (expression, _) in expected() {
        program.push_str(&format!(
            "    printf(\"%zu\\n\", (size_t)({expression}));\n"
        ));
    }
    program.push_str("    return 0;\n}\n");
    let source = dir.join("layout.c");
    let binary = dir.join("layout");
    std::fs::write(&source, program).unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let status = Command::new("cc")
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", include, "-o",
        ])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("cc is needed to check runicorn.h");
    assert!(status.success(), "runicorn.h does not compile");
    let output = Command::new(&binary).output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{RC_MAGIC} {RC_ABI_VERSION}")
    );
    for ((expression, rust), c) in expected().into_iter().zip(lines) {
        assert_eq!(
            c.parse::<usize>().unwrap(),
            rust,
            "{expression}: C says {c}, Rust says {rust}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("runicorn-abi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
