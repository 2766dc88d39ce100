/* test_kernels.c — every SIMD kernel table available on this CPU against the
 * scalar reference (ref.c): activation quantization and the ternary GEMV /
 * GEMM bit for bit, the dense head within float tolerance, on random data
 * and awkward shapes (K not a multiple of 128, one row, one token, row
 * sub-ranges, extreme activations, 0b11 weight codes). */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "kernels/kernels.h"

/* ---- deterministic random numbers (xorshift64*) */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static float rndf(void) { return (float)(rnd() >> 40) / (float)(1u << 24) * 2.0f - 1.0f; }

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Random T2R weights [m, k]; the padding columns and some 0b11 codes hold
 * garbage on purpose (kernels must read 0b11 as 0 and padding times 0). */
static uint8_t *make_weights(int m, int k, int p3_percent) {
    const size_t rb = bn_t2r_row_bytes(k);
    uint8_t *w = malloc(rb * (size_t)m + 64);
    for (size_t i = 0; i < rb * (size_t)m; i++) {
        uint8_t b = 0;
        for (int j = 0; j < 4; j++) {
            unsigned c = (unsigned)(rnd() % 100) < (unsigned)p3_percent ? 3u : (unsigned)(rnd() % 3);
            b = (uint8_t)((b << 2) | c);
        }
        w[i] = b;
    }
    return w;
}

enum { ACT_RANDOM, ACT_EQUAL, ACT_ZERO, ACT_HUGE, ACT_TINY, ACT_HALVES, ACT_SPECIAL, ACT_COUNT };

static void make_act(float *x, int n, int kind) {
    for (int i = 0; i < n; i++) {
        switch (kind) {
        case ACT_RANDOM: x[i] = rndf() * 3.0f; break;
        case ACT_EQUAL: x[i] = 0.75f; break;
        case ACT_ZERO: x[i] = 0.0f; break;
        case ACT_HUGE: x[i] = (rnd() & 1 ? 3.0e38f : -3.0e38f) * (0.5f + 0.5f * fabsf(rndf())); break;
        case ACT_TINY: x[i] = rndf() * 1e-7f; break;
        case ACT_HALVES: /* x * 127 / absmax lands exactly on .5: ties to even */
            x[i] = i == 0 ? 127.0f : (float)((int)(rnd() % 254) - 127) + 0.5f;
            break;
        case ACT_SPECIAL: {
            const float sp[] = {INFINITY, -INFINITY, NAN, -0.0f, 1.0f, -1.0f, 1e-45f};
            x[i] = (rnd() % 4 == 0) ? sp[rnd() % 7] : rndf();
            break;
        }
        }
    }
}

/* ---- quantize_act */
static void check_quantize(const bn_kernels *kt, int k, int n_tokens, int kind) {
    const int kp = bn_pad_k(k);
    const size_t ldx = (size_t)k + 3, ldq = (size_t)kp + 64;
    float *x = malloc(sizeof(float) * ldx * (size_t)n_tokens);
    int8_t *q0 = malloc(ldq * (size_t)n_tokens), *q1 = malloc(ldq * (size_t)n_tokens);
    float s0[64], s1[64];
    int32_t u0[64], u1[64];
    make_act(x, (int)(ldx * (size_t)n_tokens), kind);
    memset(q0, 0x5a, ldq * (size_t)n_tokens);
    memset(q1, 0x5a, ldq * (size_t)n_tokens);
    bn_ref_quantize_act(x, ldx, k, n_tokens, q0, ldq, s0, u0);
    kt->quantize_act(x, ldx, k, n_tokens, q1, ldq, s1, u1);
    int bad = 0;
    for (int n = 0; n < n_tokens; n++) {
        if (memcmp(q0 + (size_t)n * ldq, q1 + (size_t)n * ldq, ldq) != 0) bad++;
        if (fbits(s0[n]) != fbits(s1[n]) || u0[n] != u1[n]) bad++;
    }
    CHECK_MSG(bad == 0, "%s quantize_act k=%d n=%d kind=%d: %d mismatches", kt->name, k,
              n_tokens, kind, bad);
    /* x_sum is optional */
    kt->quantize_act(x, ldx, k, 1, q1, ldq, s1, NULL);
    CHECK(memcmp(q0, q1, (size_t)kp) == 0);
    free(x);
    free(q0);
    free(q1);
}

static void test_quantize(const bn_kernels *kt) {
    const int ks[] = {1, 15, 16, 17, 100, 128, 256, 300, 2560, 6912};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        for (int kind = 0; kind < ACT_COUNT; kind++) check_quantize(kt, ks[i], 3, kind);
    check_quantize(kt, 2560, 33, ACT_RANDOM);
}

/* ---- tgemm: bit-exact against the reference */
static int check_tgemm_case(const bn_kernels *kt, int M, int k, int N, int m0, int m1, int kind,
                            int p3, int null_sum) {
    const int kp = bn_pad_k(k);
    const size_t ldx = (size_t)k, ldq = (size_t)kp + 128 * (N & 1), ldy = (size_t)M + 5;
    uint8_t *w = make_weights(M, k, p3);
    float *x = malloc(sizeof(float) * ldx * (size_t)N);
    int8_t *q = malloc(ldq * (size_t)N);
    float *xs = malloc(sizeof(float) * (size_t)N);
    int32_t *xu = malloc(sizeof(int32_t) * (size_t)N);
    float *y0 = malloc(sizeof(float) * ldy * (size_t)N), *y1 = malloc(sizeof(float) * ldy * (size_t)N);
    make_act(x, (int)(ldx * (size_t)N), kind);
    memset(q, 0x33, ldq * (size_t)N); /* beyond Kp: garbage kernels must not read */
    bn_ref_quantize_act(x, ldx, k, N, q, ldq, xs, xu);
    for (size_t i = 0; i < ldy * (size_t)N; i++) y0[i] = y1[i] = -12345.0f;
    const float w_scale = 0.37f + fabsf(rndf());
    bn_ref_tgemm(w, k, q, ldq, xs, xu, N, w_scale, y0, ldy, m0, m1);
    kt->tgemm(w, k, q, ldq, xs, null_sum ? NULL : xu, N, w_scale, y1, ldy, m0, m1);
    int bad = 0;
    for (size_t i = 0; i < ldy * (size_t)N; i++)
        if (fbits(y0[i]) != fbits(y1[i])) {
            if (bad < 3)
                fprintf(stderr, "  %s M=%d k=%d N=%d [%d,%d): y[%zu] ref %.9g got %.9g\n",
                        kt->name, M, k, N, m0, m1, i, y0[i], y1[i]);
            bad++;
        }
    CHECK_MSG(bad == 0, "%s tgemm M=%d k=%d N=%d rows [%d,%d) kind=%d: %d mismatches", kt->name,
              M, k, N, m0, m1, kind, bad);
    free(w);
    free(x);
    free(q);
    free(xs);
    free(xu);
    free(y0);
    free(y1);
    return bad == 0;
}

static void test_tgemm_shapes(const bn_kernels *kt) {
    const int ks[] = {128, 256, 100, 300, 384, 2560};
    const int ms[] = {1, 3, 17, 64, 255};
    const int ns[] = {1, 2, 3, 7, 16, 33};
    int ok = 0, total = 0;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t b = 0; b < sizeof ms / sizeof ms[0]; b++)
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
                const int M = ms[b], k = ks[a], N = ns[c];
                if ((double)M * k * N > 4e6) continue; /* keep the scalar oracle fast */
                ok += check_tgemm_case(kt, M, k, N, 0, M, ACT_RANDOM, 2, 0);
                total++;
            }
    fprintf(stderr, "   %s: %d/%d shape cases exact\n", kt->name, ok, total);
}

static void test_tgemm_big(const bn_kernels *kt) {
    /* the 2B4T inner sizes, K = 2560 and 6912 (odd and even block counts) */
    check_tgemm_case(kt, 40, 6912, 1, 0, 40, ACT_RANDOM, 1, 0);
    check_tgemm_case(kt, 33, 6912, 13, 0, 33, ACT_RANDOM, 1, 0);
    check_tgemm_case(kt, 64, 2560, 1, 0, 64, ACT_RANDOM, 0, 0);
    check_tgemm_case(kt, 70, 2560, 25, 0, 70, ACT_RANDOM, 0, 0);
    check_tgemm_case(kt, 8, 1152, 3, 0, 8, ACT_RANDOM, 0, 0); /* 9 blocks: odd */
    /* few tokens over several L2-sized row chunks (the batched-decode path) */
    check_tgemm_case(kt, 255, 6912, 2, 3, 250, ACT_RANDOM, 1, 0);
    check_tgemm_case(kt, 255, 6912, 3, 0, 255, ACT_RANDOM, 1, 0);
    check_tgemm_case(kt, 5, 17000, 1, 0, 5, ACT_RANDOM, 1, 0); /* Kp beyond the GEMV buffer */
    check_tgemm_case(kt, 5, 17000, 2, 0, 5, ACT_RANDOM, 1, 0);
    /* prefill batches whose activations exceed the GEMM's L2 budget (taken
     * in token chunks: 80 x 6912 -> 2 x 40, 450 x 2560 -> 204 + 2 x 123) */
    check_tgemm_case(kt, 40, 6912, 80, 0, 40, ACT_RANDOM, 1, 0);
    check_tgemm_case(kt, 20, 2560, 450, 2, 19, ACT_RANDOM, 1, 0);
}

static void test_tgemm_ranges(const bn_kernels *kt) {
    /* sub-ranges as the threads split them: unaligned starts and ends */
    const int r[][2] = {{0, 1}, {1, 2}, {5, 9}, {3, 36}, {17, 64}, {31, 97}, {64, 100}, {99, 100}};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        check_tgemm_case(kt, 100, 300, 1, r[i][0], r[i][1], ACT_RANDOM, 1, 0);
        check_tgemm_case(kt, 100, 300, 5, r[i][0], r[i][1], ACT_RANDOM, 1, 0);
        check_tgemm_case(kt, 100, 640, 14, r[i][0], r[i][1], ACT_RANDOM, 1, 0);
    }
}

static void test_tgemm_extremes(const bn_kernels *kt) {
    for (int kind = 0; kind < ACT_COUNT; kind++) {
        check_tgemm_case(kt, 19, 300, 1, 0, 19, kind, 3, 0);
        check_tgemm_case(kt, 19, 300, 4, 0, 19, kind, 3, 0);
    }
    /* every code 0b11: all weights 0 */
    check_tgemm_case(kt, 9, 256, 1, 0, 9, ACT_RANDOM, 100, 0);
    check_tgemm_case(kt, 9, 256, 3, 0, 9, ACT_RANDOM, 100, 0);
    /* x_sum omitted: the kernel computes it */
    check_tgemm_case(kt, 21, 2560, 1, 0, 21, ACT_RANDOM, 1, 1);
    check_tgemm_case(kt, 21, 2560, 70, 0, 21, ACT_RANDOM, 1, 1);
}

/* Saturation corner: all weights +1 or -1 and every activation -128 / 127:
 * the largest int16 pair sums the AVX2 path can see, and its int16 sums
 * over 16 blocks (k = 2048: exactly -32768) and past them (k = 4224). */
static void check_tgemm_saturation(const bn_kernels *kt, int k) {
    const int M = 4, kp = bn_pad_k(k);
    const size_t rb = bn_t2r_row_bytes(k);
    uint8_t *w = malloc(rb * M);
    memset(w, 0xAA, rb * 2);          /* rows 0,1: +1 */
    memset(w + rb * 2, 0x00, rb * 2); /* rows 2,3: -1 */
    int8_t *q = malloc((size_t)kp * 2);
    memset(q, 0x80, (size_t)kp);      /* token 0: -128 */
    memset(q + kp, 0x7f, (size_t)kp); /* token 1: 127 */
    const float xs[2] = {0.5f, 0.25f};
    const int32_t xu[2] = {-128 * k, 127 * k};
    float y0[8], y1[8];
    bn_ref_tgemm(w, k, q, (size_t)kp, xs, xu, 2, 1.0f, y0, M, 0, M);
    kt->tgemm(w, k, q, (size_t)kp, xs, xu, 2, 1.0f, y1, M, 0, M);
    CHECK(memcmp(y0, y1, sizeof y0) == 0);
    CHECK(y0[0] == -128.0f * k * 0.5f);
    kt->tgemm(w, k, q, (size_t)kp, xs, xu, 1, 1.0f, y1, M, 0, M);
    CHECK(memcmp(y0, y1, sizeof(float) * M) == 0);
    free(w);
    free(q);
}

static void test_tgemm_saturation(const bn_kernels *kt) {
    check_tgemm_saturation(kt, 512);
    check_tgemm_saturation(kt, 2048);
    check_tgemm_saturation(kt, 4224);
}

/* Every token count 1..40 (GEMV, the few-token path, every GEMM tile width
 * and remainder) on rows that are not a multiple of any tile. */
static void test_tgemm_tokens(const bn_kernels *kt) {
    int ok = 0;
    for (int N = 1; N <= 40; N++) ok += check_tgemm_case(kt, 37, 300, N, 0, 37, ACT_RANDOM, 2, 0);
    fprintf(stderr, "   %s: %d/40 token counts exact\n", kt->name, ok);
}

/* ---- tgemm4 on T2R4 copies: bit-exact against the reference on the T2R
 * original (which also checks bn_t2r4_pack and its padding rows) */
static int check_tgemm4_case(const bn_kernels *kt, int M, int k, int N, int m0, int m1) {
    const int kp = bn_pad_k(k);
    const size_t ldq = (size_t)kp + 64, ldy = (size_t)M + 3;
    uint8_t *w = make_weights(M, k, 3);
    uint8_t *w4 = NULL;
    CHECK(bn_t2r4_new(w, M, k, &w4) == BN_OK && w4 != NULL);
    if (!w4) { free(w); return 0; }
    float *x = malloc(sizeof(float) * (size_t)k * (size_t)N);
    int8_t *q = malloc(ldq * (size_t)N);
    float xs[8];
    int32_t xu[8];
    float *y0 = malloc(sizeof(float) * ldy * (size_t)N), *y1 = malloc(sizeof(float) * ldy * (size_t)N);
    make_act(x, k * N, ACT_RANDOM);
    memset(q, 0x33, ldq * (size_t)N);
    bn_ref_quantize_act(x, (size_t)k, k, N, q, ldq, xs, xu);
    for (size_t i = 0; i < ldy * (size_t)N; i++) y0[i] = y1[i] = -12345.0f;
    bn_ref_tgemm(w, k, q, ldq, xs, xu, N, 0.81f, y0, ldy, m0, m1);
    kt->tgemm4(w4, k, q, ldq, xs, (N & 1) ? xu : NULL, N, 0.81f, y1, ldy, m0, m1);
    int bad = 0;
    for (size_t i = 0; i < ldy * (size_t)N; i++) bad += fbits(y0[i]) != fbits(y1[i]);
    CHECK_MSG(bad == 0, "%s tgemm4 M=%d k=%d N=%d rows [%d,%d): %d mismatches", kt->name, M, k, N,
              m0, m1, bad);
    free(w);
    bn_aligned_free(w4);
    free(x);
    free(q);
    free(y0);
    free(y1);
    return bad == 0;
}

static void test_tgemm4(const bn_kernels *kt) {
    if (!kt->tgemm4) return;
    const int ks[] = {100, 128, 256, 300, 2560, 6912};
    const int ms[] = {1, 3, 4, 17, 64};
    const int ns[] = {1, 2, 3, 5};
    int ok = 0, total = 0;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t b = 0; b < sizeof ms / sizeof ms[0]; b++)
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++, total++)
                ok += check_tgemm4_case(kt, ms[b], ks[a], ns[c], 0, ms[b]);
    /* thread-split sub-ranges that cut groups of 4; Kp beyond the GEMV buffer */
    const int r[][2] = {{0, 1}, {1, 2}, {5, 9}, {3, 36}, {17, 64}, {31, 97}, {99, 100}};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++, total++)
        ok += check_tgemm4_case(kt, 100, 1152, 1 + (int)i % 3, r[i][0], r[i][1]);
    ok += check_tgemm4_case(kt, 6, 17000, 1, 0, 6);
    ok += check_tgemm4_case(kt, 255, 6912, 2, 3, 250);
    total += 2;
    fprintf(stderr, "   %s: %d/%d tgemm4 (T2R4) cases exact\n", kt->name, ok, total);
}

/* ---- head: tolerance 1e-5 of the sum of |terms| */
static void check_head(const bn_kernels *kt, bn_type et, int n_embd, int V, int N, int v0, int v1) {
    const size_t ldh = (size_t)n_embd + 1, ldl = (size_t)V + 2;
    const size_t esz = et == BN_TYPE_F32 ? 4 : 2;
    void *E = malloc(esz * (size_t)V * (size_t)n_embd);
    float *ef = malloc(sizeof(float) * (size_t)V * (size_t)n_embd);
    float *h = malloc(sizeof(float) * ldh * (size_t)N);
    float *l0 = malloc(sizeof(float) * ldl * (size_t)N), *l1 = malloc(sizeof(float) * ldl * (size_t)N);
    for (size_t i = 0; i < (size_t)V * (size_t)n_embd; i++) {
        const float f = rndf() * 0.2f;
        if (et == BN_TYPE_F16) { ((uint16_t *)E)[i] = bn_f32_to_f16(f); ef[i] = bn_f16_to_f32(((uint16_t *)E)[i]); }
        else if (et == BN_TYPE_BF16) { ((uint16_t *)E)[i] = bn_f32_to_bf16(f); ef[i] = bn_bf16_to_f32(((uint16_t *)E)[i]); }
        else { ((float *)E)[i] = f; ef[i] = f; }
    }
    for (size_t i = 0; i < ldh * (size_t)N; i++) h[i] = rndf() * 4.0f;
    for (size_t i = 0; i < ldl * (size_t)N; i++) l0[i] = l1[i] = -777.0f;
    bn_ref_head(E, et, n_embd, h, ldh, N, l0, ldl, v0, v1);
    kt->head(E, et, n_embd, h, ldh, N, l1, ldl, v0, v1);
    int bad = 0;
    for (int n = 0; n < N; n++)
        for (int v = 0; v < V + 2; v++) {
            const size_t i = (size_t)n * ldl + (size_t)v;
            if (v < v0 || v >= v1) { if (l1[i] != -777.0f) bad++; continue; }
            double mag = 0;
            for (int j = 0; j < n_embd; j++)
                mag += fabs((double)ef[(size_t)v * n_embd + j] * h[(size_t)n * ldh + j]);
            if (!(fabs((double)l0[i] - l1[i]) <= 1e-5 * mag + 1e-30)) bad++;
        }
    CHECK_MSG(bad == 0, "%s head type %d n_embd=%d V=%d N=%d: %d mismatches", kt->name, (int)et,
              n_embd, V, N, bad);
    free(E);
    free(ef);
    free(h);
    free(l0);
    free(l1);
}

static void test_head(const bn_kernels *kt) {
    const bn_type ts[] = {BN_TYPE_F32, BN_TYPE_F16, BN_TYPE_BF16};
    for (int t = 0; t < 3; t++) {
        check_head(kt, ts[t], 256, 37, 1, 0, 37);
        check_head(kt, ts[t], 100, 13, 5, 0, 13);
        check_head(kt, ts[t], 7, 9, 2, 1, 8);
        check_head(kt, ts[t], 2560, 11, 3, 2, 11);
        check_head(kt, ts[t], 300, 21, 7, 3, 20);
    }
}

/* ---- quantized head */
typedef struct qh_fixture {
    bn_qhead E;
    uint16_t *scales;
    uint8_t *codes;
    float *rows; /* the f32 rows it was made from */
} qh_fixture;

static void qh_make(qh_fixture *f, int bits, int n_embd, int V) {
    f->E.bits = bits;
    f->E.n_vocab = V;
    f->E.n_embd = n_embd;
    f->E.nblk = bn_pad_k(n_embd) / BN_QH_BLOCK;
    f->E.row_bytes = bn_qhead_row_bytes(bits, n_embd);
    f->scales = malloc(sizeof(uint16_t) * (size_t)f->E.nblk * (size_t)V);
    f->codes = malloc(f->E.row_bytes * (size_t)V + 64);
    f->rows = malloc(sizeof(float) * (size_t)n_embd * (size_t)V);
    for (size_t i = 0; i < (size_t)n_embd * (size_t)V; i++) {
        f->rows[i] = rndf() * 0.1f;
        if (rnd() % 97 == 0) f->rows[i] *= 20.0f; /* outliers */
    }
    for (int v = 0; v < V / 7; v++) /* a few all-zero rows: scale 0 */
        memset(f->rows + (size_t)(v * 7) * n_embd, 0, sizeof(float) * (size_t)n_embd);
    for (int v = 0; v < V; v++)
        bn_qhead_quantize_row(bits, f->rows + (size_t)v * n_embd, n_embd,
                              f->scales + (size_t)v * f->E.nblk, f->codes + (size_t)v * f->E.row_bytes);
    f->E.scales = f->scales;
    f->E.codes = f->codes;
}

static void qh_free(qh_fixture *f) {
    free(f->scales);
    free(f->codes);
    free(f->rows);
}

/* The quantizer: every element within half a step of its row value, codes
 * within qmax, padding codes at the offset (c = 0). */
static void test_qhead_quantizer(void) {
    const int bits_list[] = {8, 6, 4};
    for (int bi = 0; bi < 3; bi++) {
        const int bits = bits_list[bi], qmax = bits == 8 ? 127 : bits == 6 ? 31 : 7;
        const int off = bits == 8 ? 128 : bits == 6 ? 32 : 8;
        qh_fixture f;
        qh_make(&f, bits, 300, 9);
        int bad = 0;
        for (int v = 0; v < 9; v++) {
            const uint8_t *row = f.codes + (size_t)v * f.E.row_bytes;
            for (int i = 0; i < bn_pad_k(300); i++) {
                const int c = bn_qhead_get_u(bits, row, i) - off;
                const float d = bn_f16_to_f32(f.scales[(size_t)v * f.E.nblk + i / BN_QH_BLOCK]);
                if (c < -qmax || c > qmax) bad++;
                if (i >= 300) { if (c != 0) bad++; continue; }
                const float x = f.rows[(size_t)v * 300 + i];
                const float amax_step = d * 0.5f * 1.0001f + 1e-12f;
                if (fabsf(x) <= d * (float)qmax * 1.001f + 1e-12f && fabsf(c * d - x) > amax_step) bad++;
            }
        }
        CHECK_MSG(bad == 0, "qhead %d-bit quantizer: %d bad codes", bits, bad);
        qh_free(&f);
    }
}

/* bn_qhead_build: the same bytes as quantizing each (converted) row, for
 * every source type and thread count; bad arguments fail with a message. */
static void test_qhead_build(void) {
    const int V = 37, E = 300;
    float *ef = malloc(sizeof(float) * V * E);
    uint16_t *e16 = malloc(sizeof(uint16_t) * V * E), *eb16 = malloc(sizeof(uint16_t) * V * E);
    for (int i = 0; i < V * E; i++) {
        ef[i] = rndf() * 0.3f;
        if (i / E == 1) ef[i] = 0.0f;                            /* zero row  */
        if (i / E == 2) ef[i] *= 1e-6f;                          /* f16 subnormal scales */
        if (i / E == 3 && i % 50 == 0) ef[i] = 60000.0f;         /* outliers  */
        if (i / E == 4 && i % 97 == 0) ef[i] = i % 2 ? NAN : -INFINITY;
        e16[i] = bn_f32_to_f16(ef[i]);
        eb16[i] = bn_f32_to_bf16(ef[i]);
    }
    const bn_type ts[3] = {BN_TYPE_F32, BN_TYPE_F16, BN_TYPE_BF16};
    const void *src[3] = {ef, e16, eb16};
    const int bits_list[3] = {8, 6, 4};
    float row[300];
    for (int ti = 0; ti < 3; ti++)
        for (int bi = 0; bi < 3; bi++) {
            bn_qhead Q;
            void *mem = NULL;
            CHECK_OK(bn_qhead_build(src[ti], ts[ti], V, E, bits_list[bi], 1 + bi % 2, &Q, &mem));
            if (!mem) continue;
            CHECK(Q.bits == bits_list[bi] && Q.nblk == bn_pad_k(E) / BN_QH_BLOCK &&
                  Q.row_bytes == bn_qhead_row_bytes(bits_list[bi], E));
            CHECK(bn_qhead_bytes(&Q) == (size_t)V * (Q.nblk * 2 + Q.row_bytes));
            uint16_t sc[16];
            uint8_t cd[512];
            int bad = 0;
            for (int v = 0; v < V; v++) {
                for (int i = 0; i < E; i++)
                    row[i] = ti == 0 ? ef[v * E + i] : ti == 1 ? bn_f16_to_f32(e16[v * E + i]) : bn_bf16_to_f32(eb16[v * E + i]);
                bn_qhead_quantize_row(Q.bits, row, E, sc, cd);
                if (memcmp(sc, Q.scales + (size_t)v * Q.nblk, sizeof(uint16_t) * (size_t)Q.nblk) ||
                    memcmp(cd, Q.codes + (size_t)v * Q.row_bytes, Q.row_bytes))
                    bad++;
            }
            CHECK_MSG(bad == 0, "qhead_build type %d bits %d: %d rows differ", (int)ts[ti], Q.bits, bad);
            bn_aligned_free(mem);
        }
    bn_qhead Q;
    void *mem = (void *)1;
    CHECK(bn_qhead_build(ef, BN_TYPE_F32, V, E, 5, 1, &Q, &mem) == BN_ERR_INVALID_ARG && mem == NULL);
    CHECK(strstr(bn_last_error(), "bits") != NULL);
    CHECK(bn_qhead_build(ef, BN_TYPE_I2_S, V, E, 8, 1, &Q, &mem) == BN_ERR_INVALID_ARG);
    CHECK(bn_qhead_build(ef, BN_TYPE_F32, 0, E, 8, 1, &Q, &mem) == BN_ERR_INVALID_ARG);
    CHECK(bn_qhead_build(ef, BN_TYPE_F32, 1 << 30, 1 << 20, 8, 1, &Q, &mem) == BN_ERR_INVALID_ARG);
    free(ef);
    free(e16);
    free(eb16);
}

/* Reference against a double-precision dot of the dequantized operands, then
 * every table against the reference. */
static void check_qhead(const bn_kernels *kt, int bits, int n_embd, int V, int N, int v0, int v1) {
    const int kp = bn_pad_k(n_embd), off = bits == 8 ? 128 : bits == 6 ? 32 : 8;
    qh_fixture f;
    qh_make(&f, bits, n_embd, V);
    const size_t ldq = (size_t)kp + 64, ldl = (size_t)V + 3;
    float *h = malloc(sizeof(float) * (size_t)n_embd * (size_t)N);
    int8_t *hq = malloc(ldq * (size_t)N);
    float *hs = malloc(sizeof(float) * (size_t)N);
    float *l0 = malloc(sizeof(float) * ldl * (size_t)N), *l1 = malloc(sizeof(float) * ldl * (size_t)N);
    for (size_t i = 0; i < (size_t)n_embd * (size_t)N; i++) h[i] = rndf() * 5.0f;
    bn_ref_quantize_act(h, (size_t)n_embd, n_embd, N, hq, ldq, hs, NULL);
    for (size_t i = 0; i < ldl * (size_t)N; i++) l0[i] = l1[i] = -55.0f;
    bn_ref_qhead(&f.E, hq, ldq, hs, N, l0, ldl, v0, v1);
    kt->qhead(&f.E, hq, ldq, hs, N, l1, ldl, v0, v1);
    int bad_ref = 0, bad = 0;
    for (int n = 0; n < N; n++)
        for (int v = 0; v < V + 3; v++) {
            const size_t o = (size_t)n * ldl + (size_t)v;
            if (v < v0 || v >= v1) { if (l0[o] != -55.0f || l1[o] != -55.0f) bad++; continue; }
            double exact = 0, mag = 0;
            const uint8_t *row = f.codes + (size_t)v * f.E.row_bytes;
            for (int i = 0; i < kp; i++) {
                const double t = (double)(bn_qhead_get_u(bits, row, i) - off) *
                                 bn_f16_to_f32(f.scales[(size_t)v * f.E.nblk + i / BN_QH_BLOCK]) *
                                 hq[(size_t)n * ldq + (size_t)i] * hs[n];
                exact += t;
                mag += fabs(t);
            }
            if (!(fabs(exact - l0[o]) <= 1e-5 * mag + 1e-30)) bad_ref++;
            if (!(fabs((double)l0[o] - l1[o]) <= 1e-5 * mag + 1e-30)) bad++;
        }
    CHECK_MSG(bad_ref == 0, "ref qhead %d-bit n_embd=%d: %d off the exact dot", bits, n_embd, bad_ref);
    CHECK_MSG(bad == 0, "%s qhead %d-bit n_embd=%d V=%d N=%d [%d,%d): %d mismatches", kt->name,
              bits, n_embd, V, N, v0, v1, bad);
    free(h);
    free(hq);
    free(hs);
    free(l0);
    free(l1);
    qh_free(&f);
}

static void test_qhead(const bn_kernels *kt) {
    const int bits_list[] = {8, 6, 4};
    for (int bi = 0; bi < 3; bi++) {
        const int b = bits_list[bi];
        check_qhead(kt, b, 256, 21, 1, 0, 21);
        check_qhead(kt, b, 100, 9, 3, 1, 8);
        check_qhead(kt, b, 300, 13, 6, 0, 13);
        check_qhead(kt, b, 2560, 5, 2, 0, 5);
        check_qhead(kt, b, 2112, 7, 5, 2, 6); /* 17 superblocks: scale loads cross 16 */
    }
}

/* ---- dispatch */
static void test_dispatch(void) {
    bn_cpu_features f;
    bn_cpu_detect(&f);
    fprintf(stderr, "   cpu: avx2=%d fma=%d f16c=%d avx512f=%d bw=%d vl=%d dq=%d vnni=%d vbmi=%d "
                    "avx_vnni=%d gfni=%d\n", f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw,
            f.avx512vl, f.avx512dq, f.avx512vnni, f.avx512vbmi, f.avx_vnni, f.gfni);
    CHECK(bn_kernels_ref() && !strcmp(bn_kernels_ref()->name, "ref"));
    CHECK(bn_kernels_by_name("ref") == bn_kernels_ref());
    CHECK(bn_kernels_by_name("nonsense") == NULL);
    CHECK(bn_kernels_by_name(NULL) == NULL);
    const bn_kernels *best = bn_kernels_best();
    CHECK(best != NULL && best->quantize_act && best->tgemm && best->head);
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx2) {
        CHECK(bn_kernels_by_name("avx512") != NULL);
        CHECK(best == bn_kernels_by_name("avx512"));
    }
    fprintf(stderr, "   best table: %s\n", best->name);
}

static void run_table(const char *name) {
    const bn_kernels *kt = bn_kernels_by_name(name);
    if (!kt) {
        fprintf(stderr, "-- %s: not supported on this CPU, skipped\n", name);
        return;
    }
    fprintf(stderr, "-- table %s\n", kt->name);
    test_quantize(kt);
    test_tgemm_shapes(kt);
    test_tgemm_tokens(kt);
    test_tgemm_big(kt);
    test_tgemm_ranges(kt);
    test_tgemm_extremes(kt);
    test_tgemm_saturation(kt);
    test_tgemm4(kt);
    test_head(kt);
    test_qhead(kt);
}

int main(void) {
    RUN(test_dispatch);
    RUN(test_qhead_quantizer);
    RUN(test_qhead_build);
    fprintf(stderr, "-- table ref (quantized head reference vs exact dot)\n");
    test_qhead(bn_kernels_ref());
    test_tgemm4(bn_kernels_ref()); /* the portable T2R4 reference */
    run_table("avx2");
    run_table("avx512");
    return bn_test_finish("kernels");
}
