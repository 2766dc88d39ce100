/* t2r4.c — the T2R4 decode layout (kernels.h): packing from T2R at load
 * time, and the scalar reference product on it. Portable C. */
#include "kernels.h"

#include <string.h>
#include <sys/mman.h>

#include "core/core.h"

size_t bn_t2r4_bytes(int m, int k) {
    if (m <= 0 || k <= 0) return 0;
    return (size_t)((m + 3) / 4) * 4 * bn_t2r_row_bytes(k);
}

/* u = b & ~((b << 1) & 0xAA): code 0b11 -> 0b01, the others unchanged */
static uint8_t fix_byte(uint8_t b) { return (uint8_t)(b & ~((b << 1) & 0xAA)); }

void bn_t2r4_pack(const uint8_t *W, int m, int k, uint8_t *out) {
    if (m <= 0 || k <= 0) return;
    const size_t rb = bn_t2r_row_bytes(k);
    const int nblk = bn_pad_k(k) / BN_QK, mp = (m + 3) / 4 * 4;
    for (int r = 0; r < mp; r++)
        for (int b = 0; b < nblk; b++) {
            uint8_t *dst = (uint8_t *)bn_t2r4_block(out, k, r, b);
            if (r < m) {
                const uint8_t *src = W + (size_t)r * rb + 32 * (size_t)b;
                for (int i = 0; i < 32; i++) dst[i] = fix_byte(src[i]);
            } else {
                memset(dst, 0x55, 32); /* padding rows: every code 0b01 = weight 0 */
            }
        }
}

static int t2r4_get(const uint8_t *W4, int k, int r, int i) {
    const uint8_t *blk = bn_t2r4_block(W4, k, r, i / BN_QK);
    const int j = i % BN_QK;
    const int code = (blk[j % 32] >> (6 - 2 * (j / 32))) & 3;
    return code == 3 ? 0 : code - 1;
}

void bn_ref_tgemm4(const uint8_t *W4, int k, const int8_t *q, size_t ldq,
                   const float *x_scale, const int32_t *x_sum, int n_tokens,
                   float w_scale, float *y, size_t ldy, int m0, int m1) {
    (void)x_sum;
    for (int m = m0; m < m1; m++)
        for (int n = 0; n < n_tokens; n++) {
            const int8_t *qr = q + (size_t)n * ldq;
            int32_t acc = 0;
            for (int i = 0; i < k; i++) acc += t2r4_get(W4, k, m, i) * (int32_t)qr[i];
            y[(size_t)n * ldy + m] = (float)acc * w_scale * x_scale[n];
        }
}

bn_status bn_t2r4_new(const uint8_t *W, int m, int k, uint8_t **out) {
    *out = NULL;
    const size_t n = bn_t2r4_bytes(m, k);
    if (n == 0) return bn_fail(BN_ERR_INVALID_ARG, "t2r4: empty matrix %d x %d", m, k);
    /* 2 MiB-aligned and advised for transparent huge pages: the decode
     * stream then crosses no 4 KiB page boundary (+10 % at one thread) */
    const size_t huge = (size_t)2 << 20;
    uint8_t *p = bn_aligned_alloc(n >= huge ? huge : 64, n);
    if (!p) return BN_ERR_NOMEM;
#ifdef MADV_HUGEPAGE
    if (n >= huge) madvise(p, n / huge * huge, MADV_HUGEPAGE);
#endif
    bn_t2r4_pack(W, m, k, p);
    *out = p;
    return BN_OK;
}
