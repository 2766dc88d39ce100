#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bn_test_failures = 0;
int bn_test_checks = 0;

int bn_test_finish(const char *suite) {
    fprintf(stderr, "%s: %d checks, %d failed\n", suite, bn_test_checks, bn_test_failures);
    return bn_test_failures ? 1 : 0;
}

const char *bn_test_src(const char *rel) {
    static char ring[8][4096];
    static int idx = 0;
    char *buf = ring[idx++ % 8];
    const char *root = getenv("BN_SOURCE_DIR");
    snprintf(buf, 4096, "%s/%s", root ? root : ".", rel);
    return buf;
}

const char *bn_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/bn_test_XXXXXX");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}

void *bn_test_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    rewind(f);
    void *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) { free(buf); buf = NULL; }
    fclose(f);
    if (n) *n = (size_t)sz;
    return buf;
}
