/* cpu_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) kernels. Compiled with the
 * AVX-512 flags (CMakeLists.txt) and only called after runtime detection.
 *
 * Ternary products use unsigned codes u in {0,1,2} (0b11 is first cleared to
 * 0b01, i.e. weight 0) against signed int8 activations with vpdpbusd
 * (u8 x s8 -> int32, exact), then subtract x_sum since w = u - 1. The float
 * epilogue is the reference's ((float)acc * w_scale) * x_scale[n]. */
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

/* ---- activation quantization ------------------------------------------- */

static void avx512_quantize_act(const float *x, size_t ldx, int k, int n_tokens,
                                int8_t *q, size_t ldq, float *x_scale, int32_t *x_sum) {
    const int kp = bn_pad_k(k);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    const int kv = k & ~15;
    const __mmask16 tm = (__mmask16)((1u << (k - kv)) - 1);
    for (int n = 0; n < n_tokens; n++) {
        const float *xr = x + (size_t)n * ldx;
        int8_t *qr = q + (size_t)n * ldq;
        /* vmaxps returns its second operand when one is NaN: NaNs are
         * skipped exactly like fmaxf(amax, NaN) in the reference */
        __m512 mx = _mm512_setzero_ps();
        for (int i = 0; i < kv; i += 16)
            mx = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(xr + i), absmask), mx);
        if (tm) mx = _mm512_max_ps(_mm512_and_ps(_mm512_maskz_loadu_ps(tm, xr + kv), absmask), mx);
        const float amax = fmaxf(_mm512_reduce_max_ps(mx), 1e-5f);
        const float s = (1.0f / amax) * 127.0f; /* as ref.c: reciprocal, then * 127 */
        const __m512 sv = _mm512_set1_ps(s);
        __m512i sum = _mm512_setzero_si512();
        /* clamp before rounding (same result: the bounds are integers);
         * max(v, -128) maps NaN to -128 as fmaxf does in the reference.
         * vcvtps2dq rounds half to even in the default MXCSR mode. */
        for (int i = 0; i < kv; i += 16) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xr + i), sv);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            const __m512i iv = _mm512_cvtps_epi32(v);
            sum = _mm512_add_epi32(sum, iv);
            _mm_storeu_si128((__m128i *)(qr + i), _mm512_cvtsepi32_epi8(iv));
        }
        if (tm) {
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, xr + kv), sv);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            const __m512i iv = _mm512_maskz_cvtps_epi32(tm, v);
            sum = _mm512_add_epi32(sum, iv);
            _mm512_mask_cvtsepi32_storeu_epi8(qr + kv, tm, iv);
        }
        if (kp > k) memset(qr + k, 0, (size_t)(kp - k));
        x_scale[n] = 1.0f / s;
        if (x_sum) x_sum[n] = _mm512_reduce_add_epi32(sum);
    }
}

/* Sum of a quantized row (used when the caller passes x_sum == NULL). */
static int32_t row_sum_i8(const int8_t *q, int kp) {
    __m512i acc = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    for (int i = 0; i < kp; i += 64)
        acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512(q + i));
    return _mm512_reduce_add_epi32(acc);
}

/* Clear the high bit of every 0b11 code: u = b & ~((b << 1) & 0xAA). The
 * shift is a 32-bit add: bits crossing a byte land on even bits, masked. */
BN_INLINE __m512i fix_codes512(__m512i v, __m512i c_aa) {
    return _mm512_ternarylogic_epi32(v, _mm512_add_epi32(v, v), c_aa, 0x70); /* a & ~(b & c) */
}
BN_INLINE __m256i fix_codes256(__m256i v, __m256i c_aa) {
    return _mm256_ternarylogic_epi32(v, _mm256_add_epi32(v, v), c_aa, 0x70);
}

/* ---- GEMV (one token): stream the weights --------------------------------
 * A 64-byte load covers two 128-element blocks. Masking group g (bits 7:6,
 * 5:4, 3:2, 1:0) leaves the code scaled by 64, 16, 4, 1 in each byte; each
 * group has its own accumulator and the scales are shifted out at the end
 * (exactly: every lane is a multiple of its scale). Activations are first
 * permuted so that one 64-byte vector holds group g of both blocks. */

#define QP_MAX 16384 /* largest Kp for the permuted-activation GEMV */
/* Rows of R are adjacent in memory, so the weights are one linear stream:
 * each 64-byte load prefetches the line GV_PF_BYTES further on into L2
 * (prefetcht1) and the line GV_PF_NEAR on from L2 into L1 (prefetcht0).
 * Prefetching from DRAM straight into L1 held the GEMV at 9-10 GB/s on
 * Zen 4, about 40 % of a plain read: L1 tracks too few misses for DRAM
 * latency x bandwidth; L2 tracks more, and 8-16 KB ahead covers the
 * latency (23-25 GB/s at 1 thread); the near t0 hop hides L2's latency
 * from the loads (+10 % at 1 thread: 26-27 GB/s, 4 KiB pages). */
#ifndef GV_PF_BYTES
#define GV_PF_BYTES 12288
#endif
#ifndef GV_PF_NEAR
#define GV_PF_NEAR 1024
#endif

/* The last block of an odd block count: natural activation order, 256-bit. */
static int32_t gemv_tail_block(const uint8_t *w, const int8_t *qt) {
    const __m256i c_aa = _mm256_set1_epi8((char)0xAA), m3 = _mm256_set1_epi8(3);
    const __m256i v = fix_codes256(_mm256_loadu_si256((const __m256i *)w), c_aa);
    __m256i acc = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                      _mm256_and_si256(_mm256_srli_epi16(v, 6), m3),
                                      _mm256_load_si256((const __m256i *)qt));
    acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
                              _mm256_load_si256((const __m256i *)(qt + 32)));
    acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
                              _mm256_load_si256((const __m256i *)(qt + 64)));
    acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(v, m3),
                              _mm256_load_si256((const __m256i *)(qt + 96)));
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return _mm_cvtsi128_si32(h);
}

BN_INLINE int32_t gemv_combine(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
    __m512i t = _mm512_add_epi32(_mm512_srai_epi32(a0, 6), _mm512_srai_epi32(a1, 4));
    t = _mm512_add_epi32(t, _mm512_add_epi32(_mm512_srai_epi32(a2, 2), a3));
    return _mm512_reduce_add_epi32(t);
}

/* R (<= 4) rows at once share the four activation loads. Accumulators are
 * named variables: GCC copies arrays of vectors around every iteration. */
#define GV_REP(X) X(0) X(1) X(2) X(3)

/* T4 = 0: T2R rows (row r at w + r*rb, pair p 64 bytes further each);
 * T4 = 1: one T2R4 group (row r at w + 64r, pair p at 256p, the tail block
 * at 256 npair + 32r; codes already fixed; one stream, no prefetch). */
BN_INLINE void gemv_rows(int R, int T4, const uint8_t *w, size_t rb, const int8_t *qp, int npair,
                         int tail, int32_t *out) {
    const __m512i c_aa = _mm512_set1_epi8((char)0xAA);
    const __m512i mk0 = _mm512_set1_epi8((char)0xC0), mk1 = _mm512_set1_epi8(0x30);
    const __m512i mk2 = _mm512_set1_epi8(0x0C), mk3 = _mm512_set1_epi8(0x03);
#define GV_DECL(r) __m512i a0_##r = _mm512_setzero_si512(), a1_##r = a0_##r, a2_##r = a0_##r, \
                           a3_##r = a0_##r;
    GV_REP(GV_DECL)
    for (int p = 0; p < npair; p++) {
        const __m512i q0 = _mm512_load_si512(qp + 256 * p);
        const __m512i q1 = _mm512_load_si512(qp + 256 * p + 64);
        const __m512i q2 = _mm512_load_si512(qp + 256 * p + 128);
        const __m512i q3 = _mm512_load_si512(qp + 256 * p + 192);
#define GV_STEP(r)                                                                       \
        if (r < R) {                                                                     \
            const uint8_t *wr = T4 ? w + 64 * r + 256 * (size_t)p                        \
                                   : w + (size_t)r * rb + 64 * (size_t)p;                \
            if (!T4) {                                                                   \
                _mm_prefetch((const char *)wr + GV_PF_BYTES, _MM_HINT_T1);               \
                _mm_prefetch((const char *)wr + GV_PF_NEAR, _MM_HINT_T0);                \
            }                                                                            \
            const __m512i v0 = _mm512_loadu_si512(wr);                                   \
            const __m512i v = T4 ? v0 : fix_codes512(v0, c_aa);                          \
            a0_##r = _mm512_dpbusd_epi32(a0_##r, _mm512_and_si512(v, mk0), q0);          \
            a1_##r = _mm512_dpbusd_epi32(a1_##r, _mm512_and_si512(v, mk1), q1);          \
            a2_##r = _mm512_dpbusd_epi32(a2_##r, _mm512_and_si512(v, mk2), q2);          \
            a3_##r = _mm512_dpbusd_epi32(a3_##r, _mm512_and_si512(v, mk3), q3);          \
        }
        GV_REP(GV_STEP)
    }
#define GV_OUT(r)                                                                        \
    if (r < R) {                                                                         \
        out[r] = gemv_combine(a0_##r, a1_##r, a2_##r, a3_##r);                           \
        if (tail) out[r] += gemv_tail_block(T4 ? w + 256 * (size_t)npair + 32 * r       \
                                               : w + (size_t)r * rb + 64 * (size_t)npair, \
                                            qp + 256 * npair);                           \
    }
    GV_REP(GV_OUT)
#undef GV_DECL
#undef GV_STEP
#undef GV_OUT
}

/* Separate functions: inlined into the row loop GCC copies the accumulators
 * between registers every iteration. */
__attribute__((noinline)) static void gemv_rows4(const uint8_t *w, size_t rb, const int8_t *qp,
                                                 int npair, int tail, int32_t *out) {
    gemv_rows(4, 0, w, rb, qp, npair, tail, out);
}
__attribute__((noinline)) static void gemv_group4(const uint8_t *g, const int8_t *qp, int npair,
                                                  int tail, int32_t *out) {
    gemv_rows(4, 1, g, 0, qp, npair, tail, out);
}
__attribute__((noinline)) static void gemv_rows1(const uint8_t *w, size_t rb, const int8_t *qp,
                                                 int npair, int tail, int32_t *out) {
    gemv_rows(1, 0, w, rb, qp, npair, tail, out);
}

/* 256-bit fallback for Kp > QP_MAX: natural activation order, one block at
 * a time, one row at a time (never hit by current models). */
static int32_t gemv_row_ymm(const uint8_t *w, const int8_t *q, int nblk) {
    const __m256i c_aa = _mm256_set1_epi8((char)0xAA), m3 = _mm256_set1_epi8(3);
    __m256i acc = _mm256_setzero_si256();
    for (int b = 0; b < nblk; b++) {
        const __m256i v = fix_codes256(_mm256_loadu_si256((const __m256i *)(w + 32 * b)), c_aa);
        const int8_t *qb = q + 128 * b;
        acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 6), m3),
                                  _mm256_loadu_si256((const __m256i *)qb));
        acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
                                  _mm256_loadu_si256((const __m256i *)(qb + 32)));
        acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
                                  _mm256_loadu_si256((const __m256i *)(qb + 64)));
        acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(v, m3),
                                  _mm256_loadu_si256((const __m256i *)(qb + 96)));
    }
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return _mm_cvtsi128_si32(h);
}

/* Activations reordered so that one 64-byte vector holds group g of both
 * blocks of a pair; an odd last block stays in natural order. */
static void permute_act(const int8_t *q, int npair, int tail, int8_t *qp) {
    for (int p = 0; p < npair; p++)
        for (int g = 0; g < 4; g++) {
            memcpy(qp + 256 * p + 64 * g, q + 256 * p + 32 * g, 32);
            memcpy(qp + 256 * p + 64 * g + 32, q + 256 * p + 128 + 32 * g, 32);
        }
    if (tail) memcpy(qp + 256 * npair, q + 256 * npair, 128);
}

/* GEMV on a T2R4 copy: whole groups of 4 rows; rows of a group outside
 * [m0, m1) are computed (the group is always complete in memory) but not
 * stored. */
static void gemv4(const uint8_t *W4, int k, const int8_t *q, float xs, int32_t xsum,
                  float w_scale, float *y, int m0, int m1) {
    const int kp = bn_pad_k(k);
    const size_t rb = bn_t2r_row_bytes(k);
    const int nblk = kp / BN_QK;
    if (kp > QP_MAX) { /* natural activation order, one row and block at a time */
        const __m256i c_aa = _mm256_set1_epi8((char)0xAA), m3 = _mm256_set1_epi8(3);
        for (int m = m0; m < m1; m++) {
            __m256i acc = _mm256_setzero_si256();
            for (int b = 0; b < nblk; b++) {
                const __m256i v = fix_codes256(_mm256_loadu_si256((const __m256i *)bn_t2r4_block(W4, k, m, b)), c_aa);
                const int8_t *qb = q + 128 * b;
                acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 6), m3), _mm256_loadu_si256((const __m256i *)qb));
                acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 4), m3), _mm256_loadu_si256((const __m256i *)(qb + 32)));
                acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(_mm256_srli_epi16(v, 2), m3), _mm256_loadu_si256((const __m256i *)(qb + 64)));
                acc = _mm256_dpbusd_epi32(acc, _mm256_and_si256(v, m3), _mm256_loadu_si256((const __m256i *)(qb + 96)));
            }
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
            y[m] = (float)(_mm_cvtsi128_si32(h) - xsum) * w_scale * xs;
        }
        return;
    }
    _Alignas(64) int8_t qp[QP_MAX];
    const int npair = nblk / 2, tail = nblk & 1;
    permute_act(q, npair, tail, qp);
    int32_t acc[4];
    for (int g = m0 / 4; 4 * g < m1; g++) {
        gemv_group4(W4 + (size_t)g * 4 * rb, qp, npair, tail, acc);
        for (int r = 0; r < 4; r++) {
            const int m = 4 * g + r;
            if (m >= m0 && m < m1) y[m] = (float)(acc[r] - xsum) * w_scale * xs;
        }
    }
}

static void gemv(const uint8_t *W, int k, const int8_t *q, float xs, int32_t xsum,
                 float w_scale, float *y, int m0, int m1) {
    const int kp = bn_pad_k(k);
    const size_t rb = bn_t2r_row_bytes(k);
    const int nblk = kp / BN_QK;
    if (kp > QP_MAX) {
        for (int m = m0; m < m1; m++) {
            const int32_t acc = gemv_row_ymm(W + (size_t)m * rb, q, nblk) - xsum;
            y[m] = (float)acc * w_scale * xs;
        }
        return;
    }
    _Alignas(64) int8_t qp[QP_MAX];
    const int npair = nblk / 2, tail = nblk & 1;
    permute_act(q, npair, tail, qp);
    /* the loop prefetches GV_PF_BYTES ahead: start the first stretch now */
    {
        const char *w0 = (const char *)(W + (size_t)m0 * rb);
        const size_t len = (size_t)(m1 - m0) * rb;
        for (size_t o = 0; o < len && o < GV_PF_BYTES; o += 64) _mm_prefetch(w0 + o, _MM_HINT_T1);
    }
    int32_t acc[4];
    int m = m0;
    for (; m + 4 <= m1; m += 4) {
        gemv_rows4(W + (size_t)m * rb, rb, qp, npair, tail, acc);
        for (int r = 0; r < 4; r++) y[m + r] = (float)(acc[r] - xsum) * w_scale * xs;
    }
    for (; m < m1; m++) {
        gemv_rows1(W + (size_t)m * rb, rb, qp, npair, tail, acc);
        y[m] = (float)(acc[0] - xsum) * w_scale * xs;
    }
}

/* ---- GEMM (several tokens): unpack a weight panel once, reuse it --------
 * A panel of 32 rows x KC columns is unpacked into VNNI order
 * buf[k/4][row][4] (u8 codes): lane = row, so each token's 4 activations are
 * one broadcast dword, and a 12-token tile keeps 24 accumulators in
 * registers. Partial sums between K blocks live in y as int32 bits. */

#ifndef GV_MULTI_MAX
#define GV_MULTI_MAX 3 /* up to this many tokens: GEMV per token (measured crossover) */
#endif
#define GV_CHUNK_BYTES 196608 /* weight bytes per row chunk of that path     */

#define GM_ROWS 32
#define GM_NR 12
#ifndef GM_KC
#define GM_KC 512
#endif

/* Store the four code groups of x (dword d of 16 rows) at their k4 rows:
 * group g of dword d holds elements 32g + 4d .. +3, k4 index 8g + d. */
BN_INLINE void store_groups(uint8_t *o, __m512i x, __m512i m3) {
    _mm512_store_si512(o + 0 * 8 * GM_ROWS * 4, _mm512_and_si512(_mm512_srli_epi32(x, 6), m3));
    _mm512_store_si512(o + 1 * 8 * GM_ROWS * 4, _mm512_and_si512(_mm512_srli_epi32(x, 4), m3));
    _mm512_store_si512(o + 2 * 8 * GM_ROWS * 4, _mm512_and_si512(_mm512_srli_epi32(x, 2), m3));
    _mm512_store_si512(o + 3 * 8 * GM_ROWS * 4, _mm512_and_si512(x, m3));
}

BN_INLINE __m256i load_row_block(const uint8_t *p, int valid) {
    return valid ? _mm256_loadu_si256((const __m256i *)p) : _mm256_setzero_si256();
}

/* One 32-byte block of 16 rows (row r at base + r*rb; rows >= rv read as
 * code 0) transposed to 8 vectors "dword d of rows 0..15" (an 8x8 dword
 * transpose in each 256-bit half: rows 0-7 low, 8-15 high), codes fixed and
 * split into groups at o (= buf at k4 row 32b, row offset 16v). */
static void unpack16(const uint8_t *base, size_t rb, int rv, uint8_t *o) {
    const __m512i c_aa = _mm512_set1_epi8((char)0xAA), m3 = _mm512_set1_epi8(3);
#define UP_LD(i)                                                                                 \
    const __m512i z##i = fix_codes512(                                                           \
        _mm512_inserti64x4(_mm512_castsi256_si512(load_row_block(base + (size_t)(i) * rb, (i) < rv)), \
                           load_row_block(base + (size_t)((i) + 8) * rb, (i) + 8 < rv), 1),       \
        c_aa);
    UP_LD(0) UP_LD(1) UP_LD(2) UP_LD(3) UP_LD(4) UP_LD(5) UP_LD(6) UP_LD(7)
#undef UP_LD
    const __m512i t0 = _mm512_unpacklo_epi32(z0, z1), t1 = _mm512_unpackhi_epi32(z0, z1);
    const __m512i t2 = _mm512_unpacklo_epi32(z2, z3), t3 = _mm512_unpackhi_epi32(z2, z3);
    const __m512i t4 = _mm512_unpacklo_epi32(z4, z5), t5 = _mm512_unpackhi_epi32(z4, z5);
    const __m512i t6 = _mm512_unpacklo_epi32(z6, z7), t7 = _mm512_unpackhi_epi32(z6, z7);
    /* u0: 128-bit lanes = d0 rows 0-3, d4 rows 0-3, d0 rows 8-11, d4 rows 8-11 */
    const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
    const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
    const __m512i u4 = _mm512_unpacklo_epi64(t4, t6), u5 = _mm512_unpackhi_epi64(t4, t6);
    const __m512i u6 = _mm512_unpacklo_epi64(t5, t7), u7 = _mm512_unpackhi_epi64(t5, t7);
    const __m512i ilo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i ihi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    store_groups(o + 0 * GM_ROWS * 4, _mm512_permutex2var_epi64(u0, ilo, u4), m3);
    store_groups(o + 4 * GM_ROWS * 4, _mm512_permutex2var_epi64(u0, ihi, u4), m3);
    store_groups(o + 1 * GM_ROWS * 4, _mm512_permutex2var_epi64(u1, ilo, u5), m3);
    store_groups(o + 5 * GM_ROWS * 4, _mm512_permutex2var_epi64(u1, ihi, u5), m3);
    store_groups(o + 2 * GM_ROWS * 4, _mm512_permutex2var_epi64(u2, ilo, u6), m3);
    store_groups(o + 6 * GM_ROWS * 4, _mm512_permutex2var_epi64(u2, ihi, u6), m3);
    store_groups(o + 3 * GM_ROWS * 4, _mm512_permutex2var_epi64(u3, ilo, u7), m3);
    store_groups(o + 7 * GM_ROWS * 4, _mm512_permutex2var_epi64(u3, ihi, u7), m3);
}

/* Unpack rows [0, rows) of the panel at `w` (row stride rb), 128-element
 * blocks [b0, b0 + nb), into buf. Missing rows read as code 0. */
static void unpack_panel(const uint8_t *w, size_t rb, int rows, int b0, int nb, uint8_t *buf) {
    for (int v = 0; v < GM_ROWS / 16; v++) {
        const int rv = rows - 16 * v;
        for (int b = 0; b < nb; b++) {
            uint8_t *o = buf + (size_t)(32 * b) * (GM_ROWS * 4) + 64 * v;
            if (rv <= 0) {
                for (int j = 0; j < 32; j++) _mm512_store_si512(o + (size_t)j * GM_ROWS * 4, _mm512_setzero_si512());
                continue;
            }
            unpack16(w + (size_t)(16 * v) * rb + 32 * (size_t)(b0 + b), rb, rv, o);
        }
    }
}

/* The accumulators are named variables, not an array: GCC keeps arrays of
 * vectors in memory across the k loop when any use is not unrolled. */
#define GM_REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* acc += w (u8) . broadcast dword at p (s8 x4). With the broadcast folded
 * into the instruction's memory operand ({1to16}) it costs a load, not a
 * shuffle-port uop; compilers hoist a separate vpbroadcastd instead, which
 * halves the tile's throughput where broadcasts share a port with VNNI. */
BN_INLINE __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t *p) {
#if defined(__GNUC__) && !defined(GM_NO_ASM)
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
    return acc;
#else
    int32_t d;
    memcpy(&d, p, 4);
    return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(d));
#endif
}

BN_INLINE void gemm_store(__m512i a0, __m512i a1, int last, int32_t xsum, float xs,
                          __m512 ws, float *yt, __mmask16 mk0, __mmask16 mk1) {
    if (last) {
        const __m512i s = _mm512_set1_epi32(xsum);
        const __m512 x = _mm512_set1_ps(xs);
        const __m512 f0 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a0, s)), ws), x);
        const __m512 f1 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a1, s)), ws), x);
        _mm512_mask_storeu_ps(yt, mk0, f0);
        _mm512_mask_storeu_ps(yt + 16, mk1, f1);
    } else {
        _mm512_mask_storeu_epi32(yt, mk0, a0);
        _mm512_mask_storeu_epi32(yt + 16, mk1, a1);
    }
}

BN_INLINE void gemm_tile(int nr, const uint8_t *buf, int kc4, const int8_t *q, size_t ldq,
                         int first, int last, const int32_t *xsum, const float *xs,
                         float w_scale, float *y, size_t ldy, __mmask16 mk0, __mmask16 mk1) {
#define GM_DECL(t) __m512i a0_##t = _mm512_setzero_si512(), a1_##t = _mm512_setzero_si512();
    GM_REP(GM_DECL)
    for (int j = 0; j < kc4; j++) {
        const __m512i w0 = _mm512_load_si512(buf + (size_t)j * 128);
        const __m512i w1 = _mm512_load_si512(buf + (size_t)j * 128 + 64);
        const int8_t *qj = q + 4 * (size_t)j;
#define GM_STEP(t)                                                          \
        if (t < nr) {                                                       \
            a0_##t = dpbusd_bcast(a0_##t, w0, qj + (size_t)t * ldq);        \
            a1_##t = dpbusd_bcast(a1_##t, w1, qj + (size_t)t * ldq);        \
        }
        GM_REP(GM_STEP)
    }
    const __m512 ws = _mm512_set1_ps(w_scale);
    /* partial sums of the earlier K blocks are added after the loop: loading
     * them before it makes GCC shuffle every accumulator each iteration */
#define GM_LOAD(t)                                                                        \
    if (t < nr && !first) {                                                               \
        a0_##t = _mm512_add_epi32(a0_##t, _mm512_maskz_loadu_epi32(mk0, y + (size_t)t * ldy)); \
        a1_##t = _mm512_add_epi32(a1_##t, _mm512_maskz_loadu_epi32(mk1, y + (size_t)t * ldy + 16)); \
    }
    GM_REP(GM_LOAD)
#define GM_STORE(t) \
    if (t < nr) gemm_store(a0_##t, a1_##t, last, xsum[t], xs[t], ws, y + (size_t)t * ldy, mk0, mk1);
    GM_REP(GM_STORE)
#undef GM_DECL
#undef GM_LOAD
#undef GM_STEP
#undef GM_STORE
}

/* One instantiation per tile width so the accumulators stay in registers. */
#define GM_TILE(NR)                                                                            \
    static void gemm_tile_##NR(const uint8_t *buf, int kc4, const int8_t *q, size_t ldq,       \
                               int first, int last, const int32_t *xsum, const float *xs,      \
                               float w_scale, float *y, size_t ldy, __mmask16 mk0,             \
                               __mmask16 mk1) {                                                \
        gemm_tile(NR, buf, kc4, q, ldq, first, last, xsum, xs, w_scale, y, ldy, mk0, mk1);     \
    }
GM_TILE(1) GM_TILE(2) GM_TILE(3) GM_TILE(4) GM_TILE(5) GM_TILE(6)
GM_TILE(7) GM_TILE(8) GM_TILE(9) GM_TILE(10) GM_TILE(11) GM_TILE(12)

typedef void (*gemm_tile_fn)(const uint8_t *, int, const int8_t *, size_t, int, int,
                             const int32_t *, const float *, float, float *, size_t, __mmask16,
                             __mmask16);
static const gemm_tile_fn gemm_tiles[GM_NR + 1] = {
    NULL, gemm_tile_1, gemm_tile_2, gemm_tile_3, gemm_tile_4, gemm_tile_5, gemm_tile_6,
    gemm_tile_7, gemm_tile_8, gemm_tile_9, gemm_tile_10, gemm_tile_11, gemm_tile_12,
};


static void gemm_panels(const uint8_t *W, int k, const int8_t *q, size_t ldq, const float *xs,
                        const int32_t *xsum, int n_tokens, float w_scale, float *y, size_t ldy,
                        int m0, int m1) {
    const int kp = bn_pad_k(k);
    const size_t rb = bn_t2r_row_bytes(k);
    const int nblk = kp / BN_QK, kcb = GM_KC / BN_QK;
    _Alignas(64) uint8_t buf[GM_KC * GM_ROWS];
    for (int m = m0; m < m1; m += GM_ROWS) {
        const int rows = m1 - m < GM_ROWS ? m1 - m : GM_ROWS;
        const __mmask16 mk0 = rows >= 16 ? 0xffff : (__mmask16)((1u << rows) - 1);
        const __mmask16 mk1 = rows >= 32 ? 0xffff : rows <= 16 ? 0 : (__mmask16)((1u << (rows - 16)) - 1);
        for (int b = 0; b < nblk; b += kcb) {
            const int nb = nblk - b < kcb ? nblk - b : kcb;
            unpack_panel(W + (size_t)m * rb, rb, rows, b, nb, buf);
            const int first = b == 0, last = b + nb == nblk;
            /* the next panel: the next K block of these rows, or the first
             * of the next rows */
            int pm = m, pb = b + kcb;
            if (pb >= nblk) pm = m + GM_ROWS, pb = 0;
            const int prows = m1 - pm < GM_ROWS ? m1 - pm : GM_ROWS;
            const int pnb = nblk - pb < kcb ? nblk - pb : kcb;
            const int ntiles = (n_tokens + GM_NR - 1) / GM_NR;
            for (int n = 0; n < n_tokens; n += GM_NR) {
                const int nr = n_tokens - n < GM_NR ? n_tokens - n : GM_NR;
                if (prows > 0)
                    bn_prefetch_panel(W + (size_t)pm * rb, rb, prows, pb, pnb, n / GM_NR, ntiles);
                gemm_tiles[nr](buf, nb * 32, q + (size_t)n * ldq + (size_t)b * BN_QK, ldq, first,
                               last, xsum + n, xs + n, w_scale, y + (size_t)n * ldy + m, ldy, mk0,
                               mk1);
            }
        }
    }
}

/* Each 32-row panel reads all the tokens' activations: keep them within
 * most of L2 (1 MiB per core on Zen 4) by taking the tokens in chunks (at
 * n = 512, K = 2560 the activations streamed from L3: 210 vs 229 GMAC/s at
 * one thread). Chunks re-unpack the weights: 896 KiB lets a 128-token
 * prompt through the FFN down projection (K = 6912) in one chunk, 2.5 %
 * faster there than two chunks of 64 (bench_kernels -s 3). */
#ifndef GM_Q_L2
#define GM_Q_L2 (896 * 1024)
#endif

static void gemm(const uint8_t *W, int k, const int8_t *q, size_t ldq, const float *xs,
                 const int32_t *xsum, int n_tokens, float w_scale, float *y, size_t ldy, int m0,
                 int m1) {
    int nc = (int)(GM_Q_L2 / (size_t)bn_pad_k(k)) / GM_NR * GM_NR;
    if (nc < 4 * GM_NR) nc = 4 * GM_NR;
    for (int n = 0; n < n_tokens;) {
        const int left = n_tokens - n;
        /* no small last chunk: the last two share the rest evenly (the
         * first of them a whole number of token tiles) */
        const int half = ((left + 1) / 2 + GM_NR - 1) / GM_NR * GM_NR;
        const int cnt = left <= nc ? left : left < 2 * nc ? (half < left ? half : left) : nc;
        gemm_panels(W, k, q + (size_t)n * ldq, ldq, xs + n, xsum + n, cnt, w_scale,
                    y + (size_t)n * ldy, ldy, m0, m1);
        n += cnt;
    }
}

static void avx512_tgemm(const uint8_t *W, int k, const int8_t *q, size_t ldq,
                         const float *x_scale, const int32_t *x_sum, int n_tokens,
                         float w_scale, float *y, size_t ldy, int m0, int m1) {
    if (m1 <= m0 || n_tokens <= 0) return;
    if (k <= 0) { /* empty dot products, as the reference writes them */
        for (int n = 0; n < n_tokens; n++)
            for (int m = m0; m < m1; m++) y[(size_t)n * ldy + (size_t)m] = 0.0f * w_scale * x_scale[n];
        return;
    }
    const int kp = bn_pad_k(k);
    if (!x_sum) { /* compute the sums the unsigned-code identity needs */
        int32_t sums[64];
        for (int n0 = 0; n0 < n_tokens; n0 += 64) {
            const int nn = n_tokens - n0 < 64 ? n_tokens - n0 : 64;
            for (int n = 0; n < nn; n++) sums[n] = row_sum_i8(q + (size_t)(n0 + n) * ldq, kp);
            avx512_tgemm(W, k, q + (size_t)n0 * ldq, ldq, x_scale + n0, sums, nn, w_scale,
                         y + (size_t)n0 * ldy, ldy, m0, m1);
        }
        return;
    }
    if (n_tokens <= GV_MULTI_MAX) {
        /* few tokens (batched decode): GEMV per token over row chunks that
         * stay in L2, so DRAM streams the weights once */
        const int mc = GV_CHUNK_BYTES / (int)bn_t2r_row_bytes(k) / 4 * 4 + 4;
        for (int m = m0; m < m1; m += mc) {
            const int me = m1 - m < mc ? m1 : m + mc;
            for (int n = 0; n < n_tokens; n++)
                gemv(W, k, q + (size_t)n * ldq, x_scale[n], x_sum[n], w_scale, y + (size_t)n * ldy, m, me);
        }
        return;
    }
    gemm(W, k, q, ldq, x_scale, x_sum, n_tokens, w_scale, y, ldy, m0, m1);
}

/* tgemm on a T2R4 copy: a GEMV per token over row chunks that stay in L2
 * (decode and batched decode; correct, not fast, for prefill batches). */
static void avx512_tgemm4(const uint8_t *W4, int k, const int8_t *q, size_t ldq,
                          const float *x_scale, const int32_t *x_sum, int n_tokens,
                          float w_scale, float *y, size_t ldy, int m0, int m1) {
    if (m1 <= m0 || n_tokens <= 0) return;
    if (k <= 0) {
        for (int n = 0; n < n_tokens; n++)
            for (int m = m0; m < m1; m++) y[(size_t)n * ldy + (size_t)m] = 0.0f * w_scale * x_scale[n];
        return;
    }
    const int kp = bn_pad_k(k);
    const int mc = GV_CHUNK_BYTES / (int)bn_t2r_row_bytes(k) / 4 * 4 + 4;
    for (int m = m0; m < m1; m += mc) {
        const int me = m1 - m < mc ? m1 : m + mc;
        for (int n = 0; n < n_tokens; n++) {
            const int8_t *qn = q + (size_t)n * ldq;
            const int32_t s = x_sum ? x_sum[n] : row_sum_i8(qn, kp);
            gemv4(W4, k, qn, x_scale[n], s, w_scale, y + (size_t)n * ldy, m, me);
        }
    }
}

/* ---- dense head: F32 / F16 / BF16 rows dotted with f32 hidden states ---- */

BN_INLINE __m512 load_row16(const void *E, bn_type et, size_t idx) {
    switch (et) {
    case BN_TYPE_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)E + idx)));
    case BN_TYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)E + idx))), 16));
    default: return _mm512_loadu_ps((const float *)E + idx);
    }
}

BN_INLINE __m512 load_row_tail(const void *E, bn_type et, size_t idx, __mmask16 m) {
    switch (et) {
    case BN_TYPE_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)E + idx));
    case BN_TYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)E + idx)), 16));
    default: return _mm512_maskz_loadu_ps(m, (const float *)E + idx);
    }
}

/* R embedding rows x T tokens; each converted row vector feeds T FMAs. */
BN_INLINE void head_tile(int R, int T, const void *E, bn_type et, int n_embd, const float *h,
                         size_t ldh, float *logits, size_t ldl, int v) {
    __m512 acc[8][4];
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    const int nv = n_embd & ~15;
    const __mmask16 tm = (__mmask16)((1u << (n_embd - nv)) - 1);
    for (int i = 0; i < nv; i += 16) {
        __m512 hv[4];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) hv[t] = _mm512_loadu_ps(h + (size_t)t * ldh + i);
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const __m512 e = load_row16(E, et, (size_t)(v + r) * (size_t)n_embd + (size_t)i);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(e, hv[t], acc[r][t]);
        }
    }
    if (tm) {
        __m512 hv[4];
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++) hv[t] = _mm512_maskz_loadu_ps(tm, h + (size_t)t * ldh + nv);
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const __m512 e = load_row_tail(E, et, (size_t)(v + r) * (size_t)n_embd + (size_t)nv, tm);
            #pragma GCC unroll 16
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(e, hv[t], acc[r][t]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            logits[(size_t)t * ldl + (size_t)(v + r)] = _mm512_reduce_add_ps(acc[r][t]);
}

#define HEAD_TILE(R, T)                                                                        \
    static void head_##R##x##T(const void *E, bn_type et, int n_embd, const float *h,          \
                               size_t ldh, float *logits, size_t ldl, int v) {                 \
        head_tile(R, T, E, et, n_embd, h, ldh, logits, ldl, v);                                 \
    }
HEAD_TILE(8, 1) HEAD_TILE(1, 1) HEAD_TILE(4, 4) HEAD_TILE(4, 3) HEAD_TILE(4, 2)
HEAD_TILE(1, 4) HEAD_TILE(1, 3) HEAD_TILE(1, 2)

static void avx512_head(const void *E, bn_type et, int n_embd, const float *h, size_t ldh,
                        int n_tokens, float *logits, size_t ldl, int v0, int v1) {
    for (int n = 0; n < n_tokens;) {
        const int T = n_tokens - n >= 4 ? 4 : n_tokens - n;
        const float *hn = h + (size_t)n * ldh;
        float *ln = logits + (size_t)n * ldl;
        int v = v0;
        if (T == 1) {
            for (; v + 8 <= v1; v += 8) head_8x1(E, et, n_embd, hn, ldh, ln, ldl, v);
            for (; v < v1; v++) head_1x1(E, et, n_embd, hn, ldh, ln, ldl, v);
        } else {
            for (; v + 4 <= v1; v += 4) {
                if (T == 4) head_4x4(E, et, n_embd, hn, ldh, ln, ldl, v);
                else if (T == 3) head_4x3(E, et, n_embd, hn, ldh, ln, ldl, v);
                else head_4x2(E, et, n_embd, hn, ldh, ln, ldl, v);
            }
            for (; v < v1; v++) {
                if (T == 4) head_1x4(E, et, n_embd, hn, ldh, ln, ldl, v);
                else if (T == 3) head_1x3(E, et, n_embd, hn, ldh, ln, ldl, v);
                else head_1x2(E, et, n_embd, hn, ldh, ln, ldl, v);
            }
        }
        n += T;
    }
}

/* ---- quantized head: 8/6/4-bit rows, f16 block scales ------------------
 * Per 128-element superblock, two 64-lane vectors of unsigned codes u meet
 * the token's int8 hidden state in vpdpbusd; lane 0 of each block starts at
 * -off * sum(hq over the block) so the integer block sum is exact (c = u -
 * off). Each block's int32 lanes are converted and multiplied by the block
 * scale into f32 accumulators (two chains: even and odd blocks). */

#define QH_MAXBLK 128 /* n_embd <= 8192; larger heads use the reference */
#ifndef QH_PF_ROWS
#define QH_PF_ROWS 4
#endif

BN_INLINE void qh_unpack(int bits, const uint8_t *row, int sb, __m512i *u0, __m512i *u1) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    if (bits == 8) {
        *u0 = _mm512_loadu_si512(row + 128 * (size_t)sb);
        *u1 = _mm512_loadu_si512(row + 128 * (size_t)sb + 64);
    } else if (bits == 4) {
        const __m512i x = _mm512_loadu_si512(row + 64 * (size_t)sb);
        *u0 = _mm512_and_si512(x, m4);
        *u1 = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
    } else {
        const uint8_t *p = row + 96 * (size_t)sb;
        const __m512i x = _mm512_loadu_si512(p);
        const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 64)));
        const __m512i m30 = _mm512_set1_epi8(0x30);
        /* high pairs to bits 5:4: elements 0-31 from 7:6 (>> 2), 32-63 from
         * 5:4, 64-95 from 3:2 (<< 2), 96-127 from 1:0 (<< 4); 16-bit shifts
         * only pull in neighbour bits that the 0x30 mask drops */
        const __m512i sr = _mm512_inserti64x4(_mm512_set1_epi16(2), _mm256_set1_epi16(0), 1);
        const __m512i sl = _mm512_inserti64x4(_mm512_set1_epi16(2), _mm256_set1_epi16(4), 1);
        const __m512i h0 = _mm512_and_si512(_mm512_srlv_epi16(hb, sr), m30);
        const __m512i h1 = _mm512_and_si512(_mm512_sllv_epi16(hb, sl), m30);
        *u0 = _mm512_or_si512(_mm512_and_si512(x, m4), h0);
        *u1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(x, 4), m4), h1);
    }
}

#define QH_REP(X) X(0) X(1) X(2) X(3)

/* corr: per token, per block, a vector with -off * sum(hq over the block) in
 * lane 0 (loaded as the dpbusd accumulator: a load, not a shuffle). The
 * row's scales are widened to f32 once so each FMA takes its scale as an
 * embedded broadcast. */
BN_INLINE void qh_row(int T, int bits, const uint16_t *d, const uint8_t *row, int nblk,
                      const int8_t *q, size_t ldq, const __m512i *corr, const float *hs,
                      float *out, size_t ldl) {
    const size_t rb = (size_t)nblk * (size_t)(bits * 8); /* code bytes per row */
    _Alignas(64) float sc[QH_MAXBLK];
    for (int b = 0; b < nblk; b += 16) {
        const int left = nblk - b;
        const __mmask16 m = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        _mm512_store_ps(sc + b, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, d + b)));
    }
#define QH_DECL(t) __m512 f0_##t = _mm512_setzero_ps(), f1_##t = _mm512_setzero_ps();
    QH_REP(QH_DECL)
    for (int sb = 0; sb < nblk / 2; sb++) {
        __m512i u0, u1;
        /* rows are contiguous: fetch the lines of the row QH_PF_ROWS ahead */
        const char *pf = (const char *)row + (size_t)sb * (size_t)(bits * 16) + QH_PF_ROWS * rb;
        _mm_prefetch(pf, _MM_HINT_T0);
        if (bits > 4) _mm_prefetch(pf + 64, _MM_HINT_T0);
        qh_unpack(bits, row, sb, &u0, &u1);
        const int b = 2 * sb;
#define QH_STEP(t)                                                                               \
        if (t < T) {                                                                             \
            const int8_t *qt = q + (size_t)t * ldq + 128 * (size_t)sb;                           \
            const __m512i *ct = corr + (size_t)t * QH_MAXBLK + b;                                \
            const __m512i p0 = _mm512_dpbusd_epi32(ct[0], u0, _mm512_loadu_si512(qt));          \
            const __m512i p1 = _mm512_dpbusd_epi32(ct[1], u1, _mm512_loadu_si512(qt + 64));     \
            f0_##t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), _mm512_set1_ps(sc[b]), f0_##t);     \
            f1_##t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), _mm512_set1_ps(sc[b + 1]), f1_##t); \
        }
        QH_REP(QH_STEP)
    }
#define QH_OUT(t) \
    if (t < T) out[(size_t)t * ldl] = _mm512_reduce_add_ps(_mm512_add_ps(f0_##t, f1_##t)) * hs[t];
    QH_REP(QH_OUT)
#undef QH_DECL
#undef QH_STEP
#undef QH_OUT
}

#define QH_FN(T, B)                                                                              \
    static void qh_row_##T##_##B(const uint16_t *d, const uint8_t *row, int nblk,                \
                                 const int8_t *q, size_t ldq, const __m512i *corr,               \
                                 const float *hs, float *out, size_t ldl) {                      \
        qh_row(T, B, d, row, nblk, q, ldq, corr, hs, out, ldl);                                  \
    }
QH_FN(1, 8) QH_FN(2, 8) QH_FN(3, 8) QH_FN(4, 8)
QH_FN(1, 6) QH_FN(2, 6) QH_FN(3, 6) QH_FN(4, 6)
QH_FN(1, 4) QH_FN(2, 4) QH_FN(3, 4) QH_FN(4, 4)

typedef void (*qh_row_fn)(const uint16_t *, const uint8_t *, int, const int8_t *, size_t,
                          const __m512i *, const float *, float *, size_t);

static void avx512_qhead(const bn_qhead *E, const int8_t *hq, size_t ldq, const float *h_scale,
                         int n_tokens, float *logits, size_t ldl, int v0, int v1) {
    const int bits = E->bits, nblk = E->nblk;
    if (nblk > QH_MAXBLK || (bits != 8 && bits != 6 && bits != 4)) {
        bn_ref_qhead(E, hq, ldq, h_scale, n_tokens, logits, ldl, v0, v1);
        return;
    }
    static const qh_row_fn fns[3][4] = {
        {qh_row_1_8, qh_row_2_8, qh_row_3_8, qh_row_4_8},
        {qh_row_1_6, qh_row_2_6, qh_row_3_6, qh_row_4_6},
        {qh_row_1_4, qh_row_2_4, qh_row_3_4, qh_row_4_4},
    };
    const int bi = bits == 8 ? 0 : bits == 6 ? 1 : 2, off = bits == 8 ? 128 : bits == 6 ? 32 : 8;
    __m512i corr[4 * QH_MAXBLK]; /* 32 KiB */
    for (int n = 0; n < n_tokens; n += 4) {
        const int T = n_tokens - n < 4 ? n_tokens - n : 4;
        for (int t = 0; t < T; t++) {
            const int8_t *qt = hq + (size_t)(n + t) * ldq;
            for (int b = 0; b < nblk; b++) {
                const __m512i x = _mm512_loadu_si512(qt + 64 * (size_t)b);
                corr[t * QH_MAXBLK + b] = _mm512_maskz_set1_epi32(1, -off * _mm512_reduce_add_epi32(
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), x)));
            }
        }
        const qh_row_fn f = fns[bi][T - 1];
        for (int v = v0; v < v1; v++)
            f(E->scales + (size_t)v * (size_t)nblk, E->codes + (size_t)v * E->row_bytes, nblk,
              hq + (size_t)n * ldq, ldq, corr, h_scale + n, logits + (size_t)n * ldl + (size_t)v, ldl);
    }
}

/* ---- f16 <-> f32 rows (F16C / AVX-512F; round to nearest even) ------------- */

static void avx512_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

static void avx512_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(dst + i, m,
                                 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT));
    }
}

static const bn_kernels avx512_table = {
    .name = "avx512vnni",
    .quantize_act = avx512_quantize_act,
    .tgemm = avx512_tgemm,
    .head = avx512_head,
    .qhead = avx512_qhead,
    .tgemm4 = avx512_tgemm4,
    .f16_to_f32 = avx512_f16_to_f32,
    .f32_to_f16 = avx512_f32_to_f16,
};

const bn_kernels *bn_kernels_avx512(void) { return &avx512_table; }

#else

const bn_kernels *bn_kernels_avx512(void) { return NULL; }

#endif
