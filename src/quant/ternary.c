/* ternary.c — ternary weight encodings <-> the kernels' T2R layout. */
#include "ternary.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

float bn_absmean_scale(const float *w, size_t n) {
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += fabs((double)w[i]);
    float mean = n ? (float)(acc / (double)n) : 0.0f;
    return mean > 1e-5f ? mean : 1e-5f;
}

void bn_ternary_quantize_rows(const float *w, int n_out, int n_in, float beta, uint8_t *dst) {
    const size_t rb = bn_t2r_row_bytes(n_in);
    const float s = 1.0f / beta; /* transformers: round(W * (1/beta)) */
    for (int r = 0; r < n_out; r++) {
        uint8_t *row = dst + (size_t)r * rb;
        memset(row, 0x55, rb); /* code 01 = 0 everywhere, padding included */
        for (int c = 0; c < n_in; c++) {
            float v = nearbyintf(w[(size_t)r * (size_t)n_in + (size_t)c] * s);
            int t = v > 0.0f ? 1 : (v < 0.0f ? -1 : 0);
            bn_t2r_set(row, c, t);
        }
    }
}

bn_status bn_ternary_from_hf_packed(const uint8_t *src, int n_out, int n_in, uint8_t *dst) {
    if (n_out % 4) return bn_fail(BN_ERR_SHAPE, "packed ternary weight needs rows divisible by 4, got %d", n_out);
    const int quarter = n_out / 4;
    const size_t rb = bn_t2r_row_bytes(n_in);
    for (int r = 0; r < n_out; r++) memset(dst + (size_t)r * rb, 0x55, rb);
    for (int r = 0; r < quarter; r++) {
        const uint8_t *srow = src + (size_t)r * (size_t)n_in;
        for (int c = 0; c < n_in; c++) {
            const uint8_t b = srow[c];
            for (int q = 0; q < 4; q++) {
                int code = (b >> (2 * q)) & 3;
                if (code == 3) return bn_fail(BN_ERR_FORMAT, "packed ternary weight holds the unused code 3 at row %d col %d", r + q * quarter, c);
                bn_t2r_set(dst + (size_t)(r + q * quarter) * rb, c, code - 1);
            }
        }
    }
    return BN_OK;
}

void bn_ternary_to_hf_packed(const uint8_t *t2r, int n_out, int n_in, uint8_t *dst) {
    const int quarter = n_out / 4;
    const size_t rb = bn_t2r_row_bytes(n_in);
    for (int r = 0; r < quarter; r++) {
        for (int c = 0; c < n_in; c++) {
            uint8_t b = 0;
            for (int q = 0; q < 4; q++) {
                int w = bn_t2r_get(t2r + (size_t)(r + q * quarter) * rb, c);
                b |= (uint8_t)((w + 1) << (2 * q));
            }
            dst[(size_t)r * (size_t)n_in + (size_t)c] = b;
        }
    }
}

/* Element i of a flattened I2_S tensor. */
static int i2s_get(const uint8_t *src, size_t i) {
    size_t blk = i / 128, j = i % 128;
    int code = (src[blk * 32 + j % 32] >> (6 - 2 * (int)(j / 32))) & 3;
    return code == 3 ? 0 : code - 1;
}

static void i2s_set(uint8_t *dst, size_t i, int w) {
    size_t blk = i / 128, j = i % 128;
    int sh = 6 - 2 * (int)(j / 32);
    uint8_t *p = &dst[blk * 32 + j % 32];
    *p = (uint8_t)((*p & ~(3 << sh)) | ((w + 1) << sh));
}

void bn_ternary_from_i2s(const uint8_t *src, int n_out, int n_in, uint8_t *dst) {
    const size_t rb = bn_t2r_row_bytes(n_in);
    if (n_in % BN_QK == 0) {
        memcpy(dst, src, rb * (size_t)n_out);
        return;
    }
    for (int r = 0; r < n_out; r++) {
        uint8_t *row = dst + (size_t)r * rb;
        memset(row, 0x55, rb);
        for (int c = 0; c < n_in; c++) bn_t2r_set(row, c, i2s_get(src, (size_t)r * (size_t)n_in + (size_t)c));
    }
}

void bn_ternary_to_i2s(const uint8_t *t2r, int n_out, int n_in, float scale, uint8_t *dst) {
    const size_t rb = bn_t2r_row_bytes(n_in);
    const size_t n = (size_t)n_out * (size_t)n_in;
    if (n_in % BN_QK == 0) {
        memcpy(dst, t2r, n / 4);
    } else {
        memset(dst, 0x55, n / 4);
        for (int r = 0; r < n_out; r++)
            for (int c = 0; c < n_in; c++)
                i2s_set(dst, (size_t)r * (size_t)n_in + (size_t)c, bn_t2r_get(t2r + (size_t)r * rb, c));
    }
    memset(dst + n / 4, 0, 32);
    memcpy(dst + n / 4, &scale, sizeof scale);
}
