/* load_gguf_tq.c — llama.cpp's ternary (TQ1_0, TQ2_0) and head (Q8_0, Q6_K)
 * block types, decoded at load into the engine's forms.
 *
 * Block layouts (ggml-common.h, 256-element super-blocks QK_K; facts from
 * llama.cpp's ggml-quants.c dequantize_row_*):
 *   TQ2_0 (66 bytes): qs[64], f16 d. Per 32-byte half h, element
 *     h*128 + l*32 + m is bits 2l+1:2l of qs[h*32 + m]; value (code - 1) * d.
 *     That is the I2_S/T2R code set (0 = -1, 1 = 0, 2 = +1) with the pair
 *     order inside a byte reversed (T2R keeps element m at bits 7:6).
 *   TQ1_0 (54 bytes): qs[48], qh[4], f16 d. Base-3 digits, 5 per byte in qs
 *     and 4 per byte in qh, stored scaled so that digit n of byte b is
 *     ((uint8_t)(b * 3^n) * 3) >> 8; elements: qs[0..32) digit n -> n*32 + m,
 *     qs[32..48) digit n -> 160 + n*16 + m, qh[j] digit n -> 240 + n*4 + j.
 *     Digits 0/1/2 mean -1/0/+1 (times d).
 *   Q8_0 (34 bytes): f16 d, int8 qs[32]; value qs * d.
 *   Q6_K (210 bytes): ql[128], qh[64], int8 scales[16], f16 d; see q6k_block. */
#include "load_gguf_tq.h"

#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"

#define QK_K 256

static uint16_t rd_f16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

bool bn_gguf_is_tq(uint32_t type) { return type == BN_TYPE_TQ1_0 || type == BN_TYPE_TQ2_0; }
bool bn_gguf_is_dequant(uint32_t type) { return type == BN_TYPE_Q8_0 || type == BN_TYPE_Q6_K; }

/* TQ2_0 byte -> T2R byte (reverse the four 2-bit fields). */
static uint8_t rev_pairs(uint8_t x) {
    return (uint8_t)(((x & 0x03) << 6) | ((x & 0x0C) << 2) | ((x & 0x30) >> 2) | ((x & 0xC0) >> 6));
}

/* One 256-block into T2R bytes dst[0..64). Returns false on a code 3. */
static bool tq2_block(const uint8_t *blk, uint8_t *dst, bool *nonzero) {
    bool ok = true, nz = false;
    for (int i = 0; i < QK_K / 4; i++) {
        uint8_t x = blk[i];
        if (x & (x >> 1) & 0x55) ok = false; /* a field holding 0b11 */
        if (x != 0x55) nz = true;            /* 0x55: four zeros */
        dst[i] = rev_pairs(x);
    }
    *nonzero = nz;
    return ok;
}

static int tq1_digit(uint8_t b, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t q = (uint8_t)(b * pow3[n]);
    return (q * 3) >> 8;
}

/* One 256-block into T2R bytes dst[0..64): digits to codes c[256] in element
 * order, then packed as two 128-element T2R blocks. */
static void tq1_block(const uint8_t *blk, uint8_t *dst, bool *nonzero) {
    const uint8_t *qs = blk, *qh = blk + 48;
    uint8_t c[QK_K];
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++) c[n * 32 + m] = (uint8_t)tq1_digit(qs[m], n);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++) c[160 + n * 16 + m] = (uint8_t)tq1_digit(qs[32 + m], n);
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++) c[240 + n * 4 + j] = (uint8_t)tq1_digit(qh[j], n);
    bool nz = false;
    for (int h = 0; h < 2; h++)
        for (int b = 0; b < 32; b++) {
            const uint8_t *e = c + h * 128 + b;
            uint8_t x = (uint8_t)(e[0] << 6 | e[32] << 4 | e[64] << 2 | e[96]);
            nz |= x != 0x55;
            dst[h * 32 + b] = x;
        }
    *nonzero = nz;
}

bn_status bn_gguf_tq_to_t2r(const bn_gguf_tensor *t, const char *name, int32_t n_in, int32_t n_out, uint8_t *w,
                            float *scale) {
    const bool tq2 = t->type == BN_TYPE_TQ2_0;
    const char *tn = tq2 ? "TQ2_0" : "TQ1_0";
    const size_t bsz = tq2 ? 66 : 54, dpos = tq2 ? 64 : 52;
    if (!bn_gguf_is_tq(t->type)) return bn_fail(BN_ERR_FORMAT, "tensor %s is not TQ1_0/TQ2_0", name);
    if (n_in <= 0 || n_out <= 0 || n_in % QK_K)
        return bn_fail(BN_ERR_SHAPE, "%s tensor %s: row length %d is not a multiple of %d", tn, name, n_in, QK_K);
    const size_t nb = (size_t)n_in / QK_K, rb = bn_t2r_row_bytes(n_in);
    uint64_t need;
    if (!bn_mul_ok((uint64_t)nb * bsz, (uint64_t)n_out, &need) || t->nbytes < need)
        return bn_fail(BN_ERR_FORMAT, "%s tensor %s holds %llu bytes, needs %llu", tn, name,
                       (unsigned long long)t->nbytes, (unsigned long long)need);
    uint16_t d_ref = 0;
    bool have_d = false;
    for (int32_t r = 0; r < n_out; r++) {
        uint8_t *row = w + (size_t)r * rb;
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = t->data + ((size_t)r * nb + b) * bsz;
            bool nz;
            if (tq2) {
                if (!tq2_block(blk, row + b * 64, &nz))
                    return bn_fail(BN_ERR_FORMAT,
                                   "TQ2_0 tensor %s: row %d block %zu uses code 3 (weight +2d), which is not ternary",
                                   name, r, b);
            } else {
                tq1_block(blk, row + b * 64, &nz);
            }
            if (!nz) continue; /* an all-zero block's scale is unused (ggml writes 0) */
            uint16_t d = rd_f16(blk + dpos);
            if (!have_d) {
                float f = bn_f16_to_f32(d);
                if (!(f > 0.0f) || f > 65504.0f)
                    return bn_fail(BN_ERR_FORMAT, "%s tensor %s: row %d block %zu has an invalid scale %g", tn, name,
                                   r, b, (double)f);
                d_ref = d;
                have_d = true;
            } else if (d != d_ref) {
                return bn_fail(BN_ERR_UNSUPPORTED,
                               "%s tensor %s: block scales differ (%g at row %d block %zu, %g before); BitNet "
                               "linears need one scale per tensor (was it quantized from non-ternary weights?)",
                               tn, name, (double)bn_f16_to_f32(d), r, b, (double)bn_f16_to_f32(d_ref));
            }
        }
    }
    *scale = have_d ? bn_f16_to_f32(d_ref) : 1.0f; /* all zero: any scale gives 0 */
    return BN_OK;
}

bn_status bn_gguf_output_scale(const bn_gguf *g, const char *weight_name, bool allowed, float *out, bool *present) {
    char sn[160];
    size_t nl = strlen(weight_name);
    *out = 1.0f;
    *present = false;
    if (nl <= 7 || nl >= sizeof sn || strcmp(weight_name + nl - 7, ".weight") != 0) return BN_OK;
    snprintf(sn, sizeof sn, "%.*s.scale", (int)(nl - 7), weight_name);
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, sn);
    if (!t) return BN_OK;
    if (!allowed)
        return bn_fail(BN_ERR_UNSUPPORTED, "per-linear scale tensor %s is only part of architecture 'bitnet'", sn);
    if (t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3] != 1)
        return bn_fail(BN_ERR_SHAPE, "scale tensor %s has %llu elements, expected 1", sn,
                       (unsigned long long)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]));
    float v;
    if (t->type == BN_TYPE_F32 && t->nbytes >= 4) memcpy(&v, t->data, 4);
    else if ((t->type == BN_TYPE_F16 || t->type == BN_TYPE_BF16) && t->nbytes >= 2)
        v = t->type == BN_TYPE_F16 ? bn_f16_to_f32(rd_f16(t->data)) : bn_bf16_to_f32(rd_f16(t->data));
    else
        return bn_fail(BN_ERR_FORMAT, "scale tensor %s has type %s, expected F32", sn, bn_type_name((bn_type)t->type));
    /* a real checkpoint's scale is a positive magnitude; zero, negative or
     * non-finite values would silently break every consumer of the linear */
    if (!(v > 0.0f) || v > 1e30f)
        return bn_fail(BN_ERR_FORMAT, "scale tensor %s holds %g, expected a positive finite value", sn, (double)v);
    *out = v;
    *present = true;
    return BN_OK;
}

/* ------------------------------------------------------------ dequantize */

static void q8_0_block(const uint8_t *blk, float *y) {
    const float d = bn_f16_to_f32(rd_f16(blk));
    const int8_t *qs = (const int8_t *)(blk + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}

/* ggml: per 128 elements (two halves), l in [0, 32):
 *   q1 = (ql[l] & 15 | (qh[l] >> 0 & 3) << 4) - 32      -> y[l]      * sc[l/16 + 0]
 *   q2 = (ql[l+32] & 15 | (qh[l] >> 2 & 3) << 4) - 32   -> y[l + 32] * sc[l/16 + 2]
 *   q3 = (ql[l] >> 4 | (qh[l] >> 4 & 3) << 4) - 32      -> y[l + 64] * sc[l/16 + 4]
 *   q4 = (ql[l+32] >> 4 | (qh[l] >> 6 & 3) << 4) - 32   -> y[l + 96] * sc[l/16 + 6]
 * value = d * sc * q, multiplied in that order in f32. */
static void q6k_block(const uint8_t *blk, float *y) {
    const uint8_t *ql = blk, *qh = blk + 128;
    const int8_t *sc = (const int8_t *)(blk + 192);
    const float d = bn_f16_to_f32(rd_f16(blk + 208));
    for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
}

bn_status bn_gguf_dequant_f32(const bn_gguf_tensor *t, const char *name, uint64_t n, float *out) {
    if (!bn_gguf_is_dequant(t->type))
        return bn_fail(BN_ERR_UNSUPPORTED, "tensor %s has type %s, not Q8_0 or Q6_K", name,
                       bn_type_name((bn_type)t->type));
    const bool q6 = t->type == BN_TYPE_Q6_K;
    const uint64_t qk = q6 ? QK_K : 32, bsz = q6 ? 210 : 34;
    uint64_t need;
    if (n % qk || !bn_mul_ok(n / qk, bsz, &need) || t->nbytes < need)
        return bn_fail(BN_ERR_FORMAT, "%s tensor %s holds %llu bytes, too few for %llu elements",
                       bn_type_name((bn_type)t->type), name, (unsigned long long)t->nbytes, (unsigned long long)n);
    for (uint64_t b = 0; b < n / qk; b++) {
        if (q6) q6k_block(t->data + b * bsz, out + b * qk);
        else q8_0_block(t->data + b * bsz, out + b * qk);
    }
    return BN_OK;
}
