/* test_attention.c — the blocked online-softmax attention kernels (scalar
 * bn_ref_attn and every SIMD version this CPU runs) against the two-pass
 * oracle bn_ref_attend_head on random data: awkward head dims and lengths,
 * causal limits per row, one call, consecutive calls carrying the state, and
 * ranges merged with bn_attn_merge; cache rows past the limits hold NaN and
 * must not be read. Then the forward pass: long-context decode (positions cut
 * into ranges over threads) against one batched prefill and the scalar
 * kernels, at 1 and 2 threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "model/model.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static int irand(int n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((rng_state >> 33) % (uint64_t)n);
}

typedef struct {
    const char *name;
    bn_attn_fn fn;
} kern;

static int kernels_here(kern *out) {
    int n = 0;
    out[n++] = (kern){"ref", bn_ref_attn};
    const char *names[] = {"avx2", "avx512"};
    for (int i = 0; i < 2; i++) {
        const bn_kernels *k = bn_kernels_by_name(names[i]);
        if (k && bn_attn_select(k) != bn_ref_attn) out[n++] = (kern){names[i], bn_attn_select(k)};
    }
    return n;
}

/* One case: nq rows, head dim hd, n cached positions (row stride ld > hd),
 * q scaled by qmul (large: peaked softmax). mode 0: one call; 1: consecutive
 * calls over 3 ranges with one state; 2: 3 ranges in separate states merged.
 * Returns the largest |out - oracle|. */
static double run_case(bn_attn_fn fn, int nq, int hd, int n, float qmul, int mode, int *bad_finite) {
    const size_t ld = (size_t)hd + 3;
    float *Q = malloc(sizeof(float) * (size_t)nq * hd);
    float *K = malloc(sizeof(float) * (size_t)(n + 70) * ld);
    float *Vv = malloc(sizeof(float) * (size_t)(n + 70) * ld);
    int32_t *lim = malloc(sizeof(int32_t) * (size_t)nq);
    float *st = malloc(sizeof(float) * (size_t)nq * (hd + 2) * 3);
    float *scratch = malloc(sizeof(float) * (size_t)nq * BN_ATTN_TILE);
    float *p = malloc(sizeof(float) * (size_t)n), *out = malloc(sizeof(float) * hd), *ref = malloc(sizeof(float) * hd);
    for (int i = 0; i < nq * hd; i++) Q[i] = frand() * qmul;
    for (size_t i = 0; i < (size_t)(n + 70) * ld; i++) {
        K[i] = frand();
        Vv[i] = frand();
    }
    /* limits: the last row sees all n positions, others a random prefix */
    for (int r = 0; r < nq; r++) lim[r] = r == nq - 1 ? n : 1 + irand(n);
    /* positions past n, and the padding between rows, must never be read */
    for (size_t i = (size_t)n * ld; i < (size_t)(n + 70) * ld; i++) K[i] = Vv[i] = NAN;
    for (int t = 0; t < n; t++)
        for (size_t d = (size_t)hd; d < ld; d++) K[t * ld + d] = Vv[t * ld + d] = NAN;
    const float scale = 1.0f / sqrtf((float)hd);
    float *mx[3], *sum[3], *acc[3];
    for (int k = 0; k < 3; k++) {
        mx[k] = st + (size_t)k * nq * (hd + 2);
        sum[k] = mx[k] + nq;
        acc[k] = sum[k] + nq;
        bn_attn_init(nq, hd, mx[k], sum[k], acc[k]);
    }
    const int c1 = n / 3 + (n > 2 ? 1 : 0), c2 = n - n / 4;
    if (mode == 0) {
        fn(Q, nq, lim, K, Vv, ld, 0, n, hd, scale, mx[0], sum[0], acc[0], scratch);
    } else if (mode == 1) {
        fn(Q, nq, lim, K, Vv, ld, 0, c1, hd, scale, mx[0], sum[0], acc[0], scratch);
        fn(Q, nq, lim, K, Vv, ld, c1, c2, hd, scale, mx[0], sum[0], acc[0], scratch);
        fn(Q, nq, lim, K, Vv, ld, c2, n, hd, scale, mx[0], sum[0], acc[0], scratch);
    } else {
        fn(Q, nq, lim, K, Vv, ld, c2, n, hd, scale, mx[2], sum[2], acc[2], scratch);
        fn(Q, nq, lim, K, Vv, ld, 0, c1, hd, scale, mx[0], sum[0], acc[0], scratch);
        fn(Q, nq, lim, K, Vv, ld, c1, c2, hd, scale, mx[1], sum[1], acc[1], scratch);
        bn_attn_merge(nq, hd, mx[0], sum[0], acc[0], mx[1], sum[1], acc[1]);
        bn_attn_merge(nq, hd, mx[0], sum[0], acc[0], mx[2], sum[2], acc[2]);
    }
    double worst = 0.0;
    for (int r = 0; r < nq; r++) {
        bn_attn_finish(hd, sum[0][r], acc[0] + (size_t)r * hd, out);
        bn_ref_attend_head(Q + (size_t)r * hd, K, Vv, ld, lim[r], hd, scale, p, ref);
        for (int d = 0; d < hd; d++) {
            if (!isfinite(out[d])) (*bad_finite)++;
            const double e = fabs((double)out[d] - (double)ref[d]);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    }
    free(Q); free(K); free(Vv); free(lim); free(st); free(scratch); free(p); free(out); free(ref);
    return worst;
}

static void test_kernels_vs_oracle(void) {
    kern ks[3];
    const int nk = kernels_here(ks);
    const int hds[] = {2, 13, 32, 40, 128};
    const int nqs[] = {1, 3, 4, 9, 16, 17};
    const int ns[] = {1, 2, 7, 64, 65, 150};
    for (int k = 0; k < nk; k++) {
        double worst = 0.0, worst_peaked = 0.0;
        int bad = 0, cases = 0;
        for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
            for (size_t b = 0; b < sizeof nqs / sizeof *nqs; b++)
                for (size_t c = 0; c < sizeof ns / sizeof *ns; c++) {
                    const int mode = (int)((a + b + c) % 3);
                    const double e1 = run_case(ks[k].fn, nqs[b], hds[a], ns[c], 1.0f, mode, &bad);
                    /* q x 8: scores up to ~ +-8 sqrt(hd), a softmax close to one-hot */
                    const double e2 = run_case(ks[k].fn, nqs[b], hds[a], ns[c], 8.0f, (mode + 1) % 3, &bad);
                    if (e1 > worst) worst = e1;
                    if (e2 > worst_peaked) worst_peaked = e2;
                    cases += 2;
                }
        fprintf(stderr, "   %-6s %d cases: max |out - oracle| %.3g (peaked %.3g), non-finite %d\n", ks[k].name, cases,
                worst, worst_peaked, bad);
        /* outputs are convex combinations of values in [-1, 1]: float
         * reordering moves them by ~1e-7; a wrong mask or rescale by ~1e-1 */
        CHECK_MSG(worst < 2e-6, "%s: %g", ks[k].name, worst);
        CHECK_MSG(worst_peaked < 2e-5, "%s: %g", ks[k].name, worst_peaked);
        CHECK(bad == 0);
    }
}

/* Merging a range that saw nothing of a row (mx = -inf) keeps the row. */
static void test_merge_empty(void) {
    float mx[2] = {0.5f, -INFINITY}, sum[2] = {2.0f, 0.0f}, acc[4] = {1, 2, 0, 0};
    float mx2[2] = {-INFINITY, 1.0f}, sum2[2] = {0.0f, 1.0f}, acc2[4] = {9, 9, 3, 4};
    bn_attn_merge(2, 2, mx, sum, acc, mx2, sum2, acc2);
    CHECK(mx[0] == 0.5f && sum[0] == 2.0f && acc[0] == 1.0f && acc[1] == 2.0f);
    CHECK(mx[1] == 1.0f && sum[1] == 1.0f && acc[2] == 3.0f && acc[3] == 4.0f);
    float out[2];
    bn_attn_finish(2, sum[0], acc, out);
    CHECK(out[0] == 0.5f && out[1] == 1.0f);
}

/* Logits of every position of `toks` (n tokens) through one context: a
 * first batch of `first` tokens, then batches of `step` tokens. */
static float *model_logits(bn_model *m, const int32_t *toks, int n, int first, int step, int threads,
                           const char *kernels) {
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n;
    cp.n_batch = first > step ? first : step;
    cp.n_threads = threads;
    cp.kernels = kernels;
    cp.all_logits = true;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    if (!c) return NULL;
    const int V = 64;
    float *out = malloc(sizeof(float) * (size_t)n * V);
    for (int i = 0, cnt; i < n; i += cnt) {
        cnt = i == 0 ? first : step;
        if (cnt > n - i) cnt = n - i;
        bn_batch b = {.n_tokens = cnt, .tokens = toks + i};
        bn_status st = bn_decode(c, &b);
        CHECK_OK(st);
        if (st != BN_OK) break;
        for (int j = 0; j < cnt; j++) memcpy(out + (size_t)(i + j) * V, bn_get_logits(c, j), sizeof(float) * V);
    }
    bn_context_free(c);
    return out;
}

/* The forward pass at 320 positions, GQA 3:1, head dim 20 (not a multiple of
 * a vector): token-by-token decode past 250 positions (ranges split over
 * threads and merged) and 7-token batches against one 320-token prefill, and
 * the scalar kernels against the best ones, within SPEC §2's tolerance. */
static void test_forward_long_context(void) {
    bn_hparams hp;
    bn_hparams_preset(BN_SHAPE_TINY, &hp);
    hp.n_vocab = 64;
    hp.n_embd = 120;
    hp.n_ff = 96;
    hp.n_layer = 1;
    hp.n_head = 6;
    hp.n_head_kv = 2;
    hp.head_dim = 20;
    bn_model *m = NULL;
    CHECK_OK(bn_model_random(&hp, 7, &m));
    if (!m) return;
    enum { N = 330 };
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = irand(hp.n_vocab);
    /* decode steps from position 250 on: ranges split from 256 positions */
    float *batch = model_logits(m, toks, N, N, N, 2, NULL);
    float *dec = model_logits(m, toks, N, 250, 1, 2, NULL);
    float *dec1 = model_logits(m, toks, N, 250, 1, 1, NULL);
    float *b7 = model_logits(m, toks, N, 7, 7, 2, NULL);
    float *ref = model_logits(m, toks, N, N, N, 1, "ref");
    if (batch && dec && dec1 && b7 && ref) {
        CHECK(bn_test_compare_logits("decode 2 threads vs prefill", dec, batch, N, 64) == 0);
        CHECK(bn_test_compare_logits("decode 1 thread vs prefill", dec1, batch, N, 64) == 0);
        CHECK(bn_test_compare_logits("7-token batches vs prefill", b7, batch, N, 64) == 0);
        CHECK(bn_test_compare_logits("best kernels vs ref", batch, ref, N, 64) == 0);
    }
    free(batch); free(dec); free(dec1); free(b7); free(ref);
    bn_model_free(m);
}

int main(void) {
    RUN(test_kernels_vs_oracle);
    RUN(test_merge_empty);
    RUN(test_forward_long_context);
    return bn_test_finish("test_attention");
}
