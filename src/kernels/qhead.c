/* qhead.c — build a quantized head (bn_qhead, kernels.h) from a dense
 * embedding matrix at load or convert time. The row quantizer itself is
 * bn_qhead_quantize_row (ref_extra.c); this spreads it over threads and owns
 * the one allocation that holds scales and codes. */
#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static void row_to_f32(const void *E, bn_type et, size_t row, int n_embd, float *out) {
    const size_t base = row * (size_t)n_embd;
    switch (et) {
    case BN_TYPE_F16: bn_f16_to_f32_row((const uint16_t *)E + base, out, (size_t)n_embd); break;
    case BN_TYPE_BF16: bn_bf16_to_f32_row((const uint16_t *)E + base, out, (size_t)n_embd); break;
    default: memcpy(out, (const float *)E + base, sizeof(float) * (size_t)n_embd); break;
    }
}

/* The same bytes as bn_qhead_quantize_row (test_kernels checks), about 10x
 * faster: no per-element branches or libm calls. Rounding to nearest even
 * is done by adding and subtracting 1.5 * 2^23 (exact for |v| < 2^22; here
 * |v| <= 2 qmax since d is within f16 rounding of absmax / qmax, and the
 * clamp follows as in the reference). */
static void quantize_row_fast(int bits, const float *x, int n_embd, uint16_t *scales,
                              uint8_t *codes) {
    const int kp = bn_pad_k(n_embd);
    const int qmax = bits == 8 ? 127 : bits == 6 ? 31 : 7, off = bits == 8 ? 128 : bits == 6 ? 32 : 8;
    const float fq = (float)qmax, magic = 12582912.0f; /* 1.5 * 2^23 */
    uint8_t u[128];
    for (int sb = 0; sb < kp / 128; sb++) {
        for (int h = 0; h < 2; h++) {
            const int b = 2 * sb + h, i0 = b * BN_QH_BLOCK;
            const int n = n_embd - i0 < BN_QH_BLOCK ? (n_embd - i0 > 0 ? n_embd - i0 : 0) : BN_QH_BLOCK;
            float amax = 0.0f;
            for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i0 + i]));
            const uint16_t dh = bn_f32_to_f16(amax / fq);
            const float d = bn_f16_to_f32(dh);
            scales[b] = dh;
            uint8_t *ub = u + 64 * h;
            if (!(d > 0.0f) || !isfinite(d)) {
                memset(ub, off, BN_QH_BLOCK);
                continue;
            }
            for (int i = 0; i < n; i++) {
                float v = x[i0 + i] / d;
                v = v > -fq ? v : -fq; /* NaN -> -qmax, as fmaxf in the reference */
                v = v < fq ? v : fq;
                v = (v + magic) - magic;
                ub[i] = (uint8_t)((int)v + off);
            }
            for (int i = n; i < BN_QH_BLOCK; i++) ub[i] = (uint8_t)off;
        }
        if (bits == 8) {
            memcpy(codes + 128 * (size_t)sb, u, 128);
        } else if (bits == 4) {
            uint8_t *o = codes + 64 * (size_t)sb;
            for (int j = 0; j < 64; j++) o[j] = (uint8_t)((u[j] & 15) | (u[j + 64] & 15) << 4);
        } else {
            uint8_t *o = codes + 96 * (size_t)sb;
            for (int j = 0; j < 64; j++) o[j] = (uint8_t)((u[j] & 15) | (u[j + 64] & 15) << 4);
            for (int j = 0; j < 32; j++)
                o[64 + j] = (uint8_t)((u[j] >> 4) << 6 | (u[j + 32] >> 4) << 4 | (u[j + 64] >> 4) << 2 |
                                      (u[j + 96] >> 4));
        }
    }
}

bn_status bn_qhead_build(const void *E, bn_type et, int n_vocab, int n_embd, int bits,
                         int n_threads, bn_qhead *out, void **storage) {
    *storage = NULL;
    memset(out, 0, sizeof *out);
    if (bits != 8 && bits != 6 && bits != 4)
        return bn_fail(BN_ERR_INVALID_ARG, "quantized head: %d bits (8, 6 or 4)", bits);
    if (et != BN_TYPE_F32 && et != BN_TYPE_F16 && et != BN_TYPE_BF16)
        return bn_fail(BN_ERR_INVALID_ARG, "quantized head: embeddings must be F32, F16 or BF16");
    if (!E || n_vocab <= 0 || n_embd <= 0 || n_embd > (1 << 20))
        return bn_fail(BN_ERR_INVALID_ARG, "quantized head: bad shape %d x %d", n_vocab, n_embd);
    const int nblk = bn_pad_k(n_embd) / BN_QH_BLOCK;
    const size_t row_bytes = bn_qhead_row_bytes(bits, n_embd);
    uint64_t sbytes, cbytes, total;
    if (!bn_mul_ok((uint64_t)n_vocab, (uint64_t)nblk * 2, &sbytes) ||
        !bn_mul_ok((uint64_t)n_vocab, row_bytes, &cbytes) ||
        !bn_add_ok((sbytes + 63) / 64 * 64, cbytes, &total) || total > BN_MAX_ALLOC)
        return bn_fail(BN_ERR_INVALID_ARG, "quantized head: %d x %d is too large", n_vocab, n_embd);
    uint8_t *mem = bn_aligned_alloc(64, (size_t)total);
    if (!mem) return BN_ERR_NOMEM; /* bn_aligned_alloc recorded the message */
    uint16_t *scales = (uint16_t *)mem;
    uint8_t *codes = mem + (sbytes + 63) / 64 * 64;
    int failed = 0;
    if (n_threads < 1) n_threads = 1;
#pragma omp parallel num_threads(n_threads)
    {
        float *row = bn_malloc(sizeof(float) * (size_t)n_embd);
        if (!row) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int v = 0; v < n_vocab; v++) {
            if (!row) continue;
            row_to_f32(E, et, (size_t)v, n_embd, row);
            quantize_row_fast(bits, row, n_embd, scales + (size_t)v * (size_t)nblk,
                              codes + (size_t)v * row_bytes);
        }
        free(row);
    }
    if (failed) {
        bn_aligned_free(mem);
        return bn_fail(BN_ERR_NOMEM, "quantized head: out of memory for row buffers");
    }
    out->bits = bits;
    out->n_vocab = n_vocab;
    out->n_embd = n_embd;
    out->nblk = nblk;
    out->row_bytes = row_bytes;
    out->scales = scales;
    out->codes = codes;
    *storage = mem;
    return BN_OK;
}

size_t bn_qhead_bytes(const bn_qhead *q) {
    return (size_t)q->n_vocab * ((size_t)q->nblk * 2 + q->row_bytes);
}
