/* ref_extra.c — scalar references for kernels added after ref.c: the
 * quantized head (8/6/4-bit rows with f16 block scales). Written to read
 * like the math in kernels.h; SIMD versions are tested against it. */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "core/core.h"

static int qh_qmax(int bits) { return bits == 8 ? 127 : bits == 6 ? 31 : 7; }
static int qh_off(int bits) { return bits == 8 ? 128 : bits == 6 ? 32 : 8; }

size_t bn_qhead_row_bytes(int bits, int n_embd) {
    const size_t kp = (size_t)bn_pad_k(n_embd);
    switch (bits) {
    case 8: return kp;
    case 6: return kp / 4 * 3;
    case 4: return kp / 2;
    default: return 0;
    }
}

int bn_qhead_get_u(int bits, const uint8_t *row, int i) {
    if (bits == 8) return row[i];
    const int sb = i / 128, j = i % 128;
    if (bits == 4) {
        const uint8_t b = row[sb * 64 + j % 64];
        return j < 64 ? (b & 15) : (b >> 4);
    }
    const uint8_t *s = row + sb * 96;
    const int lo = (j < 64 ? s[j % 64] : s[j % 64] >> 4) & 15;
    const int hi = (s[64 + j % 32] >> (6 - 2 * (j / 32))) & 3;
    return lo | hi << 4;
}

static void qh_set_u(int bits, uint8_t *row, int i, int u) {
    if (bits == 8) { row[i] = (uint8_t)u; return; }
    const int sb = i / 128, j = i % 128;
    if (bits == 4) {
        uint8_t *b = &row[sb * 64 + j % 64];
        *b = j < 64 ? (uint8_t)((*b & 0xf0) | (u & 15)) : (uint8_t)((*b & 0x0f) | (u & 15) << 4);
        return;
    }
    uint8_t *s = row + sb * 96;
    uint8_t *b = &s[j % 64];
    *b = j < 64 ? (uint8_t)((*b & 0xf0) | (u & 15)) : (uint8_t)((*b & 0x0f) | (u & 15) << 4);
    const int sh = 6 - 2 * (j / 32);
    uint8_t *h = &s[64 + j % 32];
    *h = (uint8_t)((*h & ~(3 << sh)) | ((u >> 4) & 3) << sh);
}

void bn_qhead_quantize_row(int bits, const float *x, int n_embd, uint16_t *scales, uint8_t *codes) {
    const int kp = bn_pad_k(n_embd), qmax = qh_qmax(bits), off = qh_off(bits);
    memset(codes, 0, bn_qhead_row_bytes(bits, n_embd));
    for (int b = 0; b < kp / BN_QH_BLOCK; b++) {
        const int i0 = b * BN_QH_BLOCK;
        float amax = 0.0f;
        for (int i = i0; i < i0 + BN_QH_BLOCK && i < n_embd; i++) amax = fmaxf(amax, fabsf(x[i]));
        const uint16_t dh = bn_f32_to_f16(amax / (float)qmax);
        const float d = bn_f16_to_f32(dh);
        scales[b] = dh;
        for (int i = i0; i < i0 + BN_QH_BLOCK; i++) {
            int c = 0;
            if (i < n_embd && d > 0.0f && isfinite(d)) {
                float v = nearbyintf(x[i] / d);
                v = fminf(fmaxf(v, (float)-qmax), (float)qmax);
                c = (int)v;
            }
            qh_set_u(bits, codes, i, c + off);
        }
    }
}

void bn_ref_qhead(const bn_qhead *E, const int8_t *hq, size_t ldq, const float *h_scale,
                  int n_tokens, float *logits, size_t ldl, int v0, int v1) {
    const int off = qh_off(E->bits);
    for (int v = v0; v < v1; v++) {
        const uint16_t *d = E->scales + (size_t)v * (size_t)E->nblk;
        const uint8_t *row = E->codes + (size_t)v * E->row_bytes;
        for (int n = 0; n < n_tokens; n++) {
            const int8_t *q = hq + (size_t)n * ldq;
            float acc = 0.0f;
            for (int b = 0; b < E->nblk; b++) {
                int32_t s = 0;
                for (int i = b * BN_QH_BLOCK; i < (b + 1) * BN_QH_BLOCK; i++)
                    s += (bn_qhead_get_u(E->bits, row, i) - off) * (int32_t)q[i];
                acc += (float)s * bn_f16_to_f32(d[b]);
            }
            logits[(size_t)n * ldl + (size_t)v] = acc * h_scale[n];
        }
    }
}
