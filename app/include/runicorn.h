/*
 * runicorn.h — the runicorn app ABI, version 1, for C (and anything that
 * speaks the C ABI).
 *
 * Written by hand from app/src/abi/types.rs, app/src/abi/worker_class.rs and
 * app/src/hooks.rs; the test `abi::header_tests` compiles this header with
 * `cc` and checks every size and offset against the Rust definitions.
 *
 * The rules: only these structs, borrowed byte slices and function pointers
 * cross the boundary; the side that allocates frees (the host owns every
 * rc_str it passes and every error buffer; the app owns its tables and
 * anything it returns); never let an exception or a longjmp cross an entry;
 * a library is never unloaded. The host does all I/O: call the host table
 * to read the body, respond, sleep or talk to an upstream, so the worker
 * class decides what blocking means.
 *
 * Minimal app:
 *
 *     #include "runicorn.h"
 *     static int32_t handle(const void *data, const rc_request *req,
 *                           const rc_host_table *host, rc_call_ctx *ctx,
 *                           rc_error_buf *err) {
 *         rc_field headers[] = { RC_FIELD("Content-Type", "text/plain") };
 *         if (host->start_response(ctx, 200, headers, 1)) return RC_ERROR;
 *         return host->write(ctx, (const uint8_t *)"hi\n", 3) ? RC_ERROR : RC_OK;
 *     }
 *     RC_EXPORT_APP(app, RC_CAP_THREAD_SAFE, NULL, handle, NULL);
 *
 * Build: cc -shared -fPIC -o libmyapp.so myapp.c; serve: runicorn myapp:app
 */
#ifndef RUNICORN_H
#define RUNICORN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RC_MAGIC 0x52554E49434F524EULL /* "RUNICORN" */
#define RC_ABI_VERSION 1u

#define RC_KIND_APP 1u
#define RC_KIND_FACTORY 2u
#define RC_KIND_HOOK 3u
#define RC_KIND_WORKER_CLASS 4u

#define RC_CAP_THREAD_SAFE 1ull
#define RC_CAP_ASYNC 2ull /* reserved in ABI v1 */
#define RC_CAP_BLOCKS_THREAD 4ull /* waits block the OS thread: coroutine classes use a thread pool */

#define RC_OK 0
#define RC_ERROR 1
#define RC_PANIC 2 /* the worker is recycled after this request */

#define RC_LOG_DEBUG 0u
#define RC_LOG_INFO 1u
#define RC_LOG_WARNING 2u
#define RC_LOG_ERROR 3u

#define RC_STOP_NONE 0u
#define RC_STOP_GRACEFUL 1u
#define RC_STOP_QUICK 2u

#define RC_EXPORT __attribute__((visibility("default")))

/* A borrowed byte slice, not NUL-terminated, valid during the call only. */
typedef struct rc_str {
    const uint8_t *ptr;
    size_t len;
} rc_str;

typedef struct rc_field {
    rc_str name;
    rc_str value;
} rc_field;

typedef struct rc_request {
    rc_str method;
    rc_str target;
    uint32_t version; /* 10 or 11 */
    const rc_field *headers;
    size_t headers_len;
    rc_str peer;
} rc_request;

typedef struct rc_worker_info {
    uint32_t pid;
    uint64_t age;
    rc_str worker_class;
} rc_worker_info;

/*
 * Where a request came from and arrived. Set struct_size to
 * sizeof(rc_connection_info) before the call; the host fills the fields
 * that fit. Valid for the whole request.
 */
typedef struct rc_connection_info {
    size_t struct_size;
    rc_str url_scheme;  /* "http" or "https" (https from a trusted proxy's scheme header or Forwarded proto=) */
    rc_str client_addr; /* a bare IP from a trusted Forwarded for= or X-Forwarded-For, else the same as rc_request.peer */
    rc_str server_addr; /* the listening socket: "127.0.0.1:8000", a unix socket path, or empty */
    /* Appended: a trusted Forwarded host= ("example.com:8443"), or empty. */
    rc_str forwarded_host;
    /* Appended: what the connection's PROXY protocol header said it is
     * ("TCP4", "TCP6", "UNKNOWN", "LOCAL", "UNSPEC", "UNIX"), or empty
     * without one; and the proxy's own address it named ("192.0.2.1:443",
     * "[2001:db8::1]:443"), or empty. */
    rc_str proxy_protocol;
    rc_str proxy_addr;
} rc_connection_info;

/* Owned by the caller: write at most cap bytes, then set len. */
typedef struct rc_error_buf {
    uint8_t *ptr;
    size_t cap;
    size_t len;
} rc_error_buf;

typedef struct rc_call_ctx rc_call_ctx;
typedef struct rc_upstream rc_upstream;

/* Host services. I/O entries return 0 or an errno value. */
typedef struct rc_host_table {
    size_t struct_size;
    int32_t (*read_body)(rc_call_ctx *, uint8_t *buf, size_t len, size_t *out_len);
    int32_t (*trailers)(rc_call_ctx *, const rc_field **out, size_t *out_len);
    int32_t (*start_response)(rc_call_ctx *, uint16_t status, const rc_field *headers, size_t count);
    int32_t (*write)(rc_call_ctx *, const uint8_t *data, size_t len);
    int32_t (*flush)(rc_call_ctx *);
    int32_t (*sendfile)(rc_call_ctx *, int32_t fd, uint64_t offset, uint64_t count);
    void (*sleep)(rc_call_ctx *, uint64_t millis);
    int32_t (*tcp_connect)(rc_call_ctx *, rc_str addr, rc_upstream **out);
    int32_t (*tcp_read)(rc_upstream *, uint8_t *buf, size_t len, size_t *out_len);
    int32_t (*tcp_write)(rc_upstream *, const uint8_t *data, size_t len);
    void (*tcp_close)(rc_upstream *);
    void (*log)(rc_call_ctx *, uint32_t level, rc_str message);
    void (*worker_info)(rc_call_ctx *, rc_worker_info *out);
    /* Appended: call only when RC_HOST_HAS(host, connection_info). */
    int32_t (*connection_info)(rc_call_ctx *, rc_connection_info *out);
} rc_host_table;

/* Whether the host's table has the entry `member` (tables grow at their end). */
#define RC_HOST_HAS(host, member) \
    ((host)->struct_size >= offsetof(rc_host_table, member) + sizeof((host)->member))

typedef struct rc_object_header {
    uint64_t magic;
    uint32_t abi_version;
    uint32_t kind;
    uint64_t struct_size;
} rc_object_header;

typedef struct rc_app {
    rc_object_header header;
    uint64_t capabilities;
    const void *data;
    /* may be NULL */
    int32_t (*init_worker)(const void *data, const rc_worker_info *info, rc_error_buf *err);
    /* required */
    int32_t (*handle)(const void *data, const rc_request *req, const rc_host_table *host, rc_call_ctx *ctx,
                      rc_error_buf *err);
    int32_t (*poll)(const void *data); /* reserved: NULL in ABI v1 */
    void (*shutdown_worker)(const void *data); /* may be NULL */
} rc_app;

typedef struct rc_factory {
    rc_object_header header;
    int32_t (*create)(const rc_field *args, size_t args_len, const rc_app **out, rc_error_buf *err);
} rc_factory;

/* Server hooks. */
typedef struct rc_arbiter_view {
    uint32_t pid;
    uint32_t num_workers;
    rc_str worker_class;
    rc_str app;
} rc_arbiter_view;

typedef struct rc_worker_view {
    uint32_t pid;
    int32_t exit_status; /* -1 when none */
    uint64_t age;
} rc_worker_view;

typedef struct rc_hook_event {
    size_t struct_size;
    uint32_t hook; /* 1 on_starting .. 14 on_exit, 15 pre_exec, see app/src/hooks/mod.rs */
    uint32_t status;
    rc_str name;
    const rc_arbiter_view *arbiter;
    const rc_worker_view *worker;
    const rc_request *request;
    uint64_t new_value;
    int64_t old_value;
} rc_hook_event;

typedef struct rc_hook {
    rc_object_header header;
    int32_t (*call)(const rc_hook_event *event, rc_error_buf *err);
} rc_hook;

/* Worker classes. */
typedef struct rc_worker_ctx rc_worker_ctx;

typedef struct rc_worker_params {
    size_t struct_size;
    const int32_t *listener_fds;
    size_t listeners_len;
    uint32_t pid;
    uint32_t threads;
    uint64_t age;
    uint64_t worker_connections;
    uint64_t timeout_ms;
    uint64_t graceful_timeout_ms;
    uint64_t keepalive_ms;
    uint64_t max_requests;
    rc_str app_name;
} rc_worker_params;

typedef struct rc_worker_services {
    size_t struct_size;
    void (*notify)(rc_worker_ctx *);
    uint32_t (*should_stop)(rc_worker_ctx *);
    int32_t (*handle)(rc_worker_ctx *, const rc_request *req, const rc_host_table *host, rc_call_ctx *ctx,
                      rc_error_buf *err);
    void (*log)(rc_worker_ctx *, uint32_t level, rc_str message);
} rc_worker_services;

typedef struct rc_worker_class {
    rc_object_header header;
    rc_str name;
    int32_t (*run)(const rc_worker_params *params, const rc_worker_services *services, rc_worker_ctx *ctx);
} rc_worker_class;

/* Helpers. */
#define RC_STR(literal) ((rc_str){(const uint8_t *)(literal), sizeof(literal) - 1})
#define RC_FIELD(name, value) ((rc_field){RC_STR(name), RC_STR(value)})
#define RC_HEADER(type, kind) {RC_MAGIC, RC_ABI_VERSION, (kind), sizeof(type)}

/* Export an app under `symbol`: runicorn mylib:symbol. init and shutdown may be NULL. */
#define RC_EXPORT_APP(symbol, caps, init, handle_fn, shutdown) \
    RC_EXPORT const rc_app symbol = {RC_HEADER(rc_app, RC_KIND_APP), (caps), NULL, (init), (handle_fn), NULL, (shutdown)}

#define RC_EXPORT_FACTORY(symbol, create_fn) \
    RC_EXPORT const rc_factory symbol = {RC_HEADER(rc_factory, RC_KIND_FACTORY), (create_fn)}

#define RC_EXPORT_HOOK(symbol, call_fn) RC_EXPORT const rc_hook symbol = {RC_HEADER(rc_hook, RC_KIND_HOOK), (call_fn)}

/* Copy a NUL-terminated message into the host's error buffer. */
static inline void rc_set_error(rc_error_buf *err, const char *message) {
    size_t len = 0;
    if (err == NULL || err->ptr == NULL) return;
    while (message[len] != '\0' && len < err->cap) {
        err->ptr[len] = (uint8_t)message[len];
        len++;
    }
    err->len = len;
}

/* The first header field named `name` (ASCII case-insensitive), or an empty slice. */
static inline rc_str rc_header(const rc_request *req, const char *name) {
    for (size_t i = 0; i < req->headers_len; i++) {
        const rc_str field = req->headers[i].name;
        size_t j = 0;
        for (; j < field.len && name[j] != '\0'; j++) {
            uint8_t a = field.ptr[j], b = (uint8_t)name[j];
            if (a >= 'A' && a <= 'Z') a += 32;
            if (b >= 'A' && b <= 'Z') b += 32;
            if (a != b) break;
        }
        if (j == field.len && name[j] == '\0') return req->headers[i].value;
    }
    return (rc_str){NULL, 0};
}

#ifdef __cplusplus
}
#endif

#endif /* RUNICORN_H */
