/*
 * An app table claiming ABI version 99, for the loader's mismatch error:
 * `cc -shared -fPIC -I ../../app/include -o libfuture.so abi_v99.c`.
 */
#include "runicorn.h"

static int32_t handle(const void *data, const rc_request *req, const rc_host_table *host, rc_call_ctx *ctx,
                      rc_error_buf *err) {
    (void)data;
    (void)req;
    (void)host;
    (void)ctx;
    (void)err;
    return RC_ERROR;
}

RC_EXPORT const rc_app app = {{RC_MAGIC, 99u, RC_KIND_APP, sizeof(rc_app)}, RC_CAP_THREAD_SAFE, NULL, NULL,
                              handle, NULL, NULL};
