/*
 * A runicorn app in C: `cc -shared -fPIC -I ../../app/include -o libcapp.so app.c`
 * then `runicorn capp:app`. GET answers a greeting; POST echoes the body,
 * read through the host; /sleep sleeps 50 ms through the host; /origin says
 * where the request came from and arrived (the host's connection_info).
 */
#include <stdio.h>
#include <string.h>

#include "runicorn.h"

static int32_t init_worker(const void *data, const rc_worker_info *info, rc_error_buf *err) {
    (void)data;
    (void)info;
    (void)err;
    return RC_OK;
}

static int32_t handle(const void *data, const rc_request *req, const rc_host_table *host, rc_call_ctx *ctx,
                      rc_error_buf *err) {
    (void)data;
    uint8_t body[65536];
    size_t len = 0;
    if (req->method.len == 4 && memcmp(req->method.ptr, "POST", 4) == 0) {
        for (;;) {
            size_t read = 0;
            if (len == sizeof body) {
                rc_set_error(err, "body too large for the c example");
                return RC_ERROR;
            }
            if (host->read_body(ctx, body + len, sizeof body - len, &read) != 0) {
                rc_set_error(err, "read_body failed");
                return RC_ERROR;
            }
            if (read == 0) break;
            len += read;
        }
    } else if (req->target.len >= 7 && memcmp(req->target.ptr, "/origin", 7) == 0) {
        rc_connection_info origin = {.struct_size = sizeof origin};
        if (!RC_HOST_HAS(host, connection_info) || host->connection_info(ctx, &origin) != 0) {
            rc_set_error(err, "the host has no connection_info");
            return RC_ERROR;
        }
        len = (size_t)snprintf((char *)body, sizeof body, "scheme=%.*s client=%.*s server=%.*s peer=%.*s\n",
                               (int)origin.url_scheme.len, (const char *)origin.url_scheme.ptr,
                               (int)origin.client_addr.len, (const char *)origin.client_addr.ptr,
                               (int)origin.server_addr.len, (const char *)origin.server_addr.ptr,
                               (int)req->peer.len, (const char *)req->peer.ptr);
    } else {
        if (req->target.len >= 6 && memcmp(req->target.ptr, "/sleep", 6) == 0) host->sleep(ctx, 50);
        rc_worker_info info;
        host->worker_info(ctx, &info);
        len = (size_t)snprintf((char *)body, sizeof body, "Hello from C, worker %u (%.*s)\n", info.pid,
                               (int)info.worker_class.len, (const char *)info.worker_class.ptr);
    }
    char length[32];
    int length_len = snprintf(length, sizeof length, "%zu", len);
    rc_field headers[] = {
        RC_FIELD("Content-Type", "text/plain"),
        {RC_STR("Content-Length"), {(const uint8_t *)length, (size_t)length_len}},
    };
    if (host->start_response(ctx, 200, headers, 2) != 0) {
        rc_set_error(err, "start_response failed");
        return RC_ERROR;
    }
    if (host->write(ctx, body, len) != 0) {
        rc_set_error(err, "write failed");
        return RC_ERROR;
    }
    return RC_OK;
}

RC_EXPORT_APP(app, RC_CAP_THREAD_SAFE, init_worker, handle, NULL);

/* Not an app: a plain global, for the "not a runicorn app" error. */
RC_EXPORT const char not_an_app[64] = "just some bytes";
