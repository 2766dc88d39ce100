/* attention_avx2.c — bn_attn_fn with AVX2 + FMA (compiled with those flags,
 * CMakeLists.txt; used only after runtime detection). The tile walk of
 * attention_avx512.c on 8-lane vectors: scores for groups of four rows, an
 * online-softmax update per row, P V for groups of four rows 16 columns at a
 * time. Tails of head dims and tiles use vmaskmovps. */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>

#define BN_INLINE static inline __attribute__((always_inline))
#define TILE BN_ATTN_TILE

/* Lanes [0, k) set (k clamped to 0..8), as a vmaskmovps mask. */
BN_INLINE __m256i lanes(int k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* exp(x) for x <= 0: Cody-Waite reduction, degree-7 Taylor of e^r, 2^n built
 * in the exponent bits; x is clamped at -87 so that n stays >= -126
 * (e^-87 ~ 1.6e-38: below that the true value is negligible next to the
 * row's maximum, which contributes 1). */
BN_INLINE __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

BN_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 all = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(all), _mm256_extractf128_ps(all, 1));
}

BN_INLINE float hsum(__m256 a) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

BN_INLINE float hmax(__m256 a) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Scores of rows r..r+3 against K rows t and t+1: 6 loads per 8 FMAs (one
 * K row against four rows needs 5 per 4; 16 ymm registers allow no more). */
BN_INLINE void scores4x2(const float *Q, int r, int hd, const float *K, size_t ld, int t, int tt, float scale,
                         float *S, __m256i tm, int dfull) {
    const float *q0 = Q + (size_t)r * hd, *q1 = q0 + hd, *q2 = q1 + hd, *q3 = q2 + hd;
    const float *k0 = K + (size_t)t * ld, *k1 = k0 + ld;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
#define S4X2_STEP(LOAD)                                                                       \
    do {                                                                                      \
        const __m256 x = LOAD(k0), y = LOAD(k1);                                              \
        __m256 q = LOAD(q0);                                                                  \
        a0 = _mm256_fmadd_ps(q, x, a0), b0 = _mm256_fmadd_ps(q, y, b0);                      \
        q = LOAD(q1);                                                                         \
        a1 = _mm256_fmadd_ps(q, x, a1), b1 = _mm256_fmadd_ps(q, y, b1);                       \
        q = LOAD(q2);                                                                         \
        a2 = _mm256_fmadd_ps(q, x, a2), b2 = _mm256_fmadd_ps(q, y, b2);                       \
        q = LOAD(q3);                                                                         \
        a3 = _mm256_fmadd_ps(q, x, a3), b3 = _mm256_fmadd_ps(q, y, b3);                       \
    } while (0)
#define S4X2_FULL(p) _mm256_loadu_ps((p) + d)
#define S4X2_TAIL(p) _mm256_maskload_ps((p) + dfull, tm)
    for (int d = 0; d < dfull; d += 8) S4X2_STEP(S4X2_FULL);
    if (dfull < hd) S4X2_STEP(S4X2_TAIL);
#undef S4X2_STEP
#undef S4X2_FULL
#undef S4X2_TAIL
    float sa[4], sb[4];
    _mm_storeu_ps(sa, hsum4(a0, a1, a2, a3));
    _mm_storeu_ps(sb, hsum4(b0, b1, b2, b3));
    for (int i = 0; i < 4; i++) {
        S[(size_t)(r + i) * TILE + (t - tt)] = sa[i] * scale;
        S[(size_t)(r + i) * TILE + (t + 1 - tt)] = sb[i] * scale;
    }
}

static void scores(const float *Q, int nq, int hd, const float *K, size_t ld, int tt, int te, float scale, float *S) {
    const __m256i tm = lanes(hd % 8);
    const int dfull = hd - hd % 8;
    const int nq4 = nq - nq % 4;
    int t = tt;
    if (nq4 > 0)
        for (; t + 2 <= te; t += 2)
            for (int r = 0; r < nq4; r += 4) scores4x2(Q, r, hd, K, ld, t, tt, scale, S, tm, dfull);
    /* rows past nq4 for the K rows done above, then every row for the rest */
    for (int t2 = tt; t2 < t; t2++)
        for (int r = nq4; r < nq; r++) {
            const float *q0 = Q + (size_t)r * hd, *k = K + (size_t)t2 * ld;
            __m256 a0 = _mm256_setzero_ps();
            for (int d = 0; d < dfull; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + d), _mm256_loadu_ps(k + d), a0);
            if (dfull < hd) a0 = _mm256_fmadd_ps(_mm256_maskload_ps(q0 + dfull, tm), _mm256_maskload_ps(k + dfull, tm), a0);
            S[(size_t)r * TILE + (t2 - tt)] = hsum(a0) * scale;
        }
    for (; t < te; t++) {
        const float *k = K + (size_t)t * ld;
        const int j = t - tt;
        int r = 0;
        for (; r + 4 <= nq; r += 4) {
            const float *q0 = Q + (size_t)r * hd, *q1 = q0 + hd, *q2 = q1 + hd, *q3 = q2 + hd;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int d = 0; d < dfull; d += 8) {
                const __m256 kv = _mm256_loadu_ps(k + d);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + d), kv, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + d), kv, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + d), kv, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q3 + d), kv, a3);
            }
            if (dfull < hd) {
                const __m256 kv = _mm256_maskload_ps(k + dfull, tm);
                a0 = _mm256_fmadd_ps(_mm256_maskload_ps(q0 + dfull, tm), kv, a0);
                a1 = _mm256_fmadd_ps(_mm256_maskload_ps(q1 + dfull, tm), kv, a1);
                a2 = _mm256_fmadd_ps(_mm256_maskload_ps(q2 + dfull, tm), kv, a2);
                a3 = _mm256_fmadd_ps(_mm256_maskload_ps(q3 + dfull, tm), kv, a3);
            }
            float s4[4];
            _mm_storeu_ps(s4, hsum4(a0, a1, a2, a3));
            for (int i = 0; i < 4; i++) S[(size_t)(r + i) * TILE + j] = s4[i] * scale;
        }
        for (; r < nq; r++) {
            const float *q0 = Q + (size_t)r * hd;
            __m256 a0 = _mm256_setzero_ps();
            for (int d = 0; d < dfull; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + d), _mm256_loadu_ps(k + d), a0);
            if (dfull < hd) a0 = _mm256_fmadd_ps(_mm256_maskload_ps(q0 + dfull, tm), _mm256_maskload_ps(k + dfull, tm), a0);
            S[(size_t)r * TILE + j] = hsum(a0) * scale;
        }
    }
}

BN_INLINE void pv_rows(const int NR, const float *P, const float *corr, float *acc, int hd, const float *V, size_t ld,
                       int tt, int nt) {
    for (int d = 0; d < hd; d += 16) {
        const __m256i m0 = lanes(hd - d), m1 = lanes(hd - d - 8);
        __m256 c0[4], c1[4];
        for (int i = 0; i < NR; i++) {
            const __m256 w = _mm256_set1_ps(corr[i]);
            c0[i] = _mm256_mul_ps(_mm256_maskload_ps(acc + (size_t)i * hd + d, m0), w);
            c1[i] = _mm256_mul_ps(_mm256_maskload_ps(acc + (size_t)i * hd + d + 8, m1), w);
        }
        for (int t = 0; t < nt; t++) {
            const float *v = V + (size_t)(tt + t) * ld + d;
            const __m256 v0 = _mm256_maskload_ps(v, m0), v1 = _mm256_maskload_ps(v + 8, m1);
            for (int i = 0; i < NR; i++) {
                const __m256 p = _mm256_broadcast_ss(P + (size_t)i * TILE + t);
                c0[i] = _mm256_fmadd_ps(p, v0, c0[i]);
                c1[i] = _mm256_fmadd_ps(p, v1, c1[i]);
            }
        }
        for (int i = 0; i < NR; i++) {
            _mm256_maskstore_ps(acc + (size_t)i * hd + d, m0, c0[i]);
            _mm256_maskstore_ps(acc + (size_t)i * hd + d + 8, m1, c1[i]);
        }
    }
}

static void pv_group(int nr, const float *P, const float *corr, float *acc, int hd, const float *V, size_t ld, int tt,
                     int nt) {
    switch (nr) {
    case 1: pv_rows(1, P, corr, acc, hd, V, ld, tt, nt); break;
    case 2: pv_rows(2, P, corr, acc, hd, V, ld, tt, nt); break;
    case 3: pv_rows(3, P, corr, acc, hd, V, ld, tt, nt); break;
    default: pv_rows(4, P, corr, acc, hd, V, ld, tt, nt); break;
    }
}

static void avx2_attn(const float *Q, int nq, const int32_t *lim, const float *K, const float *V, size_t ld, int t0,
                      int t1, int hd, float scale, float *mx, float *sum, float *acc, float *scratch) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    float corr[4];
    for (int tt = t0; tt < t1; tt += TILE) {
        const int te = tt + TILE < t1 ? tt + TILE : t1, w = te - tt;
        scores(Q, nq, hd, K, ld, tt, te, scale, scratch);
        for (int g = 0; g < nq; g += 4) {
            const int nr = nq - g < 4 ? nq - g : 4;
            int nt = 0;
            for (int i = 0; i < nr; i++) {
                const int r = g + i;
                float *s = scratch + (size_t)r * TILE;
                const int end = lim[r] < te ? lim[r] : te, nv = end - tt;
                corr[i] = 1.0f;
                if (nv <= 0) {
                    for (int j = 0; j < w; j++) s[j] = 0.0f;
                    continue;
                }
                if (nv > nt) nt = nv;
                __m256 vm = ninf;
                for (int j = 0; j < nv; j += 8) {
                    const __m256i valid = lanes(nv - j);
                    vm = _mm256_max_ps(vm, _mm256_blendv_ps(ninf, _mm256_maskload_ps(s + j, valid), _mm256_castsi256_ps(valid)));
                }
                const float m = fmaxf(mx[r], hmax(vm));
                corr[i] = mx[r] == -INFINITY ? 0.0f : expf(mx[r] - m);
                const __m256 vmx = _mm256_set1_ps(m);
                __m256 vs = _mm256_setzero_ps();
                for (int j = 0; j < w; j += 8) {
                    const __m256i valid = lanes(nv - j);
                    const __m256 x = _mm256_maskload_ps(s + j, valid);
                    const __m256 p = _mm256_and_ps(exp8(_mm256_sub_ps(x, vmx)), _mm256_castsi256_ps(valid));
                    vs = _mm256_add_ps(vs, p);
                    _mm256_maskstore_ps(s + j, lanes(w - j), p);
                }
                sum[r] = sum[r] * corr[i] + hsum(vs);
                mx[r] = m;
            }
            if (nt > 0) pv_group(nr, scratch + (size_t)g * TILE, corr, acc + (size_t)g * hd, hd, V, ld, tt, nt);
        }
    }
}

bn_attn_fn bn_attn_avx2(void) { return avx2_attn; }

#else

bn_attn_fn bn_attn_avx2(void) { return NULL; }

#endif
