/* ops_attention.c — causal grouped-query attention (eager: scores scaled by
 * hd^-0.5, softmax in f32, then P.V), forward and backward. Every product is
 * an OpenBLAS sgemm on strided per-head views; the causal mask is applied to
 * the full T x T score block (the upper triangle costs flops but sgemm is far
 * faster than hand loops). */
#include "train/train.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void bn_tr_attn_fwd(const float *q, const float *k, const float *v, float *P, float *out,
                    int B, int T, int nh, int nkv, int hd) {
    const int grp = nh / nkv, qs = nh * hd, ks = nkv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    /* one (sequence, head) per OpenMP iteration, each product a single-threaded sgemm */
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            const int kh = h / grp;
            float *S = P + ((size_t)b * nh + h) * (size_t)T * T;
            const float *qb = q + (size_t)b * T * qs + (size_t)h * hd;
            const float *kb = k + (size_t)b * T * ks + (size_t)kh * hd;
            const float *vb = v + (size_t)b * T * ks + (size_t)kh * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, qb, qs, kb, ks,
                        0.0f, S, T);
            for (int t = 0; t < T; t++) {
                float *pr = S + (size_t)t * T;
                float mx = pr[0];
                for (int s = 1; s <= t; s++) mx = pr[s] > mx ? pr[s] : mx;
                float sum = 0;
                for (int s = 0; s <= t; s++) { pr[s] = expf(pr[s] - mx); sum += pr[s]; }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) pr[s] *= inv;
                for (int s = t + 1; s < T; s++) pr[s] = 0;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, S, T, vb, ks,
                        0.0f, out + (size_t)b * T * qs + (size_t)h * hd, qs);
        }
}

/* dP = dO.V^T ; dS = P*(dP - rowsum(P*dP)) ; dQ = scale*dS.K ; dK = scale*dS^T.Q ;
 * dV = P^T.dO (dK, dV summed over the query heads of a group). */
bn_status bn_tr_attn_bwd(const float *q, const float *k, const float *v, const float *P,
                         const float *dout, float *dq, float *dk, float *dv,
                         int B, int T, int nh, int nkv, int hd) {
    const int grp = nh / nkv, qs = nh * hd, ks = nkv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    bool oom = false;
    /* one (sequence, kv head) per iteration: its query heads accumulate into
     * the same dk/dv slices, so no two threads write the same memory */
    #pragma omp parallel
    {
        float *dS = bn_malloc(sizeof(float) * (size_t)T * T);
        if (!dS) {
            #pragma omp atomic write
            oom = true;
        }
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kh = 0; kh < nkv; kh++) {
                if (!dS) continue;
                for (int h = kh * grp; h < (kh + 1) * grp; h++) {
                    const float *S = P + ((size_t)b * nh + h) * (size_t)T * T;
                    const float *qb = q + (size_t)b * T * qs + (size_t)h * hd;
                    const float *kb = k + (size_t)b * T * ks + (size_t)kh * hd;
                    const float *vb = v + (size_t)b * T * ks + (size_t)kh * hd;
                    const float *gb = dout + (size_t)b * T * qs + (size_t)h * hd;
                    float *dqb = dq + (size_t)b * T * qs + (size_t)h * hd;
                    float *dkb = dk + (size_t)b * T * ks + (size_t)kh * hd;
                    float *dvb = dv + (size_t)b * T * ks + (size_t)kh * hd;
                    const float beta = h == kh * grp ? 0.0f : 1.0f;  /* first head writes */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, S, T,
                                gb, qs, beta, dvb, ks);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, gb, qs,
                                vb, ks, 0.0f, dS, T);
                    for (int t = 0; t < T; t++) {
                        const float *pr = S + (size_t)t * T;
                        float *dr = dS + (size_t)t * T;
                        float acc = 0;
                        for (int s = 0; s <= t; s++) acc += pr[s] * dr[s];
                        for (int s = 0; s <= t; s++) dr[s] = pr[s] * (dr[s] - acc);
                        for (int s = t + 1; s < T; s++) dr[s] = 0;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dS,
                                T, kb, ks, 0.0f, dqb, qs);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dS, T,
                                qb, qs, beta, dkb, ks);
                }
            }
        free(dS);
    }
    return oom ? bn_fail(BN_ERR_NOMEM, "attention backward: no memory for %d x %d scores", T, T)
               : BN_OK;
}
