/* test_attention.c — the blocked online-softmax attention kernels (scalar
 * bn_ref_attn and every SIMD version this CPU runs) against the two-pass
 * oracle bn_ref_attend_head on random data: awkward head dims and lengths,
 * causal limits per row, one call, consecutive calls carrying the state, and
 * ranges merged with bn_attn_merge; cache rows past the limits hold NaN and
 * must not be read. Then the forward pass: long-context decode (positions cut
 * into ranges over threads) against one batched prefill and the scalar
 * kernels, at 1 and 2 threads. The f16 KV cache: every table's f16 <-> f32
 * row conversions against the scalar ones (core/fp16.c) on random and special
 * values, bn_attn_f16 bit-equal to its f32 kernel on the widened cache (NaN
 * rows past the limits unread), and the forward pass on an f16 cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "core/core.h"
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

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Every table's f16 rows against core/fp16.c, odd lengths, with zeros,
 * subnormals, overflow to Inf, ties and NaN among random values. */
static void test_f16_rows(void) {
    enum { N = 301 };
    float x[N], back[N], want_back[N];
    uint16_t h[N], want[N];
    const float special[] = {0.0f, -0.0f, 1e-8f, -3e-6f, 6.1e-5f, 65504.0f, 65520.0f, -1e6f, INFINITY, -INFINITY,
                             NAN, 1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f, 2.98e-8f};
    const char *names[] = {"ref", "avx2", "avx512"};
    for (int t = 0; t < 3; t++) {
        const bn_kernels *k = bn_kernels_by_name(names[t]);
        if (!k) continue;
        CHECK(k->f16_to_f32 && k->f32_to_f16);
        if (!k->f16_to_f32 || !k->f32_to_f16) continue;
        for (int len = 1; len <= N; len += 37) {
            for (int i = 0; i < len; i++)
                x[i] = i < (int)(sizeof special / sizeof special[0]) ? special[i] : frand() * (float)(1 << irand(20)) / 64.0f;
            bn_f32_to_f16_row(x, want, (size_t)len);
            k->f32_to_f16(x, h, (size_t)len);
            int bad = 0;
            for (int i = 0; i < len; i++) bad += h[i] != want[i];
            CHECK_MSG(bad == 0, "%s f32->f16 len %d: %d differ", names[t], len, bad);
            bn_f16_to_f32_row(want, want_back, (size_t)len);
            k->f16_to_f32(want, back, (size_t)len);
            bad = 0;
            for (int i = 0; i < len; i++) bad += f32_bits(back[i]) != f32_bits(want_back[i]);
            CHECK_MSG(bad == 0, "%s f16->f32 len %d: %d differ", names[t], len, bad);
        }
    }
}

/* bn_attn_f16 over an f16 cache equals the f32 kernel over the same values
 * widened, bit for bit: same tile walk, same arithmetic. Rows past every
 * limit hold NaN in the f16 cache. */
static void test_attn_f16_wrapper(void) {
    kern ks[3];
    const int nk = kernels_here(ks);
    const char *tables[] = {"ref", "avx2", "avx512"};
    for (int ki = 0; ki < nk; ki++) {
        const bn_kernels *tab = bn_kernels_by_name(tables[ki]);
        if (!tab) continue;
        for (int c = 0; c < 24; c++) {
            const int hd = 4 + irand(140), nq = 1 + irand(24), n = 1 + irand(300);
            const size_t ld = (size_t)hd + (size_t)irand(5);
            const int t0 = irand(n), t1 = t0 + 1 + irand(n - t0);
            float *Q = malloc(sizeof(float) * (size_t)nq * hd);
            uint16_t *Kh = malloc(2 * (size_t)(n + 64) * ld), *Vh = malloc(2 * (size_t)(n + 64) * ld);
            float *Kf = malloc(4 * (size_t)(n + 64) * ld), *Vf = malloc(4 * (size_t)(n + 64) * ld);
            int32_t lim[24], lim_tile[24];
            float *st1 = malloc(sizeof(float) * (size_t)nq * (hd + 2)), *st2 = malloc(sizeof(float) * (size_t)nq * (hd + 2));
            float *scratch = malloc(sizeof(float) * (size_t)nq * BN_ATTN_TILE);
            float *tile = malloc(sizeof(float) * 2 * BN_ATTN_TILE * (size_t)hd);
            for (int i = 0; i < nq * hd; i++) Q[i] = frand() * 2.0f;
            int maxlim = 0;
            for (int r = 0; r < nq; r++) {
                lim[r] = r == 0 ? t1 : t0 + irand(t1 - t0 + 1);
                if (lim[r] > maxlim) maxlim = lim[r];
            }
            for (size_t i = 0; i < (size_t)(n + 64) * ld; i++) {
                const bool past = i / ld >= (size_t)maxlim;
                Kh[i] = past ? 0x7e00 : bn_f32_to_f16(frand());
                Vh[i] = past ? 0x7e00 : bn_f32_to_f16(frand());
                Kf[i] = bn_f16_to_f32(Kh[i]);
                Vf[i] = bn_f16_to_f32(Vh[i]);
            }
            float *m1 = st1, *s1 = m1 + nq, *a1 = s1 + nq, *m2 = st2, *s2 = m2 + nq, *a2 = s2 + nq;
            bn_attn_init(nq, hd, m1, s1, a1);
            bn_attn_init(nq, hd, m2, s2, a2);
            const float scale = 1.0f / sqrtf((float)hd);
            ks[ki].fn(Q, nq, lim, Kf, Vf, ld, t0, maxlim, hd, scale, m1, s1, a1, scratch);
            bn_attn_f16(tab, ks[ki].fn, Q, nq, lim, Kh, Vh, ld, t0, maxlim, hd, scale, m2, s2, a2, scratch, tile,
                        lim_tile);
            int bad = 0;
            for (int i = 0; i < nq * (hd + 2); i++) bad += f32_bits(st1[i]) != f32_bits(st2[i]);
            CHECK_MSG(bad == 0, "%s f16 wrapper: nq %d hd %d [%d, %d): %d values differ", ks[ki].name, nq, hd, t0,
                      maxlim, bad);
            free(Q); free(Kh); free(Vh); free(Kf); free(Vf); free(st1); free(st2); free(scratch); free(tile);
        }
    }
}

/* Logits of every position of `toks` (n tokens) through one context: a
 * first batch of `first` tokens, then batches of `step` tokens. */
static float *model_logits_kv(bn_model *m, const int32_t *toks, int n, int first, int step, int threads,
                              const char *kernels, bn_kv_type kv) {
    bn_context_params cp = bn_context_default_params();
    cp.kv_type = kv;
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

static float *model_logits(bn_model *m, const int32_t *toks, int n, int first, int step, int threads,
                           const char *kernels) {
    return model_logits_kv(m, toks, n, first, step, threads, kernels, BN_KV_F32);
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
    /* f16 cache: decode and prefill on it agree with each other as the f32
     * paths do, and with the f32 cache within the same tolerance */
    float *h_batch = model_logits_kv(m, toks, N, N, N, 2, NULL, BN_KV_F16);
    float *h_dec = model_logits_kv(m, toks, N, 250, 1, 2, NULL, BN_KV_F16);
    float *h_ref = model_logits_kv(m, toks, N, N, N, 1, "ref", BN_KV_F16);
    if (batch && dec && dec1 && b7 && ref && h_batch && h_dec && h_ref) {
        CHECK(bn_test_compare_logits("decode 2 threads vs prefill", dec, batch, N, 64) == 0);
        CHECK(bn_test_compare_logits("decode 1 thread vs prefill", dec1, batch, N, 64) == 0);
        CHECK(bn_test_compare_logits("7-token batches vs prefill", b7, batch, N, 64) == 0);
        CHECK(bn_test_compare_logits("best kernels vs ref", batch, ref, N, 64) == 0);
        CHECK(bn_test_compare_logits("f16 cache: decode vs prefill", h_dec, h_batch, N, 64) == 0);
        CHECK(bn_test_compare_logits("f16 cache: best kernels vs ref", h_batch, h_ref, N, 64) == 0);
        CHECK(bn_test_compare_logits("f16 cache vs f32 cache", h_batch, batch, N, 64) == 0);
        /* and the f16 cache does change the numbers (it is really used) */
        double d = 0;
        for (size_t i = 0; i < (size_t)N * 64; i++) d += fabs((double)h_batch[i] - (double)batch[i]);
        CHECK_MSG(d > 0, "f16 cache gave the f32 cache's logits exactly");
    }
    free(batch); free(dec); free(dec1); free(b7); free(ref); free(h_batch); free(h_dec); free(h_ref);
    bn_model_free(m);
}

int main(void) {
    RUN(test_kernels_vs_oracle);
    RUN(test_merge_empty);
    RUN(test_f16_rows);
    RUN(test_attn_f16_wrapper);
    RUN(test_forward_long_context);
    return bn_test_finish("test_attention");
}
