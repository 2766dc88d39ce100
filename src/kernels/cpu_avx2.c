/* cpu_avx2.c — AVX2 + FMA + F16C kernels. Compiled with those flags
 * (CMakeLists.txt) and only called after runtime detection.
 *
 * Ternary products use unsigned codes u in {0,1,2} (0b11 is cleared to 0b01
 * first) with vpmaddubsw (u8 x s8 -> pairs summed in int16: |2*128*2| per
 * pair, far from saturation even after adding the four groups of a block),
 * then vpmaddwd by ones to int32, and subtract x_sum since w = u - 1. */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "prefetch_x86.h"
#include <math.h>
#include <string.h>

#define BN_INLINE static inline __attribute__((always_inline))

/* GCC's partial redundancy elimination makes the register allocator copy
 * every accumulator once per loop iteration (and spill some) in the
 * multi-row kernels; without it the loops are clean. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-pre")
#endif

BN_INLINE int32_t hsum8(__m256i v) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return _mm_cvtsi128_si32(h);
}

BN_INLINE float hsum8f(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* ---- activation quantization ------------------------------------------- */

static __m256i tail_mask8(int n) { /* lanes [0, n) set, 0 <= n <= 8 */
    const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), i);
}

static void avx2_quantize_act(const float *x, size_t ldx, int k, int n_tokens, int8_t *q,
                              size_t ldq, float *x_scale, int32_t *x_sum) {
    const int kp = bn_pad_k(k);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
    const int kv = k & ~7;
    const __m256i tm = tail_mask8(k - kv);
    /* gathers bytes 0, 4, 8, 12 of each 128-bit lane (the low byte of each
     * saturated int32, already in [-128, 127] after the float clamp) */
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, -1);
    for (int n = 0; n < n_tokens; n++) {
        const float *xr = x + (size_t)n * ldx;
        int8_t *qr = q + (size_t)n * ldq;
        __m256 mx = _mm256_setzero_ps();
        /* vmaxps returns the second operand on NaN: NaNs are skipped as by fmaxf */
        for (int i = 0; i < kv; i += 8)
            mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xr + i), absmask), mx);
        if (kv < k)
            mx = _mm256_max_ps(_mm256_and_ps(_mm256_maskload_ps(xr + kv, tm), absmask), mx);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = fmaxf(_mm_cvtss_f32(m4), 1e-5f);
        const float s = (1.0f / amax) * 127.0f; /* as ref.c: reciprocal, then * 127 */
        const __m256 sv = _mm256_set1_ps(s);
        __m256i sum = _mm256_setzero_si256();
        for (int i = 0; i < k; i += 8) {
            const int tail = i + 8 > k;
            const __m256 xv = tail ? _mm256_maskload_ps(xr + i, tm) : _mm256_loadu_ps(xr + i);
            __m256 v = _mm256_mul_ps(xv, sv);
            v = _mm256_min_ps(_mm256_max_ps(v, lo), hi); /* NaN -> -128 like fmaxf */
            const __m256i iv = _mm256_cvtps_epi32(v);    /* round half to even */
            sum = _mm256_add_epi32(sum, iv);
            const __m256i b = _mm256_shuffle_epi8(iv, pick);
            const uint32_t w0 = (uint32_t)_mm256_extract_epi32(b, 0);
            const uint32_t w1 = (uint32_t)_mm256_extract_epi32(b, 4);
            if (!tail) {
                memcpy(qr + i, &w0, 4);
                memcpy(qr + i + 4, &w1, 4);
            } else {
                uint8_t tmp[8];
                memcpy(tmp, &w0, 4);
                memcpy(tmp + 4, &w1, 4);
                memcpy(qr + i, tmp, (size_t)(k - i));
            }
        }
        if (kp > k) memset(qr + k, 0, (size_t)(kp - k));
        x_scale[n] = 1.0f / s;
        if (x_sum) x_sum[n] = hsum8(sum);
    }
}

static int32_t row_sum_i8(const int8_t *q, int kp) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < kp; i += 32)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(
                                        ones8, _mm256_loadu_si256((const __m256i *)(q + i))),
                                    ones16));
    return hsum8(acc);
}

/* Clear the high bit of every 0b11 code: u = b & ~((b << 1) & 0xAA). The
 * shift is a 32-bit add: bits crossing a byte land on even bits, masked. */
BN_INLINE __m256i fix_codes(__m256i v, __m256i c_aa) {
    return _mm256_andnot_si256(_mm256_and_si256(_mm256_add_epi32(v, v), c_aa), v);
}

/* ---- GEMV: R rows per pass share the activation loads ------------------ */

/* Per 32-byte block and row: two nibble lookups (vpshufb) per nibble give
 * the four fixed codes (0b11 -> 1) of the block's four groups at once,
 * instead of fixing, shifting and masking (10 ops -> 7); the four maddubs
 * products are summed in int16 across up to 16 blocks (a block adds at
 * most 4 x 2 x 2 x 128 = 2048 in magnitude: 16 blocks reach -32768 /
 * +32512, exact) before one madd widens them. */
#define GV2_BLK16 16

BN_INLINE void gemv_rows(int R, const uint8_t *w, size_t rb, const int8_t *q, int nblk,
                         int32_t *out) {
    /* codes of the low / high 2 bits of a nibble, 0b11 read as 0b01 */
    const __m256i t_lo = _mm256_setr_epi8(0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1,
                                          0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1);
    const __m256i t_hi = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1,
                                          0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1);
    const __m256i m0f = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256i acc[4];
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_si256();
    for (int b0 = 0; b0 < nblk; b0 += GV2_BLK16) {
        const int b1 = nblk - b0 < GV2_BLK16 ? nblk : b0 + GV2_BLK16;
        __m256i s16[4];
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) s16[r] = _mm256_setzero_si256();
        for (int b = b0; b < b1; b++) {
            const int8_t *qb = q + 128 * b;
            const __m256i q0 = _mm256_loadu_si256((const __m256i *)qb);
            const __m256i q1 = _mm256_loadu_si256((const __m256i *)(qb + 32));
            const __m256i q2 = _mm256_loadu_si256((const __m256i *)(qb + 64));
            const __m256i q3 = _mm256_loadu_si256((const __m256i *)(qb + 96));
            #pragma GCC unroll 16
            for (int r = 0; r < R; r++) {
                const uint8_t *wr = w + (size_t)r * rb + 32 * (size_t)b;
                /* rows are adjacent, the weights one linear stream: fetch the
                 * line 12 KB on into L2 and the line 1 KB on into L1 (as in
                 * cpu_avx512.c: t0 prefetches from DRAM ran out of L1 misses) */
                if (!(b & 1)) {
                    _mm_prefetch((const char *)wr + 12288, _MM_HINT_T1);
                    _mm_prefetch((const char *)wr + 1024, _MM_HINT_T0);
                }
                const __m256i v = _mm256_loadu_si256((const __m256i *)wr);
                const __m256i lo = _mm256_and_si256(v, m0f);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f);
                /* element b: bits 7:6, b+32: 5:4, b+64: 3:2, b+96: 1:0 */
                __m256i p = _mm256_maddubs_epi16(_mm256_shuffle_epi8(t_hi, hi), q0);
                p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_shuffle_epi8(t_lo, hi), q1));
                p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_shuffle_epi8(t_hi, lo), q2));
                p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_shuffle_epi8(t_lo, lo), q3));
                s16[r] = _mm256_add_epi16(s16[r], p);
            }
        }
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(s16[r], ones));
    }
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}

static void gemv(const uint8_t *W, int k, const int8_t *q, float xs, int32_t xsum,
                 float w_scale, float *y, int m0, int m1) {
    const size_t rb = bn_t2r_row_bytes(k);
    const int nblk = bn_pad_k(k) / BN_QK;
    { /* the loop prefetches 12 KB ahead: start the first stretch now */
        const char *w0 = (const char *)(W + (size_t)m0 * rb);
        const size_t len = (size_t)(m1 - m0) * rb;
        for (size_t o = 0; o < len && o < 12288; o += 64) _mm_prefetch(w0 + o, _MM_HINT_T1);
    }
    int32_t acc[4];
    int m = m0;
    for (; m + 4 <= m1; m += 4) {
        gemv_rows(4, W + (size_t)m * rb, rb, q, nblk, acc);
        for (int r = 0; r < 4; r++) y[m + r] = (float)(acc[r] - xsum) * w_scale * xs;
    }
    for (; m < m1; m++) {
        gemv_rows(1, W + (size_t)m * rb, rb, q, nblk, acc);
        y[m] = (float)(acc[0] - xsum) * w_scale * xs;
    }
}

/* ---- GEMM: a panel of 16 rows x KC unpacked once into VNNI order --------
 * buf[k/4][row][4] u8 codes (lane = row), so a token's 4 activations are one
 * broadcast dword; a 4-token tile keeps 8 accumulators in registers.
 * Partial sums between K blocks live in y as int32 bits. */

#define G2_ROWS 16
#define G2_NR 4
#define G2_KC 512

BN_INLINE void store_groups(uint8_t *o, __m256i x, __m256i m3) {
    _mm256_store_si256((__m256i *)(o + 0 * 8 * G2_ROWS * 4), _mm256_and_si256(_mm256_srli_epi32(x, 6), m3));
    _mm256_store_si256((__m256i *)(o + 1 * 8 * G2_ROWS * 4), _mm256_and_si256(_mm256_srli_epi32(x, 4), m3));
    _mm256_store_si256((__m256i *)(o + 2 * 8 * G2_ROWS * 4), _mm256_and_si256(_mm256_srli_epi32(x, 2), m3));
    _mm256_store_si256((__m256i *)(o + 3 * 8 * G2_ROWS * 4), _mm256_and_si256(x, m3));
}

BN_INLINE __m256i load_row_block(const uint8_t *p, int valid) {
    return valid ? _mm256_loadu_si256((const __m256i *)p) : _mm256_setzero_si256();
}

/* One 32-byte block of 8 rows (rows >= rv read as code 0) transposed to 8
 * vectors "dword d of rows 0..7" (8x8 dword transpose: gathers are slow on
 * several AVX2 CPUs), codes fixed and split into groups at o. */
static void unpack8(const uint8_t *base, size_t rb, int rv, uint8_t *o) {
    const __m256i c_aa = _mm256_set1_epi8((char)0xAA), m3 = _mm256_set1_epi8(3);
#define UP_LD(i) const __m256i z##i = fix_codes(load_row_block(base + (size_t)(i) * rb, (i) < rv), c_aa);
    UP_LD(0) UP_LD(1) UP_LD(2) UP_LD(3) UP_LD(4) UP_LD(5) UP_LD(6) UP_LD(7)
#undef UP_LD
    const __m256i t0 = _mm256_unpacklo_epi32(z0, z1), t1 = _mm256_unpackhi_epi32(z0, z1);
    const __m256i t2 = _mm256_unpacklo_epi32(z2, z3), t3 = _mm256_unpackhi_epi32(z2, z3);
    const __m256i t4 = _mm256_unpacklo_epi32(z4, z5), t5 = _mm256_unpackhi_epi32(z4, z5);
    const __m256i t6 = _mm256_unpacklo_epi32(z6, z7), t7 = _mm256_unpackhi_epi32(z6, z7);
    /* u0: 128-bit lanes = d0 rows 0-3, d4 rows 0-3 (u4: rows 4-7) */
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    store_groups(o + 0 * G2_ROWS * 4, _mm256_permute2x128_si256(u0, u4, 0x20), m3);
    store_groups(o + 4 * G2_ROWS * 4, _mm256_permute2x128_si256(u0, u4, 0x31), m3);
    store_groups(o + 1 * G2_ROWS * 4, _mm256_permute2x128_si256(u1, u5, 0x20), m3);
    store_groups(o + 5 * G2_ROWS * 4, _mm256_permute2x128_si256(u1, u5, 0x31), m3);
    store_groups(o + 2 * G2_ROWS * 4, _mm256_permute2x128_si256(u2, u6, 0x20), m3);
    store_groups(o + 6 * G2_ROWS * 4, _mm256_permute2x128_si256(u2, u6, 0x31), m3);
    store_groups(o + 3 * G2_ROWS * 4, _mm256_permute2x128_si256(u3, u7, 0x20), m3);
    store_groups(o + 7 * G2_ROWS * 4, _mm256_permute2x128_si256(u3, u7, 0x31), m3);
}

/* Unpack rows [0, rows) of the panel, blocks [b0, b0 + nb), into buf. */
static void unpack_panel(const uint8_t *w, size_t rb, int rows, int b0, int nb, uint8_t *buf) {
    for (int v = 0; v < G2_ROWS / 8; v++) {
        const int rv = rows - 8 * v;
        for (int b = 0; b < nb; b++) {
            uint8_t *o = buf + (size_t)(32 * b) * (G2_ROWS * 4) + 32 * v;
            if (rv <= 0) {
                for (int j = 0; j < 32; j++)
                    _mm256_store_si256((__m256i *)(o + (size_t)j * G2_ROWS * 4), _mm256_setzero_si256());
                continue;
            }
            unpack8(w + (size_t)(8 * v) * rb + 32 * (size_t)(b0 + b), rb, rv, o);
        }
    }
}

BN_INLINE void store_masked8(float *p, int n, __m256 v) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else if (n > 0) _mm256_maskstore_ps(p, tail_mask8(n), v);
}
BN_INLINE __m256i load_masked8i(const float *p, int n) {
    if (n >= 8) return _mm256_loadu_si256((const __m256i *)p);
    if (n <= 0) return _mm256_setzero_si256();
    return _mm256_maskload_epi32((const int *)p, tail_mask8(n));
}

BN_INLINE void gemm_tile(int nr, const uint8_t *buf, int kc4, const int8_t *q, size_t ldq,
                         int first, int last, const int32_t *xsum, const float *xs,
                         float w_scale, float *y, size_t ldy, int rows) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a0[G2_NR], a1[G2_NR];
    #pragma GCC unroll 16
    for (int t = 0; t < nr; t++) {
        if (first) {
            a0[t] = a1[t] = _mm256_setzero_si256();
        } else {
            a0[t] = load_masked8i(y + (size_t)t * ldy, rows);
            a1[t] = load_masked8i(y + (size_t)t * ldy + 8, rows - 8);
        }
    }
    for (int j = 0; j < kc4; j += 2) { /* two k4 steps summed in int16 before widening */
        const __m256i w0 = _mm256_load_si256((const __m256i *)(buf + (size_t)j * 64));
        const __m256i w1 = _mm256_load_si256((const __m256i *)(buf + (size_t)j * 64 + 32));
        const __m256i w2 = _mm256_load_si256((const __m256i *)(buf + (size_t)j * 64 + 64));
        const __m256i w3 = _mm256_load_si256((const __m256i *)(buf + (size_t)j * 64 + 96));
        #pragma GCC unroll 16
        for (int t = 0; t < nr; t++) {
            int32_t qd0, qd1;
            memcpy(&qd0, q + (size_t)t * ldq + 4 * (size_t)j, 4);
            memcpy(&qd1, q + (size_t)t * ldq + 4 * (size_t)j + 4, 4);
            const __m256i b0 = _mm256_set1_epi32(qd0), b1 = _mm256_set1_epi32(qd1);
            const __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, b0), _mm256_maddubs_epi16(w2, b1));
            const __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(w1, b0), _mm256_maddubs_epi16(w3, b1));
            a0[t] = _mm256_add_epi32(a0[t], _mm256_madd_epi16(p0, ones));
            a1[t] = _mm256_add_epi32(a1[t], _mm256_madd_epi16(p1, ones));
        }
    }
    const __m256 ws = _mm256_set1_ps(w_scale);
    #pragma GCC unroll 16
    for (int t = 0; t < nr; t++) {
        float *yt = y + (size_t)t * ldy;
        if (last) {
            const __m256i s = _mm256_set1_epi32(xsum[t]);
            const __m256 x = _mm256_set1_ps(xs[t]);
            store_masked8(yt, rows, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a0[t], s)), ws), x));
            store_masked8(yt + 8, rows - 8, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a1[t], s)), ws), x));
        } else {
            store_masked8(yt, rows, _mm256_castsi256_ps(a0[t]));
            store_masked8(yt + 8, rows - 8, _mm256_castsi256_ps(a1[t]));
        }
    }
}

#define G2_TILE(NR)                                                                            \
    static void gemm_tile_##NR(const uint8_t *buf, int kc4, const int8_t *q, size_t ldq,       \
                               int first, int last, const int32_t *xsum, const float *xs,      \
                               float w_scale, float *y, size_t ldy, int rows) {                \
        gemm_tile(NR, buf, kc4, q, ldq, first, last, xsum, xs, w_scale, y, ldy, rows);         \
    }
G2_TILE(1) G2_TILE(2) G2_TILE(3) G2_TILE(4)


static void gemm(const uint8_t *W, int k, const int8_t *q, size_t ldq, const float *xs,
                 const int32_t *xsum, int n_tokens, float w_scale, float *y, size_t ldy, int m0,
                 int m1) {
    const int kp = bn_pad_k(k);
    const size_t rb = bn_t2r_row_bytes(k);
    const int nblk = kp / BN_QK, kcb = G2_KC / BN_QK;
    _Alignas(64) uint8_t buf[G2_KC * G2_ROWS];
    for (int m = m0; m < m1; m += G2_ROWS) {
        const int rows = m1 - m < G2_ROWS ? m1 - m : G2_ROWS;
        for (int b = 0; b < nblk; b += kcb) {
            const int nb = nblk - b < kcb ? nblk - b : kcb;
            unpack_panel(W + (size_t)m * rb, rb, rows, b, nb, buf);
            const int first = b == 0, last = b + nb == nblk;
            int pm = m, pb = b + kcb; /* the next panel */
            if (pb >= nblk) pm = m + G2_ROWS, pb = 0;
            const int prows = m1 - pm < G2_ROWS ? m1 - pm : G2_ROWS;
            const int pnb = nblk - pb < kcb ? nblk - pb : kcb;
            const int ntiles = (n_tokens + G2_NR - 1) / G2_NR;
            for (int n = 0; n < n_tokens; n += G2_NR) {
                const int nr = n_tokens - n < G2_NR ? n_tokens - n : G2_NR;
                if (prows > 0)
                    bn_prefetch_panel(W + (size_t)pm * rb, rb, prows, pb, pnb, n / G2_NR, ntiles);
                const int8_t *qn = q + (size_t)n * ldq + (size_t)b * BN_QK;
                float *yn = y + (size_t)n * ldy + m;
                switch (nr) {
                case 4: gemm_tile_4(buf, nb * 32, qn, ldq, first, last, xsum + n, xs + n, w_scale, yn, ldy, rows); break;
                case 3: gemm_tile_3(buf, nb * 32, qn, ldq, first, last, xsum + n, xs + n, w_scale, yn, ldy, rows); break;
                case 2: gemm_tile_2(buf, nb * 32, qn, ldq, first, last, xsum + n, xs + n, w_scale, yn, ldy, rows); break;
                default: gemm_tile_1(buf, nb * 32, qn, ldq, first, last, xsum + n, xs + n, w_scale, yn, ldy, rows); break;
                }
            }
        }
    }
}

static void avx2_tgemm(const uint8_t *W, int k, const int8_t *q, size_t ldq,
                       const float *x_scale, const int32_t *x_sum, int n_tokens, float w_scale,
                       float *y, size_t ldy, int m0, int m1) {
    if (m1 <= m0 || n_tokens <= 0) return;
    if (k <= 0) { /* empty dot products, as the reference writes them */
        for (int n = 0; n < n_tokens; n++)
            for (int m = m0; m < m1; m++) y[(size_t)n * ldy + (size_t)m] = 0.0f * w_scale * x_scale[n];
        return;
    }
    if (!x_sum) {
        int32_t sums[64];
        for (int n0 = 0; n0 < n_tokens; n0 += 64) {
            const int nn = n_tokens - n0 < 64 ? n_tokens - n0 : 64;
            for (int n = 0; n < nn; n++) sums[n] = row_sum_i8(q + (size_t)(n0 + n) * ldq, bn_pad_k(k));
            avx2_tgemm(W, k, q + (size_t)n0 * ldq, ldq, x_scale + n0, sums, nn, w_scale,
                       y + (size_t)n0 * ldy, ldy, m0, m1);
        }
        return;
    }
    if (n_tokens <= 3) {
        /* few tokens: GEMV per token over row chunks that stay in L2 */
        const int mc = 196608 / (int)bn_t2r_row_bytes(k) / 4 * 4 + 4;
        for (int m = m0; m < m1; m += mc) {
            const int me = m1 - m < mc ? m1 : m + mc;
            for (int n = 0; n < n_tokens; n++)
                gemv(W, k, q + (size_t)n * ldq, x_scale[n], x_sum[n], w_scale, y + (size_t)n * ldy, m, me);
        }
        return;
    }
    gemm(W, k, q, ldq, x_scale, x_sum, n_tokens, w_scale, y, ldy, m0, m1);
}

/* ---- dense head --------------------------------------------------------- */

BN_INLINE __m256 load_row8(const void *E, bn_type et, size_t idx) {
    switch (et) {
    case BN_TYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)E + idx)));
    case BN_TYPE_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)E + idx))), 16));
    default: return _mm256_loadu_ps((const float *)E + idx);
    }
}

static float elem_f32(const void *E, bn_type et, size_t idx) {
    switch (et) {
    case BN_TYPE_F16: {
        const __m128i h = _mm_cvtsi32_si128(((const uint16_t *)E)[idx]);
        return _mm_cvtss_f32(_mm_cvtph_ps(h));
    }
    case BN_TYPE_BF16: {
        const uint32_t u = (uint32_t)((const uint16_t *)E)[idx] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    default: return ((const float *)E)[idx];
    }
}

BN_INLINE void head_tile(int R, int T, const void *E, bn_type et, int n_embd, const float *h,
                         size_t ldh, float *logits, size_t ldl, int v) {
    __m256 acc[4][3];
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    const int nv = n_embd & ~7;
    for (int i = 0; i < nv; i += 8) {
        __m256 hv[3];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) hv[t] = _mm256_loadu_ps(h + (size_t)t * ldh + i);
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const __m256 e = load_row8(E, et, (size_t)(v + r) * (size_t)n_embd + (size_t)i);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(e, hv[t], acc[r][t]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            float s = hsum8f(acc[r][t]);
            const size_t base = (size_t)(v + r) * (size_t)n_embd;
            for (int i = nv; i < n_embd; i++) s += elem_f32(E, et, base + (size_t)i) * h[(size_t)t * ldh + (size_t)i];
            logits[(size_t)t * ldl + (size_t)(v + r)] = s;
        }
}

#define HEAD_TILE(R, T)                                                                        \
    static void head_##R##x##T(const void *E, bn_type et, int n_embd, const float *h,          \
                               size_t ldh, float *logits, size_t ldl, int v) {                 \
        head_tile(R, T, E, et, n_embd, h, ldh, logits, ldl, v);                                 \
    }
HEAD_TILE(4, 1) HEAD_TILE(1, 1) HEAD_TILE(4, 3) HEAD_TILE(4, 2) HEAD_TILE(1, 3) HEAD_TILE(1, 2)

static void avx2_head(const void *E, bn_type et, int n_embd, const float *h, size_t ldh,
                      int n_tokens, float *logits, size_t ldl, int v0, int v1) {
    for (int n = 0; n < n_tokens;) {
        const int T = n_tokens - n >= 3 ? 3 : n_tokens - n;
        const float *hn = h + (size_t)n * ldh;
        float *ln = logits + (size_t)n * ldl;
        int v = v0;
        for (; v + 4 <= v1; v += 4) {
            if (T == 3) head_4x3(E, et, n_embd, hn, ldh, ln, ldl, v);
            else if (T == 2) head_4x2(E, et, n_embd, hn, ldh, ln, ldl, v);
            else head_4x1(E, et, n_embd, hn, ldh, ln, ldl, v);
        }
        for (; v < v1; v++) {
            if (T == 3) head_1x3(E, et, n_embd, hn, ldh, ln, ldl, v);
            else if (T == 2) head_1x2(E, et, n_embd, hn, ldh, ln, ldl, v);
            else head_1x1(E, et, n_embd, hn, ldh, ln, ldl, v);
        }
        n += T;
    }
}

/* ---- quantized head: 8/6/4-bit rows, f16 block scales ------------------
 * Codes become signed (c = u - off) and meet the int8 hidden state through
 * vpmaddubsw(|c|, sign(hq, c)): |c| <= 127 and |hq| <= 127 (quantize_act
 * gives -128 only for NaN inputs), so the int16 pair sums cannot saturate. */

BN_INLINE __m256i qh_dot32(__m256i c, __m256i q) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(c), _mm256_sign_epi8(q, c));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

BN_INLINE float f16_scalar(uint16_t h) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }

/* The 4 chunks of 32 signed codes of superblock sb: elements 32c .. 32c+31. */
BN_INLINE void qh2_unpack(int bits, const uint8_t *row, int sb, __m256i c[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    if (bits == 8) {
        const __m256i o = _mm256_set1_epi8((char)0x80);
        for (int i = 0; i < 4; i++)
            c[i] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(row + 128 * (size_t)sb + 32 * i)), o);
        return;
    }
    const uint8_t *p = row + (size_t)sb * (bits == 4 ? 64 : 96);
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)p);
    const __m256i x1 = _mm256_loadu_si256((const __m256i *)(p + 32));
    c[0] = _mm256_and_si256(x0, m4);
    c[1] = _mm256_and_si256(x1, m4);
    c[2] = _mm256_and_si256(_mm256_srli_epi16(x0, 4), m4);
    c[3] = _mm256_and_si256(_mm256_srli_epi16(x1, 4), m4);
    if (bits == 6) {
        const __m256i hb = _mm256_loadu_si256((const __m256i *)(p + 64));
        c[0] = _mm256_or_si256(c[0], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
        c[1] = _mm256_or_si256(c[1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
        c[2] = _mm256_or_si256(c[2], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
        c[3] = _mm256_or_si256(c[3], _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
    }
    const __m256i off = _mm256_set1_epi8(bits == 4 ? 8 : 32);
    for (int i = 0; i < 4; i++) c[i] = _mm256_sub_epi8(c[i], off);
}

BN_INLINE void qh2_row(int T, int bits, const uint16_t *d, const uint8_t *row, int nblk,
                       const int8_t *q, size_t ldq, const float *hs, float *out, size_t ldl) {
    __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0;
    for (int sb = 0; sb < nblk / 2; sb++) {
        __m256i c[4];
        qh2_unpack(bits, row, sb, c);
        const __m256 s0 = _mm256_set1_ps(f16_scalar(d[2 * sb]));
        const __m256 s1 = _mm256_set1_ps(f16_scalar(d[2 * sb + 1]));
        for (int t = 0; t < T; t++) {
            const int8_t *qt = q + (size_t)t * ldq + 128 * (size_t)sb;
            const __m256i a = _mm256_add_epi32(qh_dot32(c[0], _mm256_loadu_si256((const __m256i *)qt)),
                                               qh_dot32(c[1], _mm256_loadu_si256((const __m256i *)(qt + 32))));
            const __m256i b = _mm256_add_epi32(qh_dot32(c[2], _mm256_loadu_si256((const __m256i *)(qt + 64))),
                                               qh_dot32(c[3], _mm256_loadu_si256((const __m256i *)(qt + 96))));
            __m256 *f = t == 0 ? &f0 : t == 1 ? &f1 : &f2;
            *f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(b), s1, _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), s0, *f));
        }
    }
    if (T > 0) out[0] = hsum8f(f0) * hs[0];
    if (T > 1) out[ldl] = hsum8f(f1) * hs[1];
    if (T > 2) out[2 * ldl] = hsum8f(f2) * hs[2];
}

#define QH2_FN(T, B)                                                                             \
    static void qh2_row_##T##_##B(const uint16_t *d, const uint8_t *row, int nblk,               \
                                  const int8_t *q, size_t ldq, const float *hs, float *out,      \
                                  size_t ldl) {                                                  \
        qh2_row(T, B, d, row, nblk, q, ldq, hs, out, ldl);                                       \
    }
QH2_FN(1, 8) QH2_FN(2, 8) QH2_FN(3, 8) QH2_FN(1, 6) QH2_FN(2, 6) QH2_FN(3, 6)
QH2_FN(1, 4) QH2_FN(2, 4) QH2_FN(3, 4)

typedef void (*qh2_row_fn)(const uint16_t *, const uint8_t *, int, const int8_t *, size_t,
                           const float *, float *, size_t);

static void avx2_qhead(const bn_qhead *E, const int8_t *hq, size_t ldq, const float *h_scale,
                       int n_tokens, float *logits, size_t ldl, int v0, int v1) {
    const int bits = E->bits, nblk = E->nblk;
    if (bits != 8 && bits != 6 && bits != 4) {
        bn_ref_qhead(E, hq, ldq, h_scale, n_tokens, logits, ldl, v0, v1);
        return;
    }
    static const qh2_row_fn fns[3][3] = {
        {qh2_row_1_8, qh2_row_2_8, qh2_row_3_8},
        {qh2_row_1_6, qh2_row_2_6, qh2_row_3_6},
        {qh2_row_1_4, qh2_row_2_4, qh2_row_3_4},
    };
    const int bi = bits == 8 ? 0 : bits == 6 ? 1 : 2;
    for (int n = 0; n < n_tokens; n += 3) {
        const int T = n_tokens - n < 3 ? n_tokens - n : 3;
        const qh2_row_fn f = fns[bi][T - 1];
        for (int v = v0; v < v1; v++)
            f(E->scales + (size_t)v * (size_t)nblk, E->codes + (size_t)v * E->row_bytes, nblk,
              hq + (size_t)n * ldq, ldq, h_scale + n, logits + (size_t)n * ldl + (size_t)v, ldl);
    }
}

/* ---- f16 <-> f32 rows (F16C; the hardware rounds to nearest even) ---------- */

static void avx2_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = f16_scalar(src[i]);
}

static void avx2_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(src[i]), _MM_FROUND_TO_NEAREST_INT), 0);
}

static const bn_kernels avx2_table = {
    .name = "avx2",
    .quantize_act = avx2_quantize_act,
    .tgemm = avx2_tgemm,
    .head = avx2_head,
    .qhead = avx2_qhead,
    .f16_to_f32 = avx2_f16_to_f32,
    .f32_to_f16 = avx2_f32_to_f16,
};

const bn_kernels *bn_kernels_avx2(void) { return &avx2_table; }

#else

const bn_kernels *bn_kernels_avx2(void) { return NULL; }

#endif
