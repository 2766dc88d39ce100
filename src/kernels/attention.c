/* attention.c — blocked causal attention with an online softmax: the scalar
 * version of the bn_attn_fn kernels (the SIMD ones in attention_avx2.c and
 * attention_avx512.c follow the same tile order), the merge of partial
 * states computed over disjoint position ranges, and the per-table choice.
 *
 * Why online: a query block walks its key/value positions once, tile by
 * tile, so each K/V tile is read once for all the query rows that share the
 * KV head (GQA) and for several tokens of a prompt, and a long context can be
 * cut into position ranges run on different threads, merged afterwards. The
 * oracle stays bn_ref_attend_head (two passes, ref.c); tests compare both. */
#include <math.h>
#include <string.h>

#include "kernels.h"

void bn_attn_init(int nq, int hd, float *mx, float *sum, float *acc) {
    for (int r = 0; r < nq; r++) {
        mx[r] = -INFINITY;
        sum[r] = 0.0f;
    }
    memset(acc, 0, sizeof(float) * (size_t)nq * (size_t)hd);
}

void bn_ref_attn(const float *Q, int nq, const int32_t *lim, const float *K, const float *V, size_t ld, int t0,
                 int t1, int hd, float scale, float *mx, float *sum, float *acc, float *scratch) {
    for (int tt = t0; tt < t1; tt += BN_ATTN_TILE) {
        const int te = tt + BN_ATTN_TILE < t1 ? tt + BN_ATTN_TILE : t1;
        for (int r = 0; r < nq; r++) {
            const int end = lim[r] < te ? lim[r] : te;
            if (end <= tt) continue; /* every position of this tile is in the row's future */
            const float *q = Q + (size_t)r * hd;
            float *s = scratch + (size_t)r * BN_ATTN_TILE;
            float m = mx[r];
            for (int t = tt; t < end; t++) {
                const float *kr = K + (size_t)t * ld;
                float dot = 0.0f;
                for (int d = 0; d < hd; d++) dot += q[d] * kr[d];
                s[t - tt] = dot * scale;
                m = fmaxf(m, s[t - tt]);
            }
            /* rescale what was accumulated under the old maximum */
            const float corr = mx[r] == -INFINITY ? 0.0f : expf(mx[r] - m);
            float *a = acc + (size_t)r * hd;
            float l = sum[r] * corr;
            for (int d = 0; d < hd; d++) a[d] *= corr;
            for (int t = tt; t < end; t++) {
                const float p = expf(s[t - tt] - m);
                l += p;
                const float *vr = V + (size_t)t * ld;
                for (int d = 0; d < hd; d++) a[d] += p * vr[d];
            }
            mx[r] = m;
            sum[r] = l;
        }
    }
}

void bn_attn_merge(int nq, int hd, float *mx, float *sum, float *acc, const float *mx2, const float *sum2,
                   const float *acc2) {
    for (int r = 0; r < nq; r++) {
        if (mx2[r] == -INFINITY) continue; /* the other range saw nothing of this row */
        const float m = fmaxf(mx[r], mx2[r]);
        const float w1 = mx[r] == -INFINITY ? 0.0f : expf(mx[r] - m), w2 = expf(mx2[r] - m);
        float *a = acc + (size_t)r * hd;
        const float *b = acc2 + (size_t)r * hd;
        for (int d = 0; d < hd; d++) a[d] = a[d] * w1 + b[d] * w2;
        sum[r] = sum[r] * w1 + sum2[r] * w2;
        mx[r] = m;
    }
}

void bn_attn_finish(int hd, float sum, const float *acc, float *out) {
    /* sum >= 1 whenever the row saw a position (its maximum contributes 1) */
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int d = 0; d < hd; d++) out[d] = acc[d] * inv;
}

void bn_attn_f16(const bn_kernels *k, bn_attn_fn f, const float *Q, int nq, const int32_t *lim, const uint16_t *K,
                 const uint16_t *V, size_t ld, int t0, int t1, int hd, float scale, float *mx, float *sum, float *acc,
                 float *scratch, float *kv_tile, int32_t *lim_tile) {
    float *kt = kv_tile, *vt = kv_tile + (size_t)BN_ATTN_TILE * (size_t)hd;
    for (int tt = t0; tt < t1; tt += BN_ATTN_TILE) {
        const int w = t1 - tt < BN_ATTN_TILE ? t1 - tt : BN_ATTN_TILE;
        /* rows past every limit are never read: widen only what some row sees */
        int seen = 0;
        for (int r = 0; r < nq; r++) {
            const int v = lim[r] - tt;
            lim_tile[r] = v < 0 ? 0 : v;
            if (lim_tile[r] > seen) seen = lim_tile[r];
        }
        if (seen > w) seen = w;
        for (int t = 0; t < seen; t++) {
            k->f16_to_f32(K + (size_t)(tt + t) * ld, kt + (size_t)t * (size_t)hd, (size_t)hd);
            k->f16_to_f32(V + (size_t)(tt + t) * ld, vt + (size_t)t * (size_t)hd, (size_t)hd);
        }
        if (seen > 0) f(Q, nq, lim_tile, kt, vt, (size_t)hd, 0, seen, hd, scale, mx, sum, acc, scratch);
    }
}

bn_attn_fn bn_attn_select(const bn_kernels *k) {
    bn_attn_fn f = NULL;
    if (k && !strcmp(k->name, "avx2")) f = bn_attn_avx2();
    else if (k && !strncmp(k->name, "avx512", 6)) f = bn_attn_avx512();
    return f ? f : bn_ref_attn;
}
