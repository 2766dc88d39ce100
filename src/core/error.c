/* error.c — per-thread last-error message (the only thread-local state:
 * a message must survive until the caller reads it, per calling thread). */
#include "core.h"

#include <stdio.h>
#include <string.h>

#define BN_ERRMSG_MAX 1024

static _Thread_local char tl_msg[BN_ERRMSG_MAX];

bn_status bn_fail(bn_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    return st;
}

void bn_error_prefix(const char *fmt, ...) {
    char prefix[512];
    char old[BN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tl_msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof tl_msg - 3) n = sizeof tl_msg - 3;
    memcpy(tl_msg, prefix, n);
    memcpy(tl_msg + n, ": ", 2);
    size_t rest = sizeof tl_msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(tl_msg + n + 2, old, m);
    tl_msg[n + 2 + m] = '\0';
}

void bn_error_clear(void) { tl_msg[0] = '\0'; }

const char *bn_last_error(void) { return tl_msg; }

const char *bn_status_name(bn_status st) {
    switch (st) {
    case BN_OK: return "BN_OK";
    case BN_ERR_INVALID_ARG: return "BN_ERR_INVALID_ARG";
    case BN_ERR_IO: return "BN_ERR_IO";
    case BN_ERR_FORMAT: return "BN_ERR_FORMAT";
    case BN_ERR_UNSUPPORTED: return "BN_ERR_UNSUPPORTED";
    case BN_ERR_NOMEM: return "BN_ERR_NOMEM";
    case BN_ERR_NOT_FOUND: return "BN_ERR_NOT_FOUND";
    case BN_ERR_SHAPE: return "BN_ERR_SHAPE";
    case BN_ERR_CONTEXT_FULL: return "BN_ERR_CONTEXT_FULL";
    case BN_ERR_CANCELLED: return "BN_ERR_CANCELLED";
    case BN_ERR_INTERNAL: return "BN_ERR_INTERNAL";
    }
    return "BN_ERR_UNKNOWN";
}

#define BN_STR2(x) #x
#define BN_STR(x) BN_STR2(x)
const char *bn_version_string(void) {
    return BN_STR(BN_VERSION_MAJOR) "." BN_STR(BN_VERSION_MINOR) "." BN_STR(BN_VERSION_PATCH);
}
