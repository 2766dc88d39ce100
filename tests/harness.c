#include "harness.h"

#include "bitnet.h"

#include <math.h>
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

int bn_test_compare_logits_tol(const char *what, const float *got, const float *ref, int n_rows, int n_vocab,
                               double tol_mean, double tol_rel) {
    int bad = 0;
    double worst_mean = 0, worst_rel = 0;
    for (int r = 0; r < n_rows; r++) {
        const float *g = got + (size_t)r * n_vocab, *f = ref + (size_t)r * n_vocab;
        double sum = 0, mx = 0, amax = 0;
        int ag = 0, af = 0, a2 = -1;
        for (int v = 0; v < n_vocab; v++) {
            double d = fabs((double)g[v] - f[v]);
            sum += d;
            if (d > mx) mx = d;
            if (fabs(f[v]) > amax) amax = fabs(f[v]);
            if (g[v] > g[ag]) ag = v;
            if (f[v] > f[af]) af = v;
        }
        for (int v = 0; v < n_vocab; v++)
            if (v != af && (a2 < 0 || f[v] > f[a2])) a2 = v;
        const double mean = sum / n_vocab, rel = amax > 0 ? mx / amax : mx, margin = a2 >= 0 ? f[af] - f[a2] : 0;
        if (mean > worst_mean) worst_mean = mean;
        if (rel > worst_rel) worst_rel = rel;
        if (mean >= tol_mean || rel >= tol_rel || (margin > 0.5 && ag != af)) {
            bad++;
            fprintf(stderr, "  %s row %d: mean|d| %.4f, max|d|/max|ref| %.4f, argmax %d vs %d (margin %.3f)\n", what, r,
                    mean, rel, ag, af, margin);
        }
    }
    fprintf(stderr, "  %s: %d rows, worst mean|d| %.3g, worst max|d|/max|ref| %.3g\n", what, n_rows, worst_mean,
            worst_rel);
    return bad;
}

int bn_test_compare_logits(const char *what, const float *got, const float *ref, int n_rows, int n_vocab) {
    return bn_test_compare_logits_tol(what, got, ref, n_rows, n_vocab, 0.1, 0.03);
}

float *bn_test_batch_logits(const bn_model *m, const int32_t *ids, int n, const char *kernels) {
    bn_model_info info;
    bn_model_get_info(m, &info);
    const size_t V = (size_t)info.n_vocab;
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n;
    cp.all_logits = true;
    cp.n_threads = 2;
    cp.kernels = kernels;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    if (!c) return NULL;
    bn_batch b = {.n_tokens = n, .tokens = ids};
    float *out = NULL;
    if (bn_decode(c, &b) == BN_OK) {
        out = malloc(sizeof(float) * V * (size_t)n);
        if (out)
            for (int i = 0; i < n; i++) memcpy(out + (size_t)i * V, bn_get_logits(c, i), sizeof(float) * V);
    } else {
        CHECK_MSG(0, "decode failed: %s", bn_last_error());
    }
    bn_context_free(c);
    return out;
}
