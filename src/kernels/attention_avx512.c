/* attention_avx512.c — bn_attn_fn with AVX-512F/DQ (compiled with those
 * flags, CMakeLists.txt; used only after runtime detection). Same tile walk
 * as bn_ref_attn (attention.c): per tile of BN_ATTN_TILE positions, all
 * scores of the block's rows, then one online-softmax update per row, then
 * P V for groups of rows so that each V row is loaded once per group.
 * Head dims that are not a multiple of 16 use masked loads for the tail. */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>

#define BN_INLINE static inline __attribute__((always_inline))
#define TILE BN_ATTN_TILE

BN_INLINE __mmask16 lanes(int k) { return k >= 16 ? (__mmask16)0xffff : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1); }

/* exp(x) for x <= 0: x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2),
 * degree-7 Taylor polynomial of e^r (truncation < 1e-8 relative), times 2^n
 * by vscalefps (which also underflows cleanly to 0). */
BN_INLINE __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* The four horizontal sums of a, b, c, d as one vector. */
BN_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    const __m256 all = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
    return _mm_add_ps(_mm256_castps256_ps128(all), _mm256_extractf128_ps(all, 1));
}

/* The 16 horizontal sums of x[0..15] as one vector, lane 4i + j = sum of
 * x[4i + j]: pairwise adds within 128-bit lanes, then across them (45
 * shuffles and adds for 16 sums, against ~10 for every 4 with hsum4). */
BN_INLINE __m512 hsum16(const __m512 *x) {
    __m512 v[8], w[4];
    for (int k = 0; k < 8; k++)
        v[k] = _mm512_add_ps(_mm512_unpacklo_ps(x[2 * k], x[2 * k + 1]), _mm512_unpackhi_ps(x[2 * k], x[2 * k + 1]));
    for (int k = 0; k < 4; k++) {
        const __m512d a = _mm512_castps_pd(v[2 * k]), b = _mm512_castps_pd(v[2 * k + 1]);
        w[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    const __m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xdd));
    const __m512 u1 = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], 0x88), _mm512_shuffle_f32x4(w[2], w[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, 0x88), _mm512_shuffle_f32x4(u0, u1, 0xdd));
}

/* Scores of rows r..r+3 against K rows t..t+3 (a 4 x 4 register block: 8
 * loads per 16 FMAs, where one K row against four Q rows needs 5 per 4). */
BN_INLINE void scores4x4(const float *Q, int r, int hd, const float *K, size_t ld, int t, int tt, float scale, float *S,
                         __mmask16 tm, int dfull) {
    const float *q0 = Q + (size_t)r * hd, *q1 = q0 + hd, *q2 = q1 + hd, *q3 = q2 + hd;
    const float *k0 = K + (size_t)t * ld, *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
    __m512 a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
#define S4X4_STEP(LOAD)                                                                                 \
    do {                                                                                                \
        const __m512 x0 = LOAD(q0), x1 = LOAD(q1), x2 = LOAD(q2), x3 = LOAD(q3);                        \
        const __m512 y0 = LOAD(k0), y1 = LOAD(k1), y2 = LOAD(k2), y3 = LOAD(k3);                        \
        a[0] = _mm512_fmadd_ps(x0, y0, a[0]), a[1] = _mm512_fmadd_ps(x0, y1, a[1]);                     \
        a[2] = _mm512_fmadd_ps(x0, y2, a[2]), a[3] = _mm512_fmadd_ps(x0, y3, a[3]);                     \
        a[4] = _mm512_fmadd_ps(x1, y0, a[4]), a[5] = _mm512_fmadd_ps(x1, y1, a[5]);                     \
        a[6] = _mm512_fmadd_ps(x1, y2, a[6]), a[7] = _mm512_fmadd_ps(x1, y3, a[7]);                     \
        a[8] = _mm512_fmadd_ps(x2, y0, a[8]), a[9] = _mm512_fmadd_ps(x2, y1, a[9]);                     \
        a[10] = _mm512_fmadd_ps(x2, y2, a[10]), a[11] = _mm512_fmadd_ps(x2, y3, a[11]);                 \
        a[12] = _mm512_fmadd_ps(x3, y0, a[12]), a[13] = _mm512_fmadd_ps(x3, y1, a[13]);                 \
        a[14] = _mm512_fmadd_ps(x3, y2, a[14]), a[15] = _mm512_fmadd_ps(x3, y3, a[15]);                 \
    } while (0)
#define S4X4_FULL(p) _mm512_loadu_ps((p) + d)
#define S4X4_TAIL(p) _mm512_maskz_loadu_ps(tm, (p) + dfull)
    for (int d = 0; d < dfull; d += 16) S4X4_STEP(S4X4_FULL);
    if (tm) S4X4_STEP(S4X4_TAIL);
#undef S4X4_STEP
#undef S4X4_FULL
#undef S4X4_TAIL
    const __m512 s = _mm512_mul_ps(hsum16(a), _mm512_set1_ps(scale));
    _mm_storeu_ps(S + (size_t)r * TILE + (t - tt), _mm512_castps512_ps128(s));
    _mm_storeu_ps(S + (size_t)(r + 1) * TILE + (t - tt), _mm512_extractf32x4_ps(s, 1));
    _mm_storeu_ps(S + (size_t)(r + 2) * TILE + (t - tt), _mm512_extractf32x4_ps(s, 2));
    _mm_storeu_ps(S + (size_t)(r + 3) * TILE + (t - tt), _mm512_extractf32x4_ps(s, 3));
}

/* S[r*TILE + t-tt] = (Q[r] . K[t]) * scale for t in [tt, te): 4 x 4 blocks
 * of (rows, K rows), then each left-over K row once per group of four rows;
 * the rows stay in L1. */
static void scores(const float *Q, int nq, int hd, const float *K, size_t ld, int tt, int te, float scale, float *S) {
    const __mmask16 tm = lanes(hd % 16);
    const int dfull = hd - hd % 16;
    const int nq4 = nq - nq % 4;
    int t = tt;
    if (nq4 > 0)
        for (; t + 4 <= te; t += 4)
            for (int r = 0; r < nq4; r += 4) scores4x4(Q, r, hd, K, ld, t, tt, scale, S, tm, dfull);
    /* rows past nq4 for the K rows done above, then every row for the rest */
    for (int t2 = tt; t2 < t; t2++)
        for (int r = nq4; r < nq; r++) {
            const float *q0 = Q + (size_t)r * hd, *k = K + (size_t)t2 * ld;
            __m512 a0 = _mm512_setzero_ps();
            for (int d = 0; d < dfull; d += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q0 + d), _mm512_loadu_ps(k + d), a0);
            if (tm) a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, q0 + dfull), _mm512_maskz_loadu_ps(tm, k + dfull), a0);
            S[(size_t)r * TILE + (t2 - tt)] = _mm512_reduce_add_ps(a0) * scale;
        }
    for (; t < te; t++) {
        const float *k = K + (size_t)t * ld;
        const int j = t - tt;
        int r = 0;
        for (; r + 4 <= nq; r += 4) {
            const float *q0 = Q + (size_t)r * hd, *q1 = q0 + hd, *q2 = q1 + hd, *q3 = q2 + hd;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int d = 0; d < dfull; d += 16) {
                const __m512 kv = _mm512_loadu_ps(k + d);
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q0 + d), kv, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q1 + d), kv, a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(q2 + d), kv, a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(q3 + d), kv, a3);
            }
            if (tm) {
                const __m512 kv = _mm512_maskz_loadu_ps(tm, k + dfull);
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, q0 + dfull), kv, a0);
                a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, q1 + dfull), kv, a1);
                a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, q2 + dfull), kv, a2);
                a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, q3 + dfull), kv, a3);
            }
            float s4[4];
            _mm_storeu_ps(s4, hsum4(a0, a1, a2, a3));
            for (int i = 0; i < 4; i++) S[(size_t)(r + i) * TILE + j] = s4[i] * scale;
        }
        for (; r < nq; r++) {
            const float *q0 = Q + (size_t)r * hd;
            __m512 a0 = _mm512_setzero_ps();
            for (int d = 0; d < dfull; d += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q0 + d), _mm512_loadu_ps(k + d), a0);
            if (tm) a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tm, q0 + dfull), _mm512_maskz_loadu_ps(tm, k + dfull), a0);
            S[(size_t)r * TILE + j] = _mm512_reduce_add_ps(a0) * scale;
        }
    }
}

/* acc[i] = acc[i] * corr[i] + sum_t P[i][t] V[tt+t] for NR rows, t < nt;
 * 32 columns at a time so that 2*NR accumulators stay in registers. */
BN_INLINE void pv_rows(const int NR, const float *P, const float *corr, float *acc, int hd, const float *V, size_t ld,
                       int tt, int nt) {
    for (int d = 0; d < hd; d += 32) {
        const __mmask16 m0 = lanes(hd - d), m1 = lanes(hd - d - 16);
        __m512 c0[8], c1[8];
        for (int i = 0; i < NR; i++) {
            const __m512 w = _mm512_set1_ps(corr[i]);
            c0[i] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m0, acc + (size_t)i * hd + d), w);
            c1[i] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m1, acc + (size_t)i * hd + d + 16), w);
        }
        for (int t = 0; t < nt; t++) {
            const float *v = V + (size_t)(tt + t) * ld + d;
            const __m512 v0 = _mm512_maskz_loadu_ps(m0, v), v1 = _mm512_maskz_loadu_ps(m1, v + 16);
            for (int i = 0; i < NR; i++) {
                const __m512 p = _mm512_set1_ps(P[(size_t)i * TILE + t]);
                c0[i] = _mm512_fmadd_ps(p, v0, c0[i]);
                c1[i] = _mm512_fmadd_ps(p, v1, c1[i]);
            }
        }
        for (int i = 0; i < NR; i++) {
            _mm512_mask_storeu_ps(acc + (size_t)i * hd + d, m0, c0[i]);
            _mm512_mask_storeu_ps(acc + (size_t)i * hd + d + 16, m1, c1[i]);
        }
    }
}

static void pv_group(int nr, const float *P, const float *corr, float *acc, int hd, const float *V, size_t ld, int tt,
                     int nt) {
    switch (nr) {
    case 1: pv_rows(1, P, corr, acc, hd, V, ld, tt, nt); break;
    case 2: pv_rows(2, P, corr, acc, hd, V, ld, tt, nt); break;
    case 3: pv_rows(3, P, corr, acc, hd, V, ld, tt, nt); break;
    case 4: pv_rows(4, P, corr, acc, hd, V, ld, tt, nt); break;
    case 5: pv_rows(5, P, corr, acc, hd, V, ld, tt, nt); break;
    case 6: pv_rows(6, P, corr, acc, hd, V, ld, tt, nt); break;
    case 7: pv_rows(7, P, corr, acc, hd, V, ld, tt, nt); break;
    default: pv_rows(8, P, corr, acc, hd, V, ld, tt, nt); break;
    }
}

static void avx512_attn(const float *Q, int nq, const int32_t *lim, const float *K, const float *V, size_t ld, int t0,
                        int t1, int hd, float scale, float *mx, float *sum, float *acc, float *scratch) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    float corr[8];
    int nv[8];
    for (int tt = t0; tt < t1; tt += TILE) {
        const int te = tt + TILE < t1 ? tt + TILE : t1, w = te - tt;
        scores(Q, nq, hd, K, ld, tt, te, scale, scratch);
        for (int g = 0; g < nq; g += 8) {
            const int nr = nq - g < 8 ? nq - g : 8;
            int nt = 0;
            /* online-softmax update of each row; P overwrites S, zero past the row's limit */
            for (int i = 0; i < nr; i++) {
                const int r = g + i;
                float *s = scratch + (size_t)r * TILE;
                const int end = lim[r] < te ? lim[r] : te;
                nv[i] = end - tt;
                corr[i] = 1.0f;
                if (nv[i] <= 0) {
                    for (int j = 0; j < w; j += 16) _mm512_mask_storeu_ps(s + j, lanes(w - j), _mm512_setzero_ps());
                    continue;
                }
                if (nv[i] > nt) nt = nv[i];
                __m512 vm = ninf;
                for (int j = 0; j < nv[i]; j += 16) vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(ninf, lanes(nv[i] - j), s + j));
                const float m = fmaxf(mx[r], _mm512_reduce_max_ps(vm));
                corr[i] = mx[r] == -INFINITY ? 0.0f : expf(mx[r] - m);
                const __m512 vmx = _mm512_set1_ps(m);
                __m512 vs = _mm512_setzero_ps();
                for (int j = 0; j < w; j += 16) {
                    const __mmask16 valid = lanes(nv[i] - j);
                    const __m512 x = _mm512_mask_loadu_ps(ninf, valid, s + j);
                    const __m512 p = _mm512_maskz_mov_ps(valid, exp16(_mm512_sub_ps(x, vmx)));
                    vs = _mm512_add_ps(vs, p);
                    _mm512_mask_storeu_ps(s + j, lanes(w - j), p);
                }
                sum[r] = sum[r] * corr[i] + _mm512_reduce_add_ps(vs);
                mx[r] = m;
            }
            if (nt > 0) pv_group(nr, scratch + (size_t)g * TILE, corr, acc + (size_t)g * hd, hd, V, ld, tt, nt);
        }
    }
}

bn_attn_fn bn_attn_avx512(void) { return avx512_attn; }

#else

bn_attn_fn bn_attn_avx512(void) { return NULL; }

#endif
