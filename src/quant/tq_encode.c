/* tq_encode.c — TQ2_0 / TQ1_0 / Q8_0 / Q6_K block encoders (see tq_encode.h).
 *
 * Facts from ggml (ggml-common.h block structs, ggml-quants.c
 * quantize_row_*_ref at llama.cpp d7da8dc8); the code is our own:
 *   TQ2_0: qs[h*32 + m] bits 2n+1:2n = code of element h*128 + n*32 + m,
 *          code = w + 1; d (f16) = the block's absmax.
 *   TQ1_0: base-3 digits (code = w + 1), most significant first; a byte of 5
 *          digits v = d0*81 + d1*27 + d2*9 + d3*3 + d4 is stored as
 *          ceil(v * 256 / 243), so the decoder's ((uint8_t)(b*3^n) * 3) >> 8
 *          gives digit n back. qs[m] (m < 32) holds elements m + 32n,
 *          qs[32 + m] (m < 16) elements 160 + m + 16n, qh[j] elements
 *          240 + j + 4n (n < 4, then multiplied by 3: a 5th digit 0).
 *   Q8_0 and Q6_K: ggml's arithmetic, operation for operation, in f32 (this
 *   file is built without FMA contraction: the x86-64 baseline has none),
 *   so that the bytes equal llama-quantize's. */
#include "tq_encode.h"

#include <math.h>
#include <string.h>

#include "core/core.h"

/* T2R byte -> TQ2_0 byte: code 3 made 1 (zero), then the four 2-bit fields
 * reversed (T2R keeps element m in bits 7:6, TQ2_0 in bits 1:0). */
static uint8_t t2r_to_tq2(uint8_t x) {
    x = (uint8_t)(x & ~((x & (x >> 1) & 0x55) << 1));
    return (uint8_t)(((x & 0x03) << 6) | ((x & 0x0C) << 2) | ((x & 0x30) >> 2) | ((x & 0xC0) >> 6));
}

static void put_f16(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

bool bn_tq2_0_encode_row(const uint8_t *t2r, int n_in, uint16_t d16, uint8_t *dst) {
    bool any = false;
    for (int b = 0; b < n_in / BN_QK_K; b++, dst += BN_TQ2_0_BYTES) {
        bool nz = false;
        for (int i = 0; i < 64; i++) {
            dst[i] = t2r_to_tq2(t2r[b * 64 + i]);
            nz |= dst[i] != 0x55; /* 0x55: four zero codes */
        }
        put_f16(dst + 64, nz ? d16 : 0);
        any |= nz;
    }
    return any;
}

/* Codes 0/1/2 of one 256-element block, in element order. */
static bool block_codes(const uint8_t *blk64, uint8_t c[BN_QK_K]) {
    bool nz = false;
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 32; m++) {
            const uint8_t x = blk64[h * 32 + m];
            for (int n = 0; n < 4; n++) {
                uint8_t code = (uint8_t)((x >> (6 - 2 * n)) & 3);
                if (code == 3) code = 1;
                nz |= code != 1;
                c[h * 128 + n * 32 + m] = code;
            }
        }
    return nz;
}

/* ceil(v * 256 / 243) for v < 243: the byte whose scaled digits are v's. */
static uint8_t tq1_byte(unsigned v) { return (uint8_t)((v * 256 + 242) / 243); }

bool bn_tq1_0_encode_row(const uint8_t *t2r, int n_in, uint16_t d16, uint8_t *dst) {
    bool any = false;
    uint8_t c[BN_QK_K];
    for (int b = 0; b < n_in / BN_QK_K; b++, dst += BN_TQ1_0_BYTES) {
        const bool nz = block_codes(t2r + b * 64, c);
        for (int m = 0; m < 32; m++) {
            unsigned v = 0;
            for (int n = 0; n < 5; n++) v = v * 3 + c[m + 32 * n];
            dst[m] = tq1_byte(v);
        }
        for (int m = 0; m < 16; m++) {
            unsigned v = 0;
            for (int n = 0; n < 5; n++) v = v * 3 + c[160 + m + 16 * n];
            dst[32 + m] = tq1_byte(v);
        }
        for (int j = 0; j < 4; j++) {
            unsigned v = 0;
            for (int n = 0; n < 4; n++) v = v * 3 + c[240 + j + 4 * n];
            dst[48 + j] = tq1_byte(v * 3);
        }
        put_f16(dst + 52, nz ? d16 : 0);
        any |= nz;
    }
    return any;
}

/* ------------------------------------------------------------ Q8_0 */

void bn_q8_0_quantize_row(const float *x, int64_t n, uint8_t *dst) {
    for (int64_t b = 0; b < n / BN_Q8_0_BLOCK; b++, x += BN_Q8_0_BLOCK, dst += BN_Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < BN_Q8_0_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, bn_f32_to_f16(d));
        for (int j = 0; j < BN_Q8_0_BLOCK; j++) dst[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* ------------------------------------------------------------ Q6_K */

#define EPS_ZERO 1e-15f /* ggml's GROUP_MAX_EPS: below it a group is all zero */

/* Round to nearest, ties to even, via the 1.5 * 2^23 trick ggml uses (same
 * result as rintf for |v| < 2^22, the range it is called on). */
static int near_int(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static int clamp_i(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Best scale for 16 values on the levels -32..31 (ggml make_qx_quants with
 * nmax 32, weights x^2): the round-trip scale of the signed max, then 18
 * nudged trial scales, keeping the one of largest sumlx^2 / suml2. L gets
 * the levels + 32. */
static float q6_group_scale(const float *x, int8_t *L) {
    enum { N = 16, NMAX = 32 };
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < N; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < EPS_ZERO) {
        memset(L, 0, N);
        return 0.0f;
    }
    float iscale = -(float)NMAX / max, sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < N; i++) {
        const int l = clamp_i(near_int(iscale * x[i]), -NMAX, NMAX - 1);
        L[i] = (int8_t)(l + NMAX);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)NMAX + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < N; i++) {
            const int l = clamp_i(near_int(iscale * x[i]), -NMAX, NMAX - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < N; i++) L[i] = (int8_t)(NMAX + clamp_i(near_int(iscale * x[i]), -NMAX, NMAX - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void q6_k_block(const float *x, uint8_t *dst) {
    int8_t L[BN_QK_K];
    float sc[16], max_scale = 0.0f, max_abs = 0.0f;
    for (int g = 0; g < 16; g++) {
        sc[g] = q6_group_scale(x + 16 * g, L + 16 * g);
        if (fabsf(sc[g]) > max_abs) { max_abs = fabsf(sc[g]); max_scale = sc[g]; }
    }
    memset(dst, 0, BN_Q6_K_BYTES);
    if (max_abs < EPS_ZERO) return; /* all zero: d = 0 */
    const float iscale = -128.0f / max_scale;
    const uint16_t d16 = bn_f32_to_f16(1.0f / iscale);
    put_f16(dst + 208, d16);
    int8_t *scales = (int8_t *)(dst + 192);
    for (int g = 0; g < 16; g++) {
        const int s = near_int(iscale * sc[g]);
        scales[g] = (int8_t)(s < 127 ? s : 127);
    }
    const float df = bn_f16_to_f32(d16);
    for (int g = 0; g < 16; g++) {
        const float d = df * (float)scales[g];
        if (d == 0.0f) continue; /* keeps the group's first-pass levels, as ggml */
        for (int i = 0; i < 16; i++) L[16 * g + i] = (int8_t)(clamp_i(near_int(x[16 * g + i] / d), -32, 31) + 32);
    }
    uint8_t *ql = dst, *qh = dst + 128;
    for (int half = 0; half < 2; half++, ql += 64, qh += 32) {
        const int8_t *l = L + 128 * half;
        for (int i = 0; i < 32; i++) {
            ql[i] = (uint8_t)((l[i] & 0xF) | ((l[i + 64] & 0xF) << 4));
            ql[i + 32] = (uint8_t)((l[i + 32] & 0xF) | ((l[i + 96] & 0xF) << 4));
            qh[i] = (uint8_t)((l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) | ((l[i + 96] >> 4) << 6));
        }
    }
}

void bn_q6_k_quantize_row(const float *x, int64_t n, uint8_t *dst) {
    for (int64_t b = 0; b < n / BN_QK_K; b++) q6_k_block(x + b * BN_QK_K, dst + b * BN_Q6_K_BYTES);
}
