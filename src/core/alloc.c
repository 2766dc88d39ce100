/* alloc.c — allocation that refuses absurd sizes and reports failures. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void *bn_malloc(size_t n) {
    if (n > BN_MAX_ALLOC) {
        bn_fail(BN_ERR_NOMEM, "refusing to allocate %zu bytes (limit %zu)", n, (size_t)BN_MAX_ALLOC);
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (!p) bn_fail(BN_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *bn_calloc(size_t n, size_t sz) {
    uint64_t total;
    if (!bn_mul_ok(n, sz, &total) || total > BN_MAX_ALLOC) {
        bn_fail(BN_ERR_NOMEM, "refusing to allocate %zu x %zu bytes", n, sz);
        return NULL;
    }
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) bn_fail(BN_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, sz);
    return p;
}

void *bn_aligned_alloc(size_t align, size_t n) {
    if (n > BN_MAX_ALLOC) {
        bn_fail(BN_ERR_NOMEM, "refusing to allocate %zu bytes (limit %zu)", n, (size_t)BN_MAX_ALLOC);
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, n ? n : 1) != 0) {
        bn_fail(BN_ERR_NOMEM, "out of memory allocating %zu aligned bytes", n);
        return NULL;
    }
    return p;
}

void bn_aligned_free(void *p) { free(p); }

char *bn_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = bn_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int bn_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

double bn_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
