/* log.c — logging through a caller-supplied bn_logger. */
#include "core.h"

#include <stdio.h>

void bn_log(const bn_logger *lg, bn_log_level lvl, const char *fmt, ...) {
    bn_log_level min = lg ? lg->min_level : BN_LOG_WARN;
    if (lvl < min || lvl >= BN_LOG_NONE) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lg && lg->fn) {
        lg->fn(lvl, msg, lg->user);
        return;
    }
    static const char *const names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "bitnet %s: %s\n", names[lvl], msg);
}
